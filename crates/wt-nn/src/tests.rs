//! Behaviour of the feedback layers under each rule, on every test device.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{LinearConfig, PaddingConfig2d};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::{Device, Distribution, Tensor, Tolerance};
use wt_core::device::test_devices;
use wt_core::{MirrorSamples, MirrorUpdate, Rule, WeightMirror, angle_degrees};

use crate::*;
use wt_core::Named;

fn rand<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    a.into_data()
        .assert_approx_eq::<f32>(&b.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
}

/// Every rule; DFA for a network of `outputs` outputs.
fn all_rules_for(outputs: usize) -> Vec<Rule> {
    (Rule::all().into_iter())
        .map(|r| r.with_outputs(outputs))
        .collect()
}

/// The rules that send the error through a `B` shaped like `W` (all but DFA).
fn all_rules() -> Vec<Rule> {
    all_rules_for(1)
        .into_iter()
        .filter(|r| r.direct().is_none())
        .collect()
}

#[test]
fn backprop_layers_match_burn_layers_exactly() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let ad = device.autodiff();
        // Linear.
        let burn_linear = LinearConfig::new(9, 4).init(&ad);
        let ours = FeedbackLinear::from(burn_linear.clone());
        let x = rand([5, 9], &ad).require_grad();
        let up = rand([5, 4], &ad);
        let g_ours = (ours.forward(x.clone()) * up.clone()).sum().backward();
        let dx_ours = x.grad(&g_ours).unwrap();
        let x2 = x.clone().detach().require_grad();
        let g_burn = (burn_linear.forward(x2.clone()) * up).sum().backward();
        eprintln!("bp linear on {name}");
        close("dx", dx_ours, x2.grad(&g_burn).unwrap());
        close(
            "dW",
            ours.weight().grad(&g_ours).unwrap(),
            burn_linear.weight.grad(&g_burn).unwrap(),
        );
        close(
            "db",
            ours.bias().as_ref().unwrap().grad(&g_ours).unwrap(),
            burn_linear.bias.as_ref().unwrap().grad(&g_burn).unwrap(),
        );

        // Conv2d with stride, padding and groups.
        let burn_conv = Conv2dConfig::new([4, 6], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_groups(2)
            .init(&ad);
        let ours = FeedbackConv2d::from(burn_conv.clone());
        let x = rand([2, 4, 9, 9], &ad).require_grad();
        let y = ours.forward(x.clone());
        let up = rand(y.dims(), &ad);
        let g_ours = (y * up.clone()).sum().backward();
        let x2 = x.clone().detach().require_grad();
        let g_burn = (burn_conv.forward(x2.clone()) * up).sum().backward();
        eprintln!("bp conv on {name}");
        close(
            "conv dx",
            x.grad(&g_ours).unwrap(),
            x2.grad(&g_burn).unwrap(),
        );
        close(
            "conv dW",
            ours.weight().grad(&g_ours).unwrap(),
            burn_conv.weight.grad(&g_burn).unwrap(),
        );
    }
}

/// The B a rule must use, written out from the rule's definition (not through
/// `Rule::feedback_matrix`), for any rule but brSF (which draws B at every forward).
fn expected_feedback<const D: usize>(
    rule: &Rule,
    weight: &Tensor<D>,
    stored: Option<Tensor<D>>,
    scale: f64,
) -> Tensor<D> {
    let w = weight.clone().inner();
    match rule.name() {
        "bp" => w,
        "fa" | "kp" | "wm" | "sa" | "aa" | "ia" => stored.expect("stored B").inner(),
        "usf" => w.sign().mul_scalar(scale),
        "frsf" => stored.expect("stored |R0|").inner() * w.sign(),
        other => panic!("no closed form for {other}"),
    }
}

#[test]
fn every_rule_sends_the_error_through_its_feedback_matrix() {
    let _serial = wt_core::device::device_test_lock();
    use burn::tensor::module::{conv_transpose2d, conv2d, linear};
    use burn::tensor::ops::ConvTransposeOptions;
    for (name, device) in test_devices() {
        let ad = device.autodiff();
        for rule in all_rules() {
            let what = |t: &str| format!("{} {t} on {name}", rule.name());
            // Linear: forward and dW as Burn's linear, dx = g·Bᵀ.
            let layer = FeedbackLinearConfig::new(12, 7).with_rule(rule).init(&ad);
            let x = rand([4, 12], &ad).require_grad();
            let up = rand([4, 7], &ad);
            let y = layer.forward(x.clone());
            let g = (y.clone() * up.clone()).sum().backward();
            let w = layer.weight().val().inner();
            let bias = layer.bias().as_ref().map(|b| b.val().inner());
            let x_in = x.clone().inner();
            close(
                &what("linear forward"),
                y.inner(),
                linear(x_in.clone(), w.clone(), bias),
            );
            close(
                &what("linear dW"),
                layer.weight().grad(&g).unwrap(),
                x_in.transpose().matmul(up.clone().inner()),
            );
            if rule.name() != "brsf" {
                // brSF draws B at each forward: its B is checked through the sign test below.
                let b = expected_feedback(
                    &rule,
                    &layer.weight().val(),
                    layer.feedback().as_ref().map(|p| p.val()),
                    layer.sign_scale(),
                );
                close(
                    &what("linear B"),
                    layer.feedback_matrix().inner(),
                    b.clone(),
                );
                close(
                    &what("linear dx"),
                    x.grad(&g).unwrap(),
                    up.inner().matmul(b.transpose()),
                );
            } else {
                let dx = x.grad(&g).unwrap();
                assert!(
                    dx.abs().sum().into_scalar::<f32>() > 0.0,
                    "{}",
                    what("dx is zero")
                );
            }

            // Conv with stride 2, padding 1, dilation 2, groups 2.
            let conv = FeedbackConv2dConfig::new([4, 6], [3, 3])
                .with_stride([2, 2])
                .with_dilation([2, 2])
                .with_groups(2)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_rule(rule)
                .init(&ad);
            let x = rand([2, 4, 10, 10], &ad).require_grad();
            let y = conv.forward(x.clone());
            let up = rand(y.dims(), &ad);
            let g = (y.clone() * up.clone()).sum().backward();
            let options = conv.options(10, 10);
            let w = conv.weight().val().inner();
            let bias = conv.bias().as_ref().map(|b| b.val().inner());
            close(
                &what("conv forward"),
                y.inner(),
                conv2d(x.clone().inner(), w.clone(), bias, options.clone()),
            );
            if rule.name() != "brsf" {
                let [_, _, h_out, _] = up.dims();
                let out_pad = 10 + 2 - ((h_out - 1) * 2 + 5);
                let t = ConvTransposeOptions::new([2, 2], [1, 1], [out_pad; 2], [2, 2], 2);
                let b = expected_feedback(
                    &rule,
                    &conv.weight().val(),
                    conv.feedback().as_ref().map(|p| p.val()),
                    conv.sign_scale(),
                );
                let expected = conv_transpose2d(up.inner(), b, None, t);
                close(&what("conv dx"), x.grad(&g).unwrap(), expected);
            }
        }
    }
}

