//! Criterion benchmark of what a rule costs over Burn's own layer: one training step's
//! gradient work (forward, squared-output loss, backward, the rule's per-step work) of a dense
//! layer (batch 128, 1024→1024) and a conv layer (batch 32, 64→64, 32×32, 3×3), for Burn's
//! layer and for BP, FA, KP and WM, on Flex.
//!
//! ```text
//! cargo bench --bench feedback_layers
//! ```
//! `examples/bench_rules.rs` prints the full table (every rule, interleaved rounds, ratios)
//! in one run; this is the statistics-heavy view of the same steps.

use burn::nn::conv::Conv2dConfig;
use burn::nn::{LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use wt::{FeedbackConv2dConfig, FeedbackLinearConfig, Rule};

#[path = "common/layer_step.rs"]
mod layer_step;
use layer_step::step;

fn layers(c: &mut Criterion) {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let rules = ["bp", "fa", "kp", "wm"];

    let mut group = c.benchmark_group("linear_128x1024x1024");
    group.sample_size(20);
    let x = Tensor::<2>::random([128, 1024], Distribution::Normal(0.0, 1.0), &ad);
    let burn_layer = LinearConfig::new(1024, 1024).init(&ad);
    group.bench_function("burn", |b| {
        b.iter(|| {
            step(
                &burn_layer,
                &|m: &burn::nn::Linear| m.forward(x.clone()),
                &device,
            )
        })
    });
    for name in rules {
        let rule: Rule = name.parse().expect("rule name");
        let layer = FeedbackLinearConfig::new(1024, 1024)
            .with_rule(rule)
            .init(&ad);
        group.bench_function(name, |b| {
            b.iter(|| {
                step(
                    &layer,
                    &|m: &wt::FeedbackLinear| m.forward(x.clone()),
                    &device,
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("conv_32x64x32x32_3x3");
    group.sample_size(10);
    let x = Tensor::<4>::random([32, 64, 32, 32], Distribution::Normal(0.0, 1.0), &ad);
    let pad = PaddingConfig2d::Explicit(1, 1, 1, 1);
    let burn_conv = Conv2dConfig::new([64, 64], [3, 3])
        .with_padding(pad.clone())
        .init(&ad);
    group.bench_function("burn", |b| {
        b.iter(|| {
            step(
                &burn_conv,
                &|m: &burn::nn::conv::Conv2d| m.forward(x.clone()),
                &device,
            )
        })
    });
    for name in rules {
        let rule: Rule = name.parse().expect("rule name");
        let layer = FeedbackConv2dConfig::new([64, 64], [3, 3])
            .with_padding(pad.clone())
            .with_rule(rule)
            .init(&ad);
        group.bench_function(name, |b| {
            b.iter(|| {
                step(
                    &layer,
                    &|m: &wt::FeedbackConv2d| m.forward(x.clone()),
                    &device,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
