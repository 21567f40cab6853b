//! Criterion benchmark of what a rule costs over Burn's own layer: one training step's
//! gradient work (forward, squared-output loss, backward with the input's gradient, the rule's
//! per-step work) of a dense
//! layer (batch 128, 1024→1024) and a conv layer (batch 32, 64→64, 32×32, 3×3, padding 1;
//! stride 1 and stride 2), for Burn's layer and for every rule (BP, FA, uSF, brSF, frSF, KP,
//! WM), on Flex.
//!
//! ```text
//! cargo bench --bench feedback_layers                 # all three groups, about 5 minutes
//! cargo bench --bench feedback_layers -- linear       # one group (criterion's filter)
//! ```
//! `examples/bench_rules.rs` prints the same steps as one table (interleaved rounds, ratios
//! to Burn's layer) in one run; this is the statistics-heavy view.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use wt::wt_core::Named;
use wt::{FeedbackConv2d, FeedbackConv2dConfig, FeedbackLinear, FeedbackLinearConfig, Rule};

#[path = "common/layer_step.rs"]
mod layer_step;
use layer_step::step;

fn rules() -> impl Iterator<Item = (&'static str, Rule)> {
    (Rule::all().into_iter()).map(|rule| (rule.name(), rule.with_outputs(10)))
}

fn linear(c: &mut Criterion, device: &Device) {
    let ad = device.clone().autodiff();
    let mut group = c.benchmark_group("linear_128x1024x1024");
    group.sample_size(20);
    // Tracked inputs, as for any layer but a network's first: the backward pass computes the
    // input gradient, which is where a rule's feedback weights act.
    let x = Tensor::<2>::random([128, 1024], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let burn_layer = LinearConfig::new(1024, 1024).init(&ad);
    group.bench_function("burn", |b| {
        b.iter(|| step(&burn_layer, &|m: &Linear| m.forward(x.clone()), device))
    });
    for (name, rule) in rules() {
        let layer = FeedbackLinearConfig::new(1024, 1024)
            .with_rule(rule)
            .init(&ad);
        group.bench_function(name, |b| {
            b.iter(|| step(&layer, &|m: &FeedbackLinear| m.forward(x.clone()), device))
        });
    }
    group.finish();
}

fn conv(c: &mut Criterion, device: &Device, stride: usize) {
    let ad = device.clone().autodiff();
    let mut group = c.benchmark_group(format!("conv_32x64x32x32_3x3_stride{stride}"));
    group.sample_size(10);
    let x =
        Tensor::<4>::random([32, 64, 32, 32], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let pad = PaddingConfig2d::Explicit(1, 1, 1, 1);
    let burn_conv = Conv2dConfig::new([64, 64], [3, 3])
        .with_stride([stride, stride])
        .with_padding(pad.clone())
        .init(&ad);
    group.bench_function("burn", |b| {
        b.iter(|| step(&burn_conv, &|m: &Conv2d| m.forward(x.clone()), device))
    });
    for (name, rule) in rules() {
        let layer = FeedbackConv2dConfig::new([64, 64], [3, 3])
            .with_stride([stride, stride])
            .with_padding(pad.clone())
            .with_rule(rule)
            .init(&ad);
        group.bench_function(name, |b| {
            b.iter(|| step(&layer, &|m: &FeedbackConv2d| m.forward(x.clone()), device))
        });
    }
    group.finish();
}

fn layers(c: &mut Criterion) {
    // As bench_rules and wt's examples: glibc keeps freed blocks (docs/benchmarks.md).
    wt::wt_train::allocator::keep_freed_memory();
    let device = Device::flex();
    linear(c, &device);
    conv(c, &device, 1);
    conv(c, &device, 2);
}

criterion_group!(benches, layers);
criterion_main!(benches);