/// ‖W − B‖ for a KP layer.
fn kp_gap(layer: &FeedbackLinear) -> f64 {
    let w = layer.weight().val().inner();
    let b = layer.feedback().as_ref().unwrap().val().inner();
    (w - b).powi_scalar(2).sum().into_scalar::<f64>().sqrt()
}

fn kp_run(device: &Device, sgd: SgdConfig, lr: f64, steps: usize) -> Vec<f64> {
    let ad = device.clone().autodiff();
    let mut layer = FeedbackLinearConfig::new(16, 8)
        .with_rule(Rule::KolenPollack(wt_core::KolenPollack::default()))
        .init(&ad);
    let mut optim = sgd.init();
    let mut gaps = vec![kp_gap(&layer)];
    for _ in 0..steps {
        let x = rand([10, 16], &ad);
        let loss = layer.forward(x).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        layer = optim.step(lr, layer, grads);
        gaps.push(kp_gap(&layer));
    }
    gaps
}

#[test]
fn kolen_pollack_closes_the_gap_at_the_weight_decay_rate() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let (lr, decay, k) = (0.05, 0.1, 20);
        let gaps = kp_run(
            &device,
            SgdConfig::new().with_weight_decay(Some(WeightDecayConfig::new(decay))),
            lr,
            k,
        );
        let expected = (1.0 - lr * decay as f64).powi(k as i32) * gaps[0];
        let rel = (gaps[k] - expected).abs() / expected;
        assert!(rel < 1e-3, "{name}: gap {} expected {expected}", gaps[k]);

        let plain = kp_run(&device, SgdConfig::new(), lr, k);
        let drift = (plain[k] - plain[0]).abs() / plain[0];
        assert!(
            drift < 1e-4,
            "{name}: without decay the gap moved by {drift}"
        );

        let momentum = kp_run(
            &device,
            SgdConfig::new()
                .with_weight_decay(Some(WeightDecayConfig::new(decay)))
                .with_momentum(Some(MomentumConfig::new().with_momentum(0.9))),
            lr,
            k,
        );
        for w in momentum.windows(2) {
            assert!(
                w[1] < w[0],
                "{name}: with momentum the gap grew: {momentum:?}"
            );
        }
    }
}

/// KP's `feedback_decay` λ_K: with plain SGD (lr η, the optimizer's weight decay λ on both),
/// each step is `W ← (1 − ηλ)·W − η·G` and `B ← (1 − η(λ + λ_K))·B − η·G`, with `G` the W
/// gradient of backward, which `B` receives too. Checked step by step against that math, on
/// a conv layer (the same Step pass serves both layer kinds; the linear one is in
/// `kolen_pollack_closes_the_gap_at_the_weight_decay_rate`).
#[test]
fn kolen_pollack_feedback_decay_shrinks_b_alone() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let ad = device.clone().autodiff();
        let (lr, wd, kd) = (0.05, 0.02f64, 0.4);
        let rule = Rule::KolenPollack(wt_core::KolenPollack { feedback_decay: kd });
        let mut layer = FeedbackConv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .with_rule(rule)
            .init(&ad);
        let mut optim = SgdConfig::new()
            .with_weight_decay(Some(WeightDecayConfig::new(wd as f32)))
            .init();
        for step in 0..3 {
            let w = layer.weight().val().inner();
            let b = layer.feedback().as_ref().unwrap().val().inner();
            let loss = layer.forward(rand([2, 3, 6, 6], &ad)).powi_scalar(2).mean();
            let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
            let g = grads.get::<4>(layer.weight().id).unwrap();
            add_feedback_gradients(&layer, &mut grads, lr);
            layer = optim.step(lr, layer, grads);
            let what = |t: &str| format!("{name} step {step}: {t}");
            close(
                &what("W"),
                layer.weight().val().inner(),
                w.mul_scalar(1.0 - lr * wd) - g.clone().mul_scalar(lr),
            );
            close(
                &what("B"),
                layer.feedback().as_ref().unwrap().val().inner(),
                b.mul_scalar(1.0 - lr * (wd + kd)) - g.mul_scalar(lr),
            );
        }
    }
}

