//! What a rule costs over Burn's own layer: forward + backward (the input's gradient, where the
//! rule's `B` acts, and the parameters') + the rule's per-step work (brSF's redraw, WM's mirror
//! step) of one dense and two conv layers, each rule against
//! `burn::nn::Linear` / `Conv2d`. Burn's layer and the rules are measured in rounds, one step
//! each per round, so that drift of a noisy machine hits all alike; medians.
//!
//! ```text
//! cargo run --release --example bench_rules                      # flex, under 5 minutes
//! cargo run --release --features ndarray --example bench_rules -- --device ndarray
//! ```
//! `--help` lists the options (device, rounds, warm-up). Prints a table and one
//! JSON line per row: `{"layer":"linear","rule":"fa","backend":"flex","ratio_to_burn":1.01}`.

use burn::nn::conv::Conv2dConfig;
use burn::nn::{LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use wt::wt_core::Named;
use wt::wt_core::device::parse_device;
use wt::{FeedbackConv2dConfig, FeedbackLinearConfig, Rule};

#[path = "../benches/common/layer_step.rs"]
mod layer_step;
use layer_step::step;
#[path = "../benches/common/interleaved.rs"]
mod interleaved;
use interleaved::interleaved;

/// A case of the table: one layer's step, which cannot fail (`step` panics on a failed sync).
type Case<'a> = Box<dyn FnMut() -> Result<(), std::convert::Infallible> + 'a>;

fn case<'a>(mut step: impl FnMut() + 'a) -> Case<'a> {
    Box::new(move || {
        step();
        Ok(())
    })
}

/// Each rule's layer cost against Burn's own layers.
#[derive(Parser)]
struct Cli {
    /// Device: flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, default_value = "flex")]
    device: String,
    /// Measured rounds
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// Unmeasured rounds first
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    let Cli {
        device: device_name,
        reps,
        warmup,
    } = Cli::parse();
    let reps = reps.max(1);
    let device: Device = parse_device(&device_name).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let ad = device.clone().autodiff();
    let rules: Vec<(&str, Rule)> = (Rule::all().into_iter())
        .map(|r| (r.name(), r.with_outputs(10)))
        .collect();
    println!("layer   rule  median_ms  burn_ms  ratio   ({device_name})");
    let mut rows = Vec::new();

    // Dense: batch 128, 1024 -> 1024.
    {
        // A tracked input, as for any layer but a network's first: the backward pass computes
        // the input gradient, which is where a rule's feedback weights act.
        let x =
            Tensor::<2>::random([128, 1024], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let fwd = |m: &burn::nn::Linear| m.forward(x.clone());
        let ffwd = |m: &wt::FeedbackLinear| m.forward(x.clone());
        let burn_layer = LinearConfig::new(1024, 1024).init(&ad);
        let layers: Vec<_> = rules
            .iter()
            .map(|(_, r)| {
                FeedbackLinearConfig::new(1024, 1024)
                    .with_rule(*r)
                    .init(&ad)
            })
            .collect();
        let mut cases: Vec<Case> = vec![case(|| step(&burn_layer, &fwd, &device))];
        for layer in &layers {
            cases.push(case(|| step(layer, &ffwd, &device)));
        }
        let Ok(t) = interleaved(&mut cases, warmup, reps);
        for ((name, _), time) in rules.iter().zip(&t[1..]) {
            rows.push(("linear", *name, *time, t[0]));
        }
    }

    // Conv: batch 32, 64 -> 64 channels, 32x32, 3x3, padding 1; and a stride-2 case.
    let x =
        Tensor::<4>::random([32, 64, 32, 32], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    for (label, stride) in [("conv", 1), ("conv_s2", 2)] {
        let fwd = |m: &burn::nn::conv::Conv2d| m.forward(x.clone());
        let ffwd = |m: &wt::FeedbackConv2d| m.forward(x.clone());
        let burn_conv = Conv2dConfig::new([64, 64], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&ad);
        let layers: Vec<_> = rules
            .iter()
            .map(|(_, r)| {
                FeedbackConv2dConfig::new([64, 64], [3, 3])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_rule(*r)
                    .init(&ad)
            })
            .collect();
        let mut cases: Vec<Case> = vec![case(|| step(&burn_conv, &fwd, &device))];
        for layer in &layers {
            cases.push(case(|| step(layer, &ffwd, &device)));
        }
        let Ok(t) = interleaved(&mut cases, warmup, reps);
        for ((name, _), time) in rules.iter().zip(&t[1..]) {
            rows.push((label, *name, *time, t[0]));
        }
    }
    for (layer, rule, t, burn) in &rows {
        println!(
            "{layer:<8}{rule:<6}{:>9.2}{:>9.2}{:>7.3}",
            t.as_secs_f64() * 1e3,
            burn.as_secs_f64() * 1e3,
            t.as_secs_f64() / burn.as_secs_f64()
        );
    }
    for (layer, rule, t, burn) in &rows {
        println!(
            "{{\"layer\":\"{layer}\",\"rule\":\"{rule}\",\"backend\":\"{device_name}\",\"ratio_to_burn\":{:.3}}}",
            t.as_secs_f64() / burn.as_secs_f64()
        );
    }
}
