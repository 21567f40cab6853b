//! What a rule costs over Burn's own layer: forward + backward of one dense and one conv layer,
//! each rule against `burn::nn::Linear` / `Conv2d`, medians measured in one run.
//!
//! ```text
//! cargo bench --bench feedback_layers                      # flex
//! cargo bench --bench feedback_layers --features ndarray -- --device ndarray
//! ```
//! Prints a table and one JSON line per row:
//! `{"layer":"linear","rule":"fa","backend":"flex","ratio_to_burn":1.01}`.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{LinearConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use wt::wt_core::device::parse_device;
use wt::{FeedbackConv2dConfig, FeedbackLinearConfig, Rule};

/// Median wall time of `f` over `reps` runs after `warmup` runs; `f` syncs the device.
fn median(warmup: usize, reps: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[reps / 2]
}

/// Median time of one training step's gradient work on `model`: forward, a squared-output
/// loss, backward, gradients collected per parameter (and, for the weight mirror, its mirror
/// step), then a device sync.
fn time_step<M: Module, const D: usize>(
    model: &M,
    forward: impl Fn(&M) -> Tensor<D>,
    device: &Device,
) -> Duration {
    median(3, 15, || {
        let loss = forward(model).powi_scalar(2).mean();
        let mut grads = GradientsParams::from_grads(loss.backward(), model);
        wt::add_feedback_gradients(model, &mut grads, 0.1);
        drop(grads);
        device.sync().expect("device sync");
    })
}

fn main() {
    let mut device_name = "flex".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--device" {
            device_name = args.next().expect("--device needs a value");
        }
    }
    let device: Device = parse_device(&device_name).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let ad = device.clone().autodiff();

    println!("layer   rule  median_ms  burn_ms  ratio   ({device_name})");
    let mut rows = Vec::new();

    // Dense: batch 128, 1024 -> 1024.
    let x = Tensor::<2>::random([128, 1024], Distribution::Normal(0.0, 1.0), &ad);
    let burn_layer = LinearConfig::new(1024, 1024).init(&ad);
    let burn_ms = time_step(&burn_layer, |m| m.forward(x.clone()), &device);
    for name in Rule::NAMES {
        let rule: Rule = name.parse().expect("rule name");
        let layer = FeedbackLinearConfig::new(1024, 1024)
            .with_rule(rule)
            .init(&ad);
        let t = time_step(&layer, |m| m.forward(x.clone()), &device);
        rows.push(("linear", name, t, burn_ms));
    }

    // Conv: batch 32, 64 -> 64 channels, 32x32, 3x3, padding 1; and a stride-2 case.
    let x = Tensor::<4>::random([32, 64, 32, 32], Distribution::Normal(0.0, 1.0), &ad);
    for (label, stride) in [("conv", 1), ("conv_s2", 2)] {
        let burn_conv = Conv2dConfig::new([64, 64], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&ad);
        let burn_ms = time_step(&burn_conv, |m| m.forward(x.clone()), &device);
        for name in Rule::NAMES {
            let rule: Rule = name.parse().expect("rule name");
            let layer = FeedbackConv2dConfig::new([64, 64], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_rule(rule)
                .init(&ad);
            let t = time_step(&layer, |m| m.forward(x.clone()), &device);
            rows.push((label, name, t, burn_ms));
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