fn two_layers(rule: Rule, device: &Device) -> TwoLayer {
    let ad = device.clone().autodiff();
    let rule = rule.with_outputs(3);
    TwoLayer {
        a: FeedbackLinearConfig::new(10, 32).with_rule(rule).init(&ad),
        b: FeedbackLinearConfig::new(32, 3).with_rule(rule).init(&ad),
    }
}

/// Trains a two-layer model a few steps; returns (first loss, last loss, trained model).
fn train_two_layers(mut model: TwoLayer, device: &Device, steps: usize) -> (f32, f32, TwoLayer) {
    let ad = device.clone().autodiff();
    let x = rand([64, 10], &ad);
    let target = x.clone().slice([0..64, 0..3]).tanh();
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
        .init();
    let lr = 0.05;
    let (mut first, mut last) = (0.0, 0.0);
    for step in 0..steps {
        let out = direct_error(
            model
                .b
                .forward(burn::tensor::activation::relu(model.a.forward(x.clone()))),
        );
        let loss = (out - target.clone()).powi_scalar(2).mean();
        let value = loss.clone().into_scalar::<f32>();
        if step == 0 {
            first = value;
        }
        last = value;
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        add_feedback_gradients(&model, &mut grads, lr / (1.0 - 0.9));
        model = optim.step(lr, model, grads);
        model = mirror_update(model);
    }
    (first, last, model)
}

#[derive(Module, Debug)]
struct TwoLayer {
    a: FeedbackLinear,
    b: FeedbackLinear,
}

/// Every rule lowers the loss of a two-layer model, and its hidden layer learns from the error
/// the rule sends it, not only the output layer: the hidden weights move (with no error they
/// would not), and on a fresh batch their update under the rule points within 65° of
/// backprop's on the same weights (an error unrelated to the task sits near 90°), FA and DFA
/// aside, whose error starts unrelated by design.
#[test]
fn a_two_layer_model_learns_with_every_rule() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        // DRTP projects class labels, which this regression task has none of (its MNIST and
        // zoo tests train it).
        let rules = all_rules_for(3).into_iter();
        for rule in rules.filter(|r| !matches!(r, Rule::DirectRandomTargetProjection(_))) {
            device.seed(5);
            let model = two_layers(rule, &device);
            let angle_before = weight_alignment(&model)[0].weight.angle_deg;
            let w0 = model.a.weight().val().inner();
            let (first, last, trained) = train_two_layers(model, &device, 30);
            let what = format!("{} on {name}", rule.name());
            assert!(last < 0.8 * first, "{what}: loss {first} -> {last}");
            let w1 = trained.a.weight().val().inner();
            let moved = (w1 - w0.clone())
                .powi_scalar(2)
                .sum()
                .sqrt()
                .into_scalar::<f32>()
                / w0.powi_scalar(2).sum().sqrt().into_scalar::<f32>();
            assert!(moved > 1e-3, "{what}: the hidden layer moved by {moved}");
            let ad = device.clone().autodiff();
            let x = rand([64, 10], &ad);
            let target = x.clone().slice([0..64, 0..3]).tanh();
            let probe = gradient_alignment(&trained, |m: &TwoLayer| {
                let out =
                    m.b.forward(burn::tensor::activation::relu(m.a.forward(x.clone())));
                (direct_error(out) - target.clone()).powi_scalar(2).mean()
            });
            let hidden = &probe.layers[0];
            assert_eq!(hidden.path, "a");
            // FA's and DFA's error starts unrelated to backprop's by design (random `B`, `D`) and
            // 30 steps do not align it reliably (FA 79–91° with seed 5 on Flex, NdArray and
            // wgpu; unseeded 65–81°, DFA 73–76°): for them the weight change above is the check.
            // The others aligned fast in unseeded runs (12–57°), and pass 65° with seed 5.
            let fixed_random = matches!(
                rule,
                Rule::FeedbackAlignment(_) | Rule::DirectFeedbackAlignment(_)
            );
            // Kunin et al.'s rules at their default coefficients move B toward W by about 10°
            // in 30 steps (SA, AA, IA: 89.5° → 78.6–79.5° on Flex and NdArray, 94.3° →
            // 80.4–82.2° on wgpu), too little for the update bound (their update angles
            // 65–87°): their check is that B moved toward W.
            let local = rule.alignment_terms(0.0).is_some();
            let angle_after = weight_alignment(&trained)[0].weight.angle_deg;
            assert!(
                !local || angle_after < angle_before - 5.0,
                "{what}: B–W angle {angle_before:.1}° → {angle_after:.1}°"
            );
            assert!(
                fixed_random || local || hidden.update_angle_deg < 65.0,
                "{what}: the hidden layer's update is {:.1}° from backprop's (bound 65°)",
                hidden.update_angle_deg
            );
        }
    }
}

#[test]
fn fa_keeps_b_fixed_and_usf_tracks_the_sign_of_w() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let before = two_layers("fa".parse().unwrap(), &device);
        let b0 = before.b.feedback().as_ref().unwrap().val().inner();
        let w0 = before.b.weight().val().inner();
        let (_, _, after) = train_two_layers(before, &device, 5);
        let b1 = after.b.feedback().as_ref().unwrap().val().inner();
        b0.into_data().assert_eq(&b1.into_data(), true);
        let w1 = after.b.weight().val().inner();
        assert!(
            (w0 - w1).abs().sum().into_scalar::<f32>() > 0.0,
            "{name}: FA did not train W"
        );

        let ad = device.clone().autodiff();
        let (_, _, usf) = train_two_layers(two_layers("usf".parse().unwrap(), &device), &device, 5);
        for layer in [&usf.a, &usf.b] {
            let expected = layer
                .weight()
                .val()
                .inner()
                .sign()
                .mul_scalar(layer.sign_scale());
            close("usf B", layer.feedback_matrix().inner(), expected);
            // And the backward pass uses exactly that B.
            let x = rand([3, layer.weight().dims()[0]], &ad).require_grad();
            let up = rand([3, layer.weight().dims()[1]], &ad);
            let g = (layer.forward(x.clone()) * up.clone()).sum().backward();
            let b = layer.feedback_matrix().inner();
            close(
                "usf dx",
                x.grad(&g).unwrap(),
                up.inner().matmul(b.transpose()),
            );
        }
    }
}

