//! What a GPU machine needs checked before its numbers are believed: which adapter wgpu
//! finds, and whether one batch's gradients of every rule on the device agree with a reference
//! device (Flex, wt's own CPU kernels). `benches/gpu/run.sh` runs both.
//!
//! ```text
//! cargo run --release --features wgpu --example gpu_check -- adapters
//! cargo run --release --features wgpu --example gpu_check -- gradients --device wgpu
//! cargo run --release --features wgpu --example gpu_check -- gradients --device wgpu:cpu --models mlp
//! ```
//! `adapters` prints one JSON line per wgpu adapter:
//! `{"check":"adapter","name":..,"device_type":"DiscreteGpu"|"IntegratedGpu"|"VirtualGpu"|"Cpu"|"Other",
//! "backend":"Vulkan",..,"driver":..,"driver_info":..,"vendor":4318,"selected":true}` (`selected`:
//! the adapter the `wgpu` device opens). `gradients` builds each model once per rule on the
//! reference device, forks it (`W`, `b`, `B`, `D`, batch norm) to `--device`, runs forward,
//! cross-entropy and backward on the same batch on both, adds the rules' `B` gradients
//! (`add_feedback_gradients`), and prints per (model, rule) the largest relative error
//! `‖g_device − g_ref‖ / ‖g_ref‖` over the model's parameters, as a table and JSON lines
//! `{"check":"gradients","model":..,"rule":..,"max_rel_error":..,"worst":"<param shape>",
//! "tolerance":..,"ok":true}`. Exits 1 if any case exceeds `--tolerance`. brSF is left out: it
//! draws its `B` afresh from each backend's own generator, so its two gradients differ by
//! design (its sign-and-scale kernel is checked through uSF and frSF, which share it).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use clap::{Parser, Subcommand};
use wt::Rule;
use wt::wt_core::Named;
use wt::wt_core::device::parse_device;
use wt::wt_models::{Architecture, ImageClassifier, ModelConfig};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every wgpu adapter, one JSON line each
    Adapters,
    /// One batch's gradients of every rule on a device against a reference device
    Gradients {
        /// The device checked
        #[arg(long, default_value = "wgpu")]
        device: String,
        /// The reference device
        #[arg(long, default_value = "flex")]
        reference: String,
        /// Models: mlp (batch 32), lenet (CIFAR, batch 16), resnet20 (batch 8)
        #[arg(long, value_delimiter = ',', default_value = "mlp,lenet,resnet20",
              value_parser = ["mlp", "lenet", "resnet20"])]
        models: Vec<String>,
        /// Largest relative error accepted (float32 sums in another order)
        #[arg(long, default_value_t = 2e-3)]
        tolerance: f64,
    },
}

