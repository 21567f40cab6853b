//! Training-step throughput of the zoo models for every rule on one device: forward,
//! cross-entropy, backward, the rules' `B` gradients, SGD-momentum step, device sync. Random
//! inputs (data loading is measured by `data_throughput`), median of `--steps` steps after
//! `--warmup` steps, rules interleaved round by round (each round starting one rule later) so
//! that drift of a noisy machine hits every rule alike.
//!
//! ```text
//! cargo run --release --example bench_models                                   # flex, all
//! cargo run --release --features ndarray --example bench_models -- --device ndarray --models mlp
//! cargo run --release --features wgpu --example bench_models -- --device wgpu --steps 3
//! ```
//! `--help` lists the options (device, models, rules, steps, warm-up, convolution kernels,
//! ResNet-18's image size and stem, batch, classes), e.g. the Imagenette ResNet-18:
//! `bench_models --models resnet18 --image-size 64 --stem imagenet --batch 128 --classes 1000`.
//! Prints a table and one JSON
//! line per row: `{"model":"resnet20","rule":"fa","backend":"flex","conv":"wt","batch":128,
//! "step_ms":..,"images_per_s":..,"ratio_to_bp":..,"peak_memory_bytes":..,"memory_kind":"device"}`
//! (`ratio_to_bp`: to BP with the same kernels; peak memory of one more step of each case alone,
//! `memory_kind` `device` (the allocator's pools, wgpu and CUDA) or `resident` (the process's
//! peak resident memory, CPU backends): see `peak_memory`).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use clap::Parser;
use wt::FeedbackOptimizer;
use wt::Rule;
use wt::wt_core::Named;
use wt::wt_core::device::parse_device;
use wt::wt_core::kernels::FlexKernels;
use wt::wt_models::{Architecture, ImageClassifier, Model, ModelConfig, Stem};
use wt::wt_train::cli::one_of;

/// (architecture, batch, channels, side, classes) of a benchmarked model.
fn shape(name: &str) -> Result<(Architecture, usize, usize, usize), String> {
    match name {
        "mlp" => Ok((Architecture::Mlp, 128, 1, 28)),
        "resnet20" => Ok((Architecture::Resnet20, 128, 3, 32)),
        "resnet56" => Ok((Architecture::Resnet56, 128, 3, 32)),
        "resnet18" => Ok((Architecture::Resnet18, 32, 3, 32)),
        "resnet34" => Ok((Architecture::Resnet34, 32, 3, 32)),
        "resnet50" => Ok((Architecture::Resnet50, 32, 3, 32)),
        "resnet101" => Ok((Architecture::Resnet101, 32, 3, 32)),
        "resnet152" => Ok((Architecture::Resnet152, 32, 3, 32)),
        "lenet" => Ok((Architecture::Lenet, 128, 3, 32)),
        "vit" => Ok((Architecture::Vit, 128, 3, 32)),
        _ => Err(format!(
            "--models: unknown model `{name}` (mlp, resnet20, resnet56, resnet18, resnet34, \
             resnet50, resnet101, resnet152, lenet, vit)"
        )),
    }
}

/// Peak memory of one step of `case`: on a device whose allocator reports its pools (wgpu,
/// CUDA), the bytes the pools hold after a cleanup and the step (pages are kept for reuse once
/// freed, so this is the step's peak, or above it where the cleanup could not free all);
/// elsewhere (Flex, NdArray) the process's peak resident memory over the step, its high-water
/// mark reset first (Linux `/proc/self/clear_refs`). `None` where neither can be read.
fn peak_memory(
    device: &burn::tensor::Device,
    case: &mut Box<dyn FnMut() -> Result<(), String> + '_>,
) -> Result<(Option<u64>, &'static str), String> {
    device.memory_cleanup();
    if device.memory_pool_usage().is_some() {
        case()?;
        let usage = device.memory_pool_usage();
        return Ok((usage.map(|u| u.bytes_reserved), "device"));
    }
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    case()?;
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    Ok((hwm.filter(|_| reset), "resident"))
}