fn wm_angle<M: Module>(model: &M) -> f64 {
    weight_alignment(model)[0].weight.angle_deg
}

/// With λ_B = η_B·σ², mirrored B converges to W itself, scale included.
fn assert_wm_scale<M: Module>(what: &str, model: &M) {
    let ratio = weight_alignment(model)[0].weight.norm_ratio;
    assert!((0.85..1.2).contains(&ratio), "{what}: |B|/|W| = {ratio}");
}

fn mirror_rule(mirror_lr: f64, mirror_batch: usize) -> Rule {
    Rule::WeightMirror(WeightMirror {
        sigma: 1.0,
        mirror_lr,
        mirror_decay: None,
        mirror_batch,
        mirror_steps: 1,
        update: MirrorUpdate::Direct,
        samples: MirrorSamples::default(),
    })
}

/// `fan-in:R` gives each layer its own noise: a conv layer the smallest square response map
/// with `mirror_batch·side² ≥ R·fan_in`, a dense layer `max(mirror_batch, ⌈R·fan_in⌉)` rows
/// (the same draws as the explicit correlation with that size), and so a wide layer's
/// estimate of `σ²W` is nearer `W` than under the fixed 4 × 4 patch.
#[test]
fn per_fan_in_mirror_samples_scale_each_layers_noise() {
    use crate::hook::FeedbackLayer;
    use wt_core::mirror::{conv2d_mirror_correlation, linear_correlation};
    let _serial = wt_core::device::device_test_lock();
    let fan_in = WeightMirror {
        mirror_batch: 8,
        samples: MirrorSamples::PerFanIn { ratio: 2.0 },
        ..WeightMirror::default()
    };
    let patch = WeightMirror {
        samples: MirrorSamples::default(),
        ..fan_in
    };
    for (name, device) in test_devices() {
        // fan-ins 2·9 = 18 (2·18 = 36 samples: side 3, as 8·2² = 32 < 36) and
        // 6·9 = 54 (108 samples: side 4, as 8·3² = 72 < 108).
        for (c_in, side) in [(2, 3), (6, 4)] {
            let conv = FeedbackConv2dConfig::new([c_in, 5], [3, 3])
                .with_stride([2, 1])
                .with_rule(Rule::WeightMirror(fan_in))
                .init(&device);
            let w = conv.weight().val();
            device.seed(5);
            let got = conv.mirror_correlation(w.clone(), &fan_in);
            device.seed(5);
            let want = conv2d_mirror_correlation(w, [2, 1], [1, 1], 1, 1.0, 8, side);
            close(&format!("{name}: conv c_in {c_in}"), got, want);
        }
        let dense = FeedbackLinearConfig::new(30, 4)
            .with_rule(Rule::WeightMirror(fan_in))
            .init(&device);
        let w = dense.weight().val();
        device.seed(6);
        let got = dense.mirror_correlation(w.clone(), &fan_in);
        device.seed(6);
        close(
            &format!("{name}: dense, 60 rows"),
            got,
            linear_correlation(w, 1.0, 60),
        );
        // A wide conv layer (fan-in 32·9 = 288): 8·4² = 128 samples under the patch, 8·9² = 648
        // scaled (at least 2·288).
        let wide = FeedbackConv2dConfig::new([32, 8], [3, 3])
            .with_rule(Rule::WeightMirror(fan_in))
            .init(&device);
        let w = wide.weight().val();
        device.seed(7);
        let scaled = angle_degrees(wide.mirror_correlation(w.clone(), &fan_in), w.clone());
        device.seed(7);
        let fixed = angle_degrees(wide.mirror_correlation(w.clone(), &patch), w);
        assert!(
            scaled + 10.0 < fixed,
            "{name}: estimate–W angle {scaled:.1}° scaled, {fixed:.1}° with the fixed patch"
        );
    }
}

/// A `Direct` mirror changes `B` only in `mirror_update`, by exactly one plain mirror step
/// on the current `W`; a `Gradient` mirror only through the pseudo-gradient.
#[test]
fn mirror_update_and_pseudo_gradient_each_serve_their_own_mode() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let ad = device.clone().autodiff();
        for update in [MirrorUpdate::Direct, MirrorUpdate::Gradient] {
            let Rule::WeightMirror(wm) = mirror_rule(0.3, 64) else {
                unreachable!()
            };
            let wm = WeightMirror { update, ..wm };
            let layer = FeedbackLinearConfig::new(12, 7)
                .with_rule(Rule::WeightMirror(wm))
                .init(&ad);
            let b_id = layer.feedback().as_ref().unwrap().id;
            let b0 = layer.feedback().as_ref().unwrap().val().inner();
            let w = layer.weight().val().inner();

            let out = layer.forward(rand([5, 12], &ad)).sum();
            let mut grads = GradientsParams::from_grads(out.backward(), &layer);
            add_feedback_gradients(&layer, &mut grads, 0.1);
            let pseudo = grads.get::<2>(b_id);
            assert_eq!(
                pseudo.is_some(),
                update == MirrorUpdate::Gradient,
                "{name} {update:?}: pseudo-gradient registered?"
            );

            device.seed(11);
            let b1 = mirror_update(layer).feedback().unwrap().val().inner();
            if update == MirrorUpdate::Direct {
                device.seed(11);
                let corr = wt_core::mirror::linear_correlation(w, wm.sigma, wm.mirror_batch);
                close(
                    &format!("{name} direct update"),
                    b1,
                    wm.apply(b0, vec![corr]),
                );
            } else {
                close(&format!("{name} gradient mode, no direct update"), b1, b0);
            }
        }
    }
}