fn main() {
    let code = match Cli::parse().command {
        Command::Adapters => adapters(),
        Command::Gradients {
            device,
            reference,
            models,
            tolerance,
        } => gradients(&device, &reference, &models, tolerance),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("gpu_check: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(feature = "wgpu")]
fn adapters() -> Result<i32, String> {
    use wt::wt_core::device::{device_name, wgpu_adapters};
    let found = wgpu_adapters();
    if found.is_empty() {
        println!("{{\"check\":\"adapter\",\"name\":null,\"note\":\"wgpu found no adapter\"}}");
        return Ok(0);
    }
    let selected = std::panic::catch_unwind(|| {
        device_name(&Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
    })
    .ok()
    .flatten();
    for a in found {
        let line = serde_json::json!({
            "check": "adapter",
            "name": a.name,
            "device_type": a.device_type,
            "backend": a.backend,
            "driver": a.driver,
            "driver_info": a.driver_info,
            "vendor": a.vendor,
            "software": a.is_software(),
            "selected": selected.as_deref() == Some(a.name.as_str()),
        });
        println!("{line}");
    }
    Ok(0)
}

#[cfg(not(feature = "wgpu"))]
fn adapters() -> Result<i32, String> {
    Err("this build has no wgpu backend; rebuild with `--features wgpu`".into())
}

/// (architecture, batch, channels, side) of a checked model.
fn shape(name: &str) -> (Architecture, usize, usize, usize) {
    match name {
        "mlp" => (Architecture::Mlp, 32, 1, 28),
        "lenet" => (Architecture::Lenet, 16, 3, 32),
        _ => (Architecture::Resnet20, 8, 3, 32),
    }
}

fn gradients(
    device: &str,
    reference: &str,
    models: &[String],
    tolerance: f64,
) -> Result<i32, String> {
    let checked = parse_device(device)?.autodiff();
    let refdev = parse_device(reference)?.autodiff();
    let rules: Vec<Rule> = Rule::all()
        .into_iter()
        .filter(|r| !matches!(r, Rule::BatchRandomSignSymmetry(_)))
        .collect();
    println!("model     rule  max_rel_error  worst parameter   ({device} against {reference})");
    let mut failed = 0;
    let mut rows = Vec::new();
    for name in models {
        let (arch, batch, channels, side) = shape(name);
        for rule in &rules {
            refdev.seed(7);
            let config = ModelConfig::new(arch, 10, channels, side, *rule);
            let model = config.init(&refdev);
            let x = Tensor::<4>::random(
                [batch, channels, side, side],
                Distribution::Normal(0.0, 1.0),
                &refdev,
            );
            let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &refdev);
            let on_device = model.clone().fork(&checked);
            let want = grads_of(&model, x.clone(), y.clone(), &refdev);
            let got = grads_of(
                &on_device,
                x.to_device(&checked),
                y.to_device(&checked),
                &checked,
            );
            let mut cmp = Compare {
                want,
                got,
                reference: refdev.clone(),
                worst: (0.0, String::new()),
                missing: Vec::new(),
            };
            model.visit(&mut cmp);
            if !cmp.missing.is_empty() {
                return Err(format!(
                    "{name} {}: gradients present on one device only: {}",
                    rule.name(),
                    cmp.missing.join(", ")
                ));
            }
            let (err, worst) = cmp.worst;
            let ok = err <= tolerance;
            failed += usize::from(!ok);
            println!(
                "{name:<10}{:<6}{err:>13.2e}  {worst}{}",
                rule.name(),
                if ok { "" } else { "   FAILED" }
            );
            rows.push(serde_json::json!({
                "check": "gradients", "model": name, "rule": rule.name(), "device": device,
                "reference": reference, "max_rel_error": err, "worst": worst,
                "tolerance": tolerance, "ok": ok,
            }));
        }
    }
    for row in rows {
        println!("{row}");
    }
    Ok(i32::from(failed > 0))
}

/// Forward, cross-entropy, backward and the rules' `B` gradients of one batch.
fn grads_of<M: ImageClassifier>(
    model: &M,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    device: &Device,
) -> GradientsParams {
    let logits = model.forward(x);
    // DRTP's layers take the labels (a no-op for the other rules).
    let n = y.dims()[0].max(1);
    wt::direct_targets(y.clone(), 1.0 / n as f64);
    let loss = CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits, y);
    let mut grads = GradientsParams::from_grads(loss.backward(), model);
    wt::add_feedback_gradients(model, &mut grads, 0.1);
    grads
}

/// Compares the two devices' gradient of every parameter, on the reference device.
struct Compare {
    want: GradientsParams,
    got: GradientsParams,
    reference: Device,
    /// Largest relative error and the shape of its parameter.
    worst: (f64, String),
    missing: Vec<String>,
}

impl ModuleVisitor for Compare {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let dims = format!("{:?}", param.val().dims());
        match (self.want.get::<D>(param.id), self.got.get::<D>(param.id)) {
            (Some(want), Some(got)) => {
                let got = got.to_device(&self.reference.clone().inner());
                let want = want.to_device(&self.reference.clone().inner());
                let diff = (got - want.clone()).powi_scalar(2).sum().sqrt();
                let norm = want.powi_scalar(2).sum().sqrt();
                let diff = diff.into_scalar::<f64>();
                let norm = norm.into_scalar::<f64>();
                let rel = if norm > 0.0 { diff / norm } else { diff };
                if rel > self.worst.0 || rel.is_nan() {
                    self.worst = (rel, dims);
                }
            }
            (None, None) => {}
            _ => self.missing.push(dims),
        }
    }
}