#[path = "../benches/common/interleaved.rs"]
mod interleaved;
use interleaved::interleaved;

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// Training-step throughput of the zoo models for every rule on one device.
#[derive(Parser)]
struct Cli {
    /// Device: flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, default_value = "flex")]
    device: String,
    /// Models (ResNet-18 to ResNet-152 at batch 32, the others at batch 128)
    #[arg(long, value_delimiter = ',', default_value = "mlp,resnet20,resnet18",
          value_parser = ["mlp", "resnet20", "resnet56", "resnet18", "resnet34", "resnet50",
                          "resnet101", "resnet152", "lenet", "vit"])]
    models: Vec<String>,
    /// Rules (default: all)
    #[arg(long, value_delimiter = ',', value_parser = one_of::<Rule>())]
    rules: Vec<Rule>,
    /// Timed steps (default 41 for the MLP, 5 for the others)
    #[arg(long)]
    steps: Option<usize>,
    /// Untimed steps first
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Flex's convolutions through wt's kernels, through Burn's own ops, or both as separate
    /// cases of the same rounds
    #[arg(long, default_value = "wt", value_parser = ["wt", "burn", "both"])]
    conv_kernels: String,
    /// Side of the ImageNet ResNets' (18 to 152) input images (the other models' are fixed)
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// The ImageNet ResNets' stem (default: imagenet above 64 pixels, cifar below)
    #[arg(long, value_parser = one_of::<Stem>())]
    stem: Option<Stem>,
    /// Batch of every model (default: each model's, above)
    #[arg(long)]
    batch: Option<usize>,
    /// Output classes (the labels cycle through the first 10)
    #[arg(long, default_value_t = 10)]
    classes: usize,
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    let (device_name, models, warmup) = (cli.device, cli.models.join(","), cli.warmup);
    let steps = cli.steps.map(|s| s.max(1));
    let kernels = match cli.conv_kernels.as_str() {
        "wt" => vec![("wt", true)],
        "burn" => vec![("burn", false)],
        _ => vec![("wt", true), ("burn", false)],
    };
    let rules = if cli.rules.is_empty() {
        Rule::all()
    } else {
        cli.rules
    };
    let rule_names: Vec<&'static str> = rules.iter().map(|r| r.name()).collect();
    let device = parse_device(&device_name)?;
    let ad = device.clone().autodiff();
    let criterion = CrossEntropyLossConfig::new().init(&ad);
    let mut rows = Vec::new();
    println!(
        "model     rule  conv  batch  step_ms  images/s  ratio_to_bp  peak_MiB   ({device_name})"
    );
    // Each case: (rule, kernels' name, whether wt's kernels are on).
    let case_keys: Vec<(&str, &str, bool)> = rule_names
        .iter()
        .flat_map(|&r| kernels.iter().map(move |&(k, on)| (r, k, on)))
        .collect();
    if cli.image_size == 0 || cli.batch == Some(0) || cli.classes == 0 {
        return Err("--image-size, --batch and --classes must be at least 1".into());
    }
    for name in models.split(',') {
        let (arch, batch, channels, side) = shape(name.trim())?;
        let batch = cli.batch.unwrap_or(batch);
        let imagenet_resnet = matches!(
            arch,
            Architecture::Resnet18
                | Architecture::Resnet34
                | Architecture::Resnet50
                | Architecture::Resnet101
                | Architecture::Resnet152
        );
        let side = if imagenet_resnet {
            cli.image_size
        } else {
            side
        };
        let classes = cli.classes;
        device.seed(1);
        let x = Tensor::<4>::random(
            [batch, channels, side, side],
            Distribution::Normal(0.0, 1.0),
            &ad,
        );
        let labels: Vec<i64> = (0..batch as i64)
            .map(|i| i % classes.min(10) as i64)
            .collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad);
        // One case per rule: its model and optimizer, one training step on the fixed batch.
        let mut cases: Vec<Box<dyn FnMut() -> Result<(), String> + '_>> = case_keys
            .iter()
            .map(|&(rule, _, kernels_on)| {
                let rule: Rule = rule.parse().expect("a rule name");
                let mut config = ModelConfig::new(arch, classes, channels, side, rule);
                config.stem = cli.stem;
                let mut model: Option<Model> = Some(config.init(&ad));
                // wt's SGD recipe, momentum 0.9, no weight decay.
                let mut optim = FeedbackOptimizer::sgd(0.9, 0.0);
                let (x, y, criterion, device) = (&x, &y, &criterion, &device);
                let kernels = if kernels_on {
                    FlexKernels::Wt
                } else {
                    FlexKernels::Burn
                };
                Box::new(move || {
                    kernels.run(|| {
                        let m = model.take().expect("model present between steps");
                        let logits = m.forward(x.clone());
                        // DRTP's layers take the labels (a no-op for the other rules).
                        let n = y.dims()[0].max(1);
                        wt::direct_targets(y.clone(), 1.0 / n as f64);
                        let loss = criterion.forward(logits, y.clone());
                        let grads = GradientsParams::from_grads(loss.backward(), &m);
                        model = Some(optim.step(0.01, m, grads));
                        device.sync().map_err(|e| format!("device sync: {e:?}"))
                    })
                }) as Box<dyn FnMut() -> Result<(), String>>
            })
            .collect();
        let steps = steps.unwrap_or(if arch == Architecture::Mlp { 41 } else { 5 });
        let medians = interleaved(&mut cases, warmup, steps)?;
        // Each case's memory over one more step, alone.
        let memory = (cases.iter_mut())
            .map(|case| peak_memory(&device, case))
            .collect::<Result<Vec<_>, String>>()?;
        for ((&(rule, conv, _), median), &(bytes, memory_kind)) in
            case_keys.iter().zip(&medians).zip(&memory)
        {
            let bp = case_keys
                .iter()
                .position(|&(r, k, _)| r == "bp" && k == conv)
                .map(|i| medians[i].as_secs_f64());
            let s = median.as_secs_f64();
            let ratio = bp.map(|b| s / b);
            println!(
                "{:<10}{:<6}{:<6}{:>5}{:>9.1}{:>10.1}{:>12}{:>10}",
                name.trim(),
                rule,
                conv,
                batch,
                s * 1e3,
                batch as f64 / s,
                ratio.map_or("-".to_string(), |r| format!("{r:.3}")),
                bytes.map_or("-".to_string(), |b| format!(
                    "{:.1}",
                    b as f64 / (1 << 20) as f64
                )),
            );
            rows.push(format!(
                "{{\"model\":\"{}\",\"rule\":\"{}\",\"backend\":\"{device_name}\",\"conv\":\"{conv}\",\"batch\":{batch},\"step_ms\":{:.2},\"images_per_s\":{:.1},\"ratio_to_bp\":{},\"peak_memory_bytes\":{},\"memory_kind\":\"{memory_kind}\"}}",
                name.trim(),
                rule,
                s * 1e3,
                batch as f64 / s,
                ratio.map_or("null".to_string(), |r| format!("{r:.3}")),
                bytes.map_or("null".to_string(), |b| b.to_string()),
            ));
        }
    }
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