#[test]
fn mirror_steps_alone_align_b_with_w_linear() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let t = std::time::Instant::now();
        let layer = FeedbackLinearConfig::new(256, 256)
            .with_rule(mirror_rule(0.02, 256))
            .init(&device);
        let start = wm_angle(&layer);
        assert!(
            start > 80.0,
            "{name}: random B starts near 90 deg, got {start}"
        );
        let layer = mirror_steps(layer, 200);
        let end = wm_angle(&layer);
        eprintln!(
            "{name}: linear WM angle {start:.1} -> {end:.1} in {:?}",
            t.elapsed()
        );
        assert!(end < 10.0, "{name}: linear WM angle {start} -> {end}");
        assert_wm_scale(&format!("{name} linear"), &layer);
    }
}

#[test]
fn mirror_steps_alone_align_b_with_w_conv() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        // W as a matrix is [256, 32·3·3]; 64 noise samples of 4x4 positions a step.
        let t = std::time::Instant::now();
        let layer = FeedbackConv2dConfig::new([32, 256], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_rule(mirror_rule(0.04, 64))
            .init(&device);
        let start = wm_angle(&layer);
        assert!(
            start > 80.0,
            "{name}: random B starts near 90 deg, got {start}"
        );
        let layer = mirror_steps(layer, 150);
        let end = wm_angle(&layer);
        eprintln!(
            "{name}: conv WM angle {start:.1} -> {end:.1} in {:?}",
            t.elapsed()
        );
        assert!(end < 10.0, "{name}: conv WM angle {start} -> {end}");
        assert_wm_scale(&format!("{name} conv"), &layer);
    }
}

#[test]
fn records_carry_feedback_weights() {
    let _serial = wt_core::device::device_test_lock();
    let device = test_devices()[0].1.clone();
    let dir = std::env::temp_dir().join(format!("wt-nn-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for rule in all_rules_for(4) {
        let layer = FeedbackLinearConfig::new(6, 4)
            .with_rule(rule)
            .init(&device);
        let path = dir.join(format!("{}.bpk", rule.name()));
        layer.clone().save_file(&path).unwrap();
        device.seed(99);
        let fresh = FeedbackLinearConfig::new(6, 4)
            .with_rule(rule)
            .init(&device);
        let loaded = fresh.load_file(&path);
        loaded
            .weight()
            .val()
            .into_data()
            .assert_eq(&layer.weight().val().into_data(), true);
        match (&layer.feedback(), &loaded.feedback()) {
            (Some(a), Some(b)) => a.val().into_data().assert_eq(&b.val().into_data(), true),
            (None, None) => {}
            _ => panic!("{}: feedback presence changed on load", rule.name()),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `#[derive(Module)]` twins of the feedback layers' parameter fields: the hand-written
/// `Module` impls (`module_impl.rs`) must record exactly the keys a derived one would.
#[derive(Module, Debug)]
struct LinearTwin {
    weight: burn::module::Param<Tensor<2>>,
    bias: Option<burn::module::Param<Tensor<1>>>,
    feedback: Option<burn::module::Param<Tensor<2>>>,
}

#[derive(Module, Debug)]
struct Conv2dTwin {
    weight: burn::module::Param<Tensor<4>>,
    bias: Option<burn::module::Param<Tensor<1>>>,
    feedback: Option<burn::module::Param<Tensor<4>>>,
}

#[derive(Module, Debug)]
struct Net {
    fc: FeedbackLinear,
    conv: FeedbackConv2d,
}

#[derive(Module, Debug)]
struct NetTwin {
    fc: LinearTwin,
    conv: Conv2dTwin,
}

#[test]
fn records_have_the_keys_of_a_derived_twin() {
    let _serial = wt_core::device::device_test_lock();
    let device = Device::flex();
    for rule in all_rules_for(3) {
        let fc = FeedbackLinearConfig::new(6, 4)
            .with_rule(rule)
            .init(&device);
        let conv = FeedbackConv2dConfig::new([2, 3], [3, 3])
            .with_rule(rule)
            .init(&device);
        let twin = NetTwin {
            fc: LinearTwin {
                weight: burn::module::Param::from_tensor(fc.weight().val().zeros_like()),
                bias: fc
                    .bias()
                    .as_ref()
                    .map(|b| burn::module::Param::from_tensor(b.val().zeros_like())),
                feedback: fc
                    .feedback()
                    .as_ref()
                    .map(|b| burn::module::Param::from_tensor(b.val().zeros_like())),
            },
            conv: Conv2dTwin {
                weight: burn::module::Param::from_tensor(conv.weight().val().zeros_like()),
                bias: conv
                    .bias()
                    .as_ref()
                    .map(|b| burn::module::Param::from_tensor(b.val().zeros_like())),
                feedback: conv
                    .feedback()
                    .as_ref()
                    .map(|b| burn::module::Param::from_tensor(b.val().zeros_like())),
            },
        };
        let ours = Net { fc, conv };
        // Strict loads (no missing, no unused key) both ways; the values come across.
        let loaded = twin
            .clone()
            .try_load_record(ours.clone().into_record())
            .unwrap_or_else(|e| panic!("{}: the twin cannot load our record: {e}", rule.name()));
        loaded
            .fc
            .weight
            .val()
            .into_data()
            .assert_eq(&ours.fc.weight().val().into_data(), true);
        let back = ours
            .clone()
            .try_load_record(twin.into_record())
            .unwrap_or_else(|e| panic!("{}: we cannot load the twin's record: {e}", rule.name()));
        assert!(
            back.conv.weight().val().abs().sum().into_scalar::<f64>() == 0.0,
            "{}: the twin's zeros did not load",
            rule.name()
        );
    }
}

#[test]
fn alignment_helpers_reach_nested_layers() {
    let _serial = wt_core::device::device_test_lock();
    #[derive(Module, Debug)]
    struct Block {
        conv: FeedbackConv2d,
    }
    #[derive(Module, Debug)]
    struct Net {
        blocks: Vec<Block>,
        head: FeedbackLinear,
    }
    let device = test_devices()[0].1.clone();
    let ad = device.autodiff();
    let fa: Rule = "fa".parse().unwrap();
    let net = Net {
        blocks: vec![
            Block {
                conv: FeedbackConv2dConfig::new([2, 16], [3, 3])
                    .with_rule(fa)
                    .init(&ad),
            },
            Block {
                conv: FeedbackConv2dConfig::new([16, 16], [3, 3])
                    .with_rule(fa)
                    .init(&ad),
            },
        ],
        // Large enough that a random B is never near W by chance (a 4x3 head was, ~1% of runs).
        head: FeedbackLinearConfig::new(16, 32).with_rule(fa).init(&ad),
    };
    let report = weight_alignment(&net);
    let paths: Vec<_> = report.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["blocks.0.conv", "blocks.1.conv", "head"]);
    for r in &report {
        assert!(r.weight.angle_deg > 45.0, "{r:?}");
    }

    let x = rand([2, 2, 7, 7], &ad);
    let errors = error_alignment(&net, |m: &Net| {
        let mut h = x.clone();
        for b in &m.blocks {
            h = burn::tensor::activation::relu(b.conv.forward(h));
        }
        let h = h.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        m.head.forward(h).powi_scalar(2).sum()
    });
    let names: Vec<_> = errors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["blocks.0.conv", "blocks.1.conv", "head"]);
    // The head's input error goes through B alone under FA: clearly misaligned with BP.
    assert!(errors[2].1 > 10.0, "{errors:?}");

    // Under BP both runs are the same computation.
    let bp = FeedbackLinearConfig::new(5, 3).init(&ad);
    let xb = rand([4, 5], &ad);
    let errors = error_alignment(&bp, |m: &FeedbackLinear| {
        m.forward(xb.clone()).powi_scalar(2).sum()
    });
    assert!(errors[0].1 < 0.5, "{errors:?}");
}

#[derive(Module, Debug)]
struct TwoLinear {
    a: FeedbackLinear,
    b: FeedbackLinear,
}

/// Error and update angles against the math written out: on `y = (x·W1 + c1)·W2 + c2`,
/// `L = Σ y²`, FA sends `g = 2y` back through `B2`, so `a`'s weight gradient is `xᵀ·(g·B2ᵀ)`
/// against backprop's `xᵀ·(g·W2ᵀ)`, and `b`'s own weight gradient is backprop's.
#[test]
fn gradient_alignment_measures_error_and_update_angles_against_backprop() {
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let ad = device.autodiff();
        let fa: Rule = "fa".parse().unwrap();
        let net = TwoLinear {
            a: FeedbackLinearConfig::new(6, 5).with_rule(fa).init(&ad),
            b: FeedbackLinearConfig::new(5, 4).with_rule(fa).init(&ad),
        };
        let x = rand([8, 6], &ad);
        let report = gradient_alignment(&net, |m: &TwoLinear| {
            m.b.forward(m.a.forward(x.clone())).powi_scalar(2).sum()
        })
        .layers;
        let paths: Vec<_> = report.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"], "{name}");

        let w = |l: &FeedbackLinear| l.weight().val().inner();
        let b = |l: &FeedbackLinear| l.feedback().as_ref().unwrap().val().inner();
        let c = |l: &FeedbackLinear| l.bias().as_ref().unwrap().val().inner().unsqueeze::<2>();
        let xi = x.inner();
        let h = xi.clone().matmul(w(&net.a)) + c(&net.a);
        let g = (h.clone().matmul(w(&net.b)) + c(&net.b)).mul_scalar(2.0);
        let (e2_rule, e2_bp) = (
            g.clone().matmul(b(&net.b).transpose()),
            g.clone().matmul(w(&net.b).transpose()),
        );
        let (e1_rule, e1_bp) = (
            e2_rule.clone().matmul(b(&net.a).transpose()),
            e2_bp.clone().matmul(w(&net.a).transpose()),
        );
        let update_a = angle_degrees(
            xi.clone().transpose().matmul(e2_rule.clone()),
            xi.clone().transpose().matmul(e2_bp.clone()),
        );
        let near = |got: f64, want: f64, what: &str| {
            assert!(
                (got - want).abs() < 0.2,
                "{what} on {name}: {got} vs {want}"
            );
        };
        near(report[0].update_angle_deg, update_a, "a's update angle");
        near(
            report[0].error_angle_deg,
            wt_core::angle_degrees(e1_rule, e1_bp),
            "a's error angle",
        );
        near(
            report[1].error_angle_deg,
            wt_core::angle_degrees(e2_rule, e2_bp),
            "b's error angle",
        );
        near(report[1].update_angle_deg, 0.0, "b's update angle");
        assert!(
            update_a > 5.0,
            "a random B2 misaligns a's update ({update_a}°)"
        );
    }
}

#[derive(Module, Debug)]
struct Residual {
    conv: FeedbackConv2d,
}

#[derive(Module, Debug)]
struct ResidualNet {
    block: Residual,
}

/// The block probe measures the error at a residual block's input, shortcut included:
/// for `out = conv(h) + h`, `L = Σ out·u`, the error at `h` is `convᵀ(u, B) + u` under FA
/// against `convᵀ(u, W) + u` under backprop, while the convolution's own probe sees only
/// the branch's `convᵀ(u, B)` against `convᵀ(u, W)`.
#[test]
fn block_probe_measures_the_error_at_the_blocks_input_shortcut_included() {
    let _serial = wt_core::device::device_test_lock();
    use burn::tensor::module::conv_transpose2d;
    use burn::tensor::ops::ConvTransposeOptions;
    for (name, device) in test_devices() {
        let ad = device.autodiff();
        let fa: Rule = "fa".parse().unwrap();
        let net = ResidualNet {
            block: Residual {
                conv: FeedbackConv2dConfig::new([3, 3], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false)
                    .with_rule(fa)
                    .init(&ad),
            },
        };
        let x = rand([2, 3, 5, 5], &ad);
        let up = rand([2, 3, 5, 5], &ad);
        let report = gradient_alignment(&net, |m: &ResidualNet| {
            let h = probe_block_input(x.clone(), &m.block.conv);
            ((m.block.conv.forward(h.clone()) + h) * up.clone()).sum()
        });
        let blocks: Vec<_> = report.blocks.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(blocks, ["block"], "{name}");
        let conv = &net.block.conv;
        let options = ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1);
        let back = |k: Tensor<4>| conv_transpose2d(up.clone().inner(), k, None, options.clone());
        let (w, b) = (
            conv.weight().val().inner(),
            conv.feedback().as_ref().unwrap().val().inner(),
        );
        let (branch_rule, branch_bp) = (back(b), back(w));
        let at_block = wt_core::angle_degrees(
            (branch_rule.clone() + up.clone().inner()).flatten::<1>(0, 3),
            (branch_bp.clone() + up.clone().inner()).flatten::<1>(0, 3),
        );
        let at_conv = wt_core::angle_degrees(branch_rule, branch_bp);
        let got = report.blocks[0].error_angle_deg;
        assert!(
            (got - at_block).abs() < 0.2,
            "{name}: block {got} vs {at_block}"
        );
        let got_conv = report.layers[0].error_angle_deg;
        assert!(
            (got_conv - at_conv).abs() < 0.2,
            "{name}: conv {got_conv} vs {at_conv}"
        );
        // The shortcut carries an exact share of the error: the block's angle is smaller.
        assert!(at_block + 5.0 < at_conv, "{name}: {at_block} vs {at_conv}");
    }
}

/// A direct rule's `D` is compared with the product of the dense weights from its layer to the
/// output (`W_l·…·W_L`, what backprop sends to the layer's input in a linear net); a conv
/// layer's `D` has no such product: NaN, with `‖D‖/‖W‖`.
#[test]
fn direct_matrices_are_compared_with_the_product_of_the_dense_layers_above() {
    let _serial = wt_core::device::device_test_lock();
    #[derive(Module, Debug)]
    struct Net {
        conv: FeedbackConv2d,
        a: FeedbackLinear,
        b: FeedbackLinear,
        c: FeedbackLinear,
    }
    let device = test_devices()[0].1.clone();
    for name in ["dfa", "dkp"] {
        let rule = name.parse::<Rule>().unwrap().with_outputs(3);
        let net = Net {
            conv: FeedbackConv2dConfig::new([2, 4], [3, 3])
                .with_rule(rule)
                .init(&device),
            a: FeedbackLinearConfig::new(7, 6)
                .with_rule(rule)
                .init(&device),
            b: FeedbackLinearConfig::new(6, 5)
                .with_rule(rule)
                .init(&device),
            c: FeedbackLinearConfig::new(5, 3)
                .with_rule(rule)
                .init(&device),
        };
        let report = weight_alignment(&net);
        let w = |l: &FeedbackLinear| l.weight().val();
        let d = |l: &FeedbackLinear| l.feedback().as_ref().unwrap().val();
        let expected = [
            angle_degrees(d(&net.a), w(&net.a).matmul(w(&net.b)).matmul(w(&net.c))),
            angle_degrees(d(&net.b), w(&net.b).matmul(w(&net.c))),
            angle_degrees(d(&net.c), w(&net.c)),
        ];
        for (l, e) in report[1..].iter().zip(expected) {
            assert!(
                (l.weight.angle_deg - e).abs() < 1e-3,
                "{name} {}: {} against {e}",
                l.path,
                l.weight.angle_deg
            );
        }
        assert!(report[0].weight.angle_deg.is_nan(), "{name}: conv angle");
        let conv_ratio = {
            let n = |t: Tensor<4>| t.powi_scalar(2).sum().into_scalar::<f64>().sqrt();
            n(net.conv.feedback().as_ref().unwrap().val()) / n(net.conv.weight().val())
        };
        assert!((report[0].weight.norm_ratio - conv_ratio).abs() < 1e-5 * conv_ratio);
    }
}

/// The read-only queries of a model draw nothing from the device's stream: after them, the
/// next draw is what it would have been without them (brSF forms its `B` by drawing, so a
/// query that formed `B` would move the stream).
#[test]
fn read_only_queries_draw_nothing() {
    let _serial = wt_core::device::device_test_lock();
    let device = Device::flex();
    let model = two_layers("brsf".parse().unwrap(), &device);
    let next = |query: bool| {
        device.seed(21);
        if query {
            assert_eq!(layer_paths(&model), ["a", "b"]);
            assert_eq!(feedback_parameter_count(&model), 0);
            assert_eq!(model_rules(&model).len(), 2);
        }
        rand([4], &device).into_data()
    };
    next(false).assert_eq(&next(true), true);
}

/// A model whose last DFA layer is not its output (two DFA convolutions under a BP
/// classifier; the second's input needs the error) and that does not mark its output: `FeedbackOptimizer::try_step` returns the
/// `MissingOutputError` before updating anything; with the output marked it steps.
#[test]
fn a_dfa_model_without_its_output_error_stops_at_the_step() {
    #[derive(Module, Debug)]
    struct Net {
        conv1: FeedbackConv2d,
        conv2: FeedbackConv2d,
        fc: FeedbackLinear,
    }
    let _serial = wt_core::device::device_test_lock();
    let device = Device::flex().autodiff();
    let dfa = "dfa".parse::<Rule>().unwrap().with_outputs(3);
    let net = Net {
        conv1: FeedbackConv2dConfig::new([2, 4], [3, 3])
            .with_rule(dfa)
            .init(&device),
        conv2: FeedbackConv2dConfig::new([4, 4], [3, 3])
            .with_rule(dfa)
            .init(&device),
        fc: FeedbackLinearConfig::new(16, 3).init(&device),
    };
    let x = rand([2, 2, 6, 6], &device);
    let mut optim = FeedbackOptimizer::sgd(0.9, 0.0);
    for marked in [false, true] {
        let h = net.conv2.forward(net.conv1.forward(x.clone()));
        let logits = net.fc.forward(h.flatten::<2>(1, 3));
        let logits = if marked { direct_error(logits) } else { logits };
        let grads = GradientsParams::from_grads(logits.powi_scalar(2).mean().backward(), &net);
        match optim.try_step(0.1, net.clone(), grads) {
            Ok(_) => assert!(marked, "stepped without the output error"),
            Err(missing) => {
                assert!(!marked, "refused a marked output: {missing}");
                assert_eq!(missing.outputs, 3);
            }
        }
    }
}

/// The direct rules on a language model's shapes: logits `[batch, tokens, classes]` marked with
/// `direct_error` give each position's row of a direct layer's input `[batch, tokens, d]` that
/// position's own error through `D` (DKP's `D` receives `Σ_rows xᵀ·e`), DRTP's targets
/// `[batch, tokens]` each position's `−scale·onehot(y)·Dᵀ`; an input with a middle dimension
/// more than the error (`[batch, tokens, 2, d]`) shares its position's row. Every backend.
#[test]
fn direct_rules_send_each_positions_own_signal_to_its_rows() {
    use burn::tensor::activation::relu;
    use burn::tensor::{Int, TensorData};
    let _serial = wt_core::device::device_test_lock();
    for (name, device) in test_devices() {
        let ad = device.autodiff();
        ad.seed(17);
        for rule in ["dfa", "dkp", "drtp"] {
            // k = 1: the layer reads [2, 3, 4] (a language model's rows); k = 2: [2, 3, 2, 4],
            // its outputs summed over the extra dimension before the head.
            for (k, labels, scale) in [
                (1, [3i64, 1, 0, 5, 5, 2], 0.25),
                (2, [0, 5, 2, 2, 1, 4], 0.5),
            ] {
                let what = format!("{name} {rule} k={k}");
                let rule = rule.parse::<Rule>().unwrap().with_outputs(6);
                let l1 = FeedbackLinearConfig::new(4, 5).with_rule(rule).init(&ad);
                let l2 = FeedbackLinearConfig::new(5, 6).init(&ad);
                let x = rand([2, 3, k, 4], &ad).require_grad();
                let h = if k == 1 {
                    relu(l1.forward(x.clone().squeeze_dim::<3>(2)))
                } else {
                    relu(l1.forward(x.clone())).sum_dim(2).squeeze_dim::<3>(2)
                };
                let logits = direct_error(l2.forward(h));
                let r = rand([2, 3, 6], &ad);
                let targets =
                    Tensor::<2, Int>::from_data(TensorData::new(labels.to_vec(), [2, 3]), &ad);
                direct_targets(targets.clone(), scale);
                let g = (logits * r.clone()).sum().backward();
                let signal = if rule.name() == "drtp" {
                    targets.one_hot::<3>(6).float().mul_scalar(-scale)
                } else {
                    r
                }
                .inner();
                let d = l1.feedback().unwrap().val().inner(); // [4, 6]
                // Each position's row: signal [2, 3, 6] · Dᵀ → [2, 3, 4], shared over k.
                let per_row = signal.clone().matmul(d.transpose().unsqueeze::<3>());
                let expected = per_row.unsqueeze_dim::<4>(2).expand([2, 3, k, 4]);
                close(
                    &format!("{what}: dx"),
                    x.grad(&g).unwrap().inner(),
                    expected,
                );
                let d_grad = l1.feedback().unwrap().grad(&g);
                if rule.name() == "dkp" {
                    let x_rows = x.clone().inner().sum_dim(2).reshape([6, 4]);
                    let expected_d = x_rows.transpose().matmul(signal.reshape([6, 6]));
                    close(&format!("{what}: dD"), d_grad.unwrap().inner(), expected_d);
                } else {
                    assert!(d_grad.is_none(), "{what}: a fixed D received a gradient");
                }
            }
        }
    }
}
