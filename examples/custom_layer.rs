//! A feedback layer written outside wt: a 1-D convolution whose backward pass sends the error
//! through feedback weights `B`, built from wt's public ops, that takes part in every
//! model-wide operation (the rules' per-step work, the weight mirror, per-layer rules, the
//! alignment reports) because it implements [`wt::FeedbackLayer`] and its `Module` comes from
//! [`wt::feedback_module!`].
//!
//! A learning rule written here too: [`SymmetricAlignment`], a model-wide operation
//! ([`wt::LayerMapper`]) that moves the `B` of every layer on `fa` toward its `W` after each
//! optimizer step, on this example's layers and on wt's alike.
//!
//! The model reads an MNIST digit as a sequence of 28 rows of 28 pixels: two feedback `Conv1d`
//! over the rows, a mean over positions, one feedback linear classifier.
//!
//! ```text
//! cargo run --release --example custom_layer -- --rule kp
//! cargo run --release --example custom_layer -- --rule wm --steps 400
//! cargo run --release --example custom_layer -- --rule fa --rule-for conv2=kp
//! cargo run --release --example custom_layer -- --rule fa --symmetric-alignment 0.05
//! ```
//! Its tests (`cargo test --release --example custom_layer`) check the layer's gradients under
//! FA, KP and uSF against the convolution written out as loops, that the model-wide
//! operations reach it, and the own rule's update against its formula.

use std::path::PathBuf;
use std::time::Instant;

use burn::config::Config;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Int, Tensor};
use clap::Parser;
use wt::wt_core::device::parse_device;
use wt::wt_core::mirror::conv2d_mirror_correlation;
use wt::wt_core::{WeightMirror, direct_feedback_conv2d_with, feedback_conv2d_with};
use wt::wt_train::cli::{MnistLoopArgs, one_of, rule_override};
use wt::{FeedbackLayer, FeedbackLinear, FeedbackLinearConfig, LayerRules, Rule};
use wt_data::{MnistBatcher, MnistDataset, Split};

/// Configuration of a [`FeedbackConv1d`].
#[derive(Config, Debug)]
pub struct FeedbackConv1dConfig {
    /// The number of channels, `[in, out]`.
    pub channels: [usize; 2],
    /// The size of the kernel.
    pub kernel_size: usize,
    /// The stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding on each side.
    #[config(default = 0)]
    pub padding: usize,
    /// Initialiser of `W` (and of `B` for the rules that draw it).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// How the feedback weights are set and learned.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
}

/// A 1-D convolution with feedback weights: forward is Burn's `conv1d`, backward sends the
/// error through `B` (`dx = conv_transpose1d(g, B)`), `dW` and `db` as usual.
///
/// # Shapes
/// - input: `[batch, c_in, length]`, output: `[batch, c_out, length_out]`
/// - `weight` and what the rule stores: `[c_out, c_in, k]` (DFA's direct kernel
///   `[outputs, c_in, k]`), `bias`: `[c_out]`
#[derive(Debug, Clone)]
pub struct FeedbackConv1d {
    weight: Param<Tensor<3>>,
    bias: Option<Param<Tensor<1>>>,
    feedback: Option<Param<Tensor<3>>>,
    rule: Rule,
    sign_scale: f64,
    initializer: Initializer,
    stride: usize,
    padding: usize,
}

// Burn's `Module` (records, devices, optimizers) with wt's hook: the model-wide operations
// see this layer as a `FeedbackLayer<3>`.
wt::feedback_module!(
    FeedbackConv1d,
    rank: 3,
    params: [weight, bias, feedback],
    consts: [rule, sign_scale, initializer, stride, padding]
);

impl FeedbackConv1dConfig {
    /// Initializes a [`FeedbackConv1d`] on `device`.
    pub fn init(&self, device: &Device) -> FeedbackConv1d {
        let [c_in, c_out] = self.channels;
        let k = self.kernel_size;
        let (fan_in, fan_out) = (c_in * k, c_out * k);
        let weight: Param<Tensor<3>> =
            self.initializer
                .init_with([c_out, c_in, k], Some(fan_in), Some(fan_out), device);
        let bias = Some(
            self.initializer
                .init_with([c_out], Some(fan_in), Some(fan_out), device),
        );
        let mut layer = FeedbackConv1d {
            weight,
            bias,
            feedback: None,
            rule: Rule::default(),
            sign_scale: 0.0,
            initializer: self.initializer.clone(),
            stride: self.stride,
            padding: self.padding,
        };
        layer.set_rule(self.rule);
        layer
    }
}

impl FeedbackConv1d {
    /// The op's options: the 1-D convolution as a 2-D one over a `[1, length]` map.
    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([1, self.stride], [0, self.padding], [1, 1], 1)
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// - input: `[batch, c_in, length]`; output: `[batch, c_out, length_out]`
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        let [batch, c_in, length] = input.dims();
        let [c_out, _, k] = self.weight.dims();
        let input = wt::probe_layer_input(input, &self.weight);
        let x = input.reshape([batch, c_in, 1, length]);
        let weight = self.weight.val();
        let fb = self
            .rule
            .feedback(
                &weight,
                self.feedback.as_ref().map(|p| p.val()),
                self.sign_scale,
            )
            .reshape([c_out, c_in, 1, k]);
        let weight = weight.reshape([c_out, c_in, 1, k]);
        let bias = self.bias.as_ref().map(|b| b.val());
        let y = match (
            self.rule.direct().zip(self.rule.direct_signal()),
            &self.feedback,
        ) {
            // DFA, DKP, DRTP: the op runs on the detached input; the direct signal (the output
            // error, or DRTP's target) reaches the input.
            (Some((dfa, signal)), Some(direct)) if x.is_autodiff() => {
                let y = feedback_conv2d_with(x.clone().detach(), weight, fb, bias, self.options());
                let [_, _, _, length_out] = y.dims();
                let [outputs, _, _] = direct.dims();
                let id = direct.id;
                let direct = direct.val().reshape([outputs, c_in, 1, k]);
                let scale = dfa.conv_error_scale(length_out);
                direct_feedback_conv2d_with(y, x, direct, self.options(), scale, id, signal)
            }
            _ => feedback_conv2d_with(x, weight, fb, bias, self.options()),
        };
        let [_, _, _, length_out] = y.dims();
        y.reshape([batch, c_out, length_out])
    }

    /// Puts the layer on `rule`: `W`, `b` kept, what the rule stores drawn afresh.
    pub fn set_rule(&mut self, rule: Rule) {
        let [c_out, c_in, k] = self.weight.dims();
        let (stored, sign_scale) = wt::init_rule_state(
            &rule,
            &self.initializer,
            [c_out, c_in, k],
            (c_in * k, c_out * k),
            &self.weight.val(),
            // DFA's direct kernel: `[outputs, c_in, k]`, fans as a conv's.
            |outputs| ([outputs, c_in, k], (c_in * k, outputs * k)),
        );
        self.feedback = stored;
        self.sign_scale = sign_scale;
        self.rule = rule;
    }
}

impl FeedbackLayer<3> for FeedbackConv1d {
    fn kind(&self) -> &'static str {
        "conv1d"
    }
    fn rule(&self) -> &Rule {
        &self.rule
    }
    fn weight(&self) -> &Param<Tensor<3>> {
        &self.weight
    }
    fn stored(&self) -> Option<&Param<Tensor<3>>> {
        self.feedback.as_ref()
    }
    fn stored_mut(&mut self) -> Option<&mut Param<Tensor<3>>> {
        self.feedback.as_mut()
    }
    fn sign_scale(&self) -> f64 {
        self.sign_scale
    }
    /// The 2-D mirror correlation on the kernel `[c_out, c_in, 1, k]`: noise over a square
    /// response map, unpadded, with the layer's stride along the sequence.
    fn mirror_correlation(&self, weight: Tensor<3>, wm: &WeightMirror) -> Tensor<3> {
        let [c_out, c_in, k] = weight.dims();
        let w = weight.reshape([c_out, c_in, 1, k]);
        conv2d_mirror_correlation(
            w,
            [1, self.stride],
            [1, 1],
            1,
            wm.sigma,
            wm.mirror_batch,
            wm.conv_output_side(c_in * k),
        )
        .reshape([c_out, c_in, k])
    }
    fn set_rule(&mut self, rule: Rule) {
        FeedbackConv1d::set_rule(self, rule)
    }
}

/// A learning rule of this example's own, written against wt's public hook: symmetric
/// alignment (Kunin et al. 2020, "Two Routes to Scalable Credit Assignment without Weight
/// Symmetry"), whose `B` descends `α·½‖B‖² − β·tr(WᵀB)` (their decay and self terms):
/// `B ← B − η·(α·B − β·W)` after each optimizer step, so `B` tends to `(β/α)·W`. It acts on
/// every feedback layer on `fa` (which stores a `B` that backward leaves alone), whatever the
/// layer's kind or rank, and leaves the others as they are.
#[derive(Debug, Clone, Copy)]
struct SymmetricAlignment {
    /// `η`.
    lr: f64,
    /// `α`, the weight of the decay term.
    alpha: f64,
    /// `β`, the weight of the self term.
    beta: f64,
}

impl wt::LayerMapper for SymmetricAlignment {
    fn map<const D: usize>(&mut self, _path: &str, layer: &mut dyn FeedbackLayer<D>) {
        if !matches!(layer.rule(), Rule::FeedbackAlignment(_)) {
            return;
        }
        let w = layer.weight().val().inner();
        let Self { lr, alpha, beta } = *self;
        if let Some(b) = layer.stored_mut() {
            *b = b.clone().map(|b| {
                let old = b.clone().inner();
                let step = (old.clone().mul_scalar(alpha) - w.mul_scalar(beta)).mul_scalar(lr);
                wt::feedback::replace_value(b, old - step)
            });
        }
    }
}

/// MNIST rows as a sequence: `[batch, 28 rows, 28 pixels]` read as 28 channels over 28
/// positions, two feedback convolutions, a mean over positions, a feedback classifier.
#[derive(Module, Debug)]
struct RowNet {
    conv1: FeedbackConv1d,
    conv2: FeedbackConv1d,
    fc: FeedbackLinear,
}

impl RowNet {
    fn new(rule: Rule, device: &Device) -> Self {
        let rule = rule.with_outputs(10);
        let conv = |c_in, c_out, stride| {
            FeedbackConv1dConfig::new([c_in, c_out], 5)
                .with_stride(stride)
                .with_padding(2)
                .with_rule(rule)
                .init(device)
        };
        Self {
            conv1: conv(28, 64, 1),
            conv2: conv(64, 64, 2),
            fc: FeedbackLinearConfig::new(64, 10)
                .with_rule(rule)
                .init(device),
        }
    }

    /// `[batch, 28, 28]` → logits `[batch, 10]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        // Pixels along the sequence: channels are the 28 pixels of a row position.
        let x = x.swap_dims(1, 2);
        let h = relu(self.conv1.forward(x));
        let h = relu(self.conv2.forward(h));
        let pooled = h.mean_dim(2).flatten::<2>(1, 2);
        wt::direct_error(self.fc.forward(pooled))
    }
}

/// Normalised images `[n, 28, 28]` and labels `[n]` for the given item indices.
fn batch(split: &MnistDataset, idx: &[usize], device: &Device) -> (Tensor<3>, Tensor<1, Int>) {
    let items = idx
        .iter()
        .map(|&i| split.get(i).expect("index within the split"))
        .collect();
    let b = MnistBatcher.batch(items, device);
    let [n, _, h, w] = b.images.dims();
    (b.images.reshape([n, h, w]), b.targets)
}

fn accuracy(model: &RowNet, split: &MnistDataset, device: &Device) -> f64 {
    let mut correct = 0i64;
    let all: Vec<usize> = (0..split.len()).collect();
    for chunk in all.chunks(1000) {
        let (x, y) = batch(split, chunk, device);
        let pred = model.forward(x).argmax(1).flatten::<1>(0, 1);
        correct += pred.equal(y).int().sum().into_scalar::<i64>();
    }
    correct as f64 / split.len() as f64
}

/// A feedback Conv1d written outside wt, trained on MNIST rows with any rule.
#[derive(Parser)]
struct Args {
    /// Learning rule of every layer
    #[arg(long, default_value = "kp", value_parser = one_of::<Rule>())]
    rule: Rule,
    /// Rule overrides by layer path, PATTERN=RULE (conv1, conv2, fc; globs allowed); repeatable
    #[arg(long = "rule-for", value_name = "PATTERN=RULE", value_parser = rule_override)]
    rule_for: Vec<(String, Rule)>,
    /// Training steps
    #[arg(long, default_value_t = 600)]
    steps: usize,
    /// Also run the example's own rule, symmetric alignment, with this learning rate on the
    /// layers on fa (α = β = 1)
    #[arg(long, value_name = "LR")]
    symmetric_alignment: Option<f64>,
    #[command(flatten)]
    common: MnistLoopArgs,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let data: PathBuf = args.common.mnist_dir()?;
    let device = parse_device(&args.common.device)?;
    device.seed(args.common.seed);
    let train = MnistDataset::new(&data, Split::Train).map_err(|e| e.to_string())?;
    let test = MnistDataset::new(&data, Split::Test).map_err(|e| e.to_string())?;

    let ad = device.clone().autodiff();
    let overrides: LayerRules = args
        .rule_for
        .iter()
        .map(|(p, r)| (p.clone(), r.with_outputs(10)))
        .collect();
    // Per-layer rules reach the custom layers like wt's own.
    let mut model =
        wt::set_layer_rules(RowNet::new(args.rule, &ad), &overrides).map_err(|e| e.to_string())?;
    let rules: Vec<String> = wt::layer_paths(&model)
        .into_iter()
        .zip(wt::model_rules(&model))
        .map(|(path, rule)| format!("{path} {}", rule.name()))
        .collect();
    println!(
        "MNIST rows from {}; {} parameters; layers: {}; device {}",
        data.display(),
        model.num_params(),
        rules.join(", "),
        args.common.device
    );
    if model.conv1.rule.weight_mirror().is_some() && args.common.mirror_warmup > 0 {
        model = wt::mirror_steps(model, args.common.mirror_warmup);
    }
    let mut optim = args.common.optimizer_config().init();
    let own_rule = args.symmetric_alignment.map(|lr| SymmetricAlignment {
        lr,
        alpha: 1.0,
        beta: 1.0,
    });
    if own_rule.is_some() {
        println!("symmetric alignment (this example's own rule) on the layers on fa");
    }
    let criterion = CrossEntropyLossConfig::new().init(&ad);
    let start = Instant::now();
    let order = wt::wt_train::data::permutation(train.len(), args.common.seed);
    let mut losses = Vec::new();
    for (step, idx) in order
        .chunks(args.common.batch)
        .cycle()
        .take(args.steps)
        .enumerate()
    {
        let (x, y) = batch(&train, idx, &ad);
        let logits = model.forward(x);
        // DRTP's layers take the labels (the mean loss puts 1/batch on each error).
        wt::direct_targets(y.clone(), 1.0 / idx.len() as f64);
        let loss = criterion.forward(logits, y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // The rules' per-step work (KP's decay on B, the mirror's update) reaches the Conv1d
        // layers through the hook.
        model = optim.step(args.common.lr, model, grads);
        // A rule written outside wt: one more model-wide operation after the step.
        if let Some(rule) = own_rule {
            model = wt::map_layers(model, rule).0;
        }
        let l = loss.into_scalar::<f64>();
        if !l.is_finite() {
            return Err(format!("loss is {l} at step {step}"));
        }
        losses.push(l);
        if (step + 1) % 100 == 0 || step + 1 == args.steps {
            let recent = &losses[losses.len().saturating_sub(100)..];
            println!(
                "step {:>5}/{}: loss {:.4} (mean of the last {}), {:.1}s",
                step + 1,
                args.steps,
                recent.iter().sum::<f64>() / recent.len() as f64,
                recent.len(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let test_accuracy = accuracy(&model.valid(), &test, &device);
    println!("test accuracy {:.2}%", 100.0 * test_accuracy);
    // The alignment reports reach the custom layers too: B–W angles, and the error and update
    // angles against backprop on one batch.
    let (x, y) = batch(&test, &(0..256).collect::<Vec<_>>(), &ad);
    let probe = wt::gradient_alignment(&model.clone().valid().train(), |m| {
        criterion.forward(m.forward(x.clone()), y.clone())
    });
    for (w, g) in wt::weight_alignment(&model).iter().zip(&probe.layers) {
        println!(
            "{:<6} {:<7} {:<4} B-W {:>5.1}° (|B|/|W| {:.2}), error angle {:>5.1}°, update angle {:>5.1}°",
            w.path,
            w.kind,
            w.rule,
            w.weight.angle_deg,
            w.weight.norm_ratio,
            g.error_angle_deg,
            g.update_angle_deg
        );
    }
    println!(
        "{{\"rule\":\"{}\",\"symmetric_alignment\":{},\"steps\":{},\"first_loss\":{:.4},\"last_loss\":{:.4},\"test_accuracy\":{:.4}}}",
        args.rule.name(),
        args.symmetric_alignment.is_some(),
        args.steps,
        losses.first().copied().unwrap_or(f64::NAN),
        losses.iter().rev().take(50).sum::<f64>() / losses.len().clamp(1, 50) as f64,
        test_accuracy
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};
    use wt::wt_core::device::test_devices;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn close(what: &str, got: Vec<f32>, want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().map(|v| v.abs()).fold(1e-3f32, f32::max);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * scale + 1e-5,
                "{what}[{i}]: {g} against {w}"
            );
        }
    }

    /// The convolution `y[n,o,t] = Σ_{c,k} W[o,c,k]·x[n,c,t·s+k−p] + b[o]`'s two gradients for an upstream `g`, with the input gradient through `b_fb` in place of
    /// `W`: `dx[n,c,i] = Σ_{o,t,k: t·s+k−p=i} g[n,o,t]·B[o,c,k]`,
    /// `dW[o,c,k] = Σ_{n,t} g[n,o,t]·x[n,c,t·s+k−p]`.
    fn explicit(
        x: &[f32],
        b_fb: &[f32],
        g: &[f32],
        [n, c_in, len]: [usize; 3],
        [c_out, k]: [usize; 2],
        stride: usize,
        pad: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let len_out = (len + 2 * pad - k) / stride + 1;
        let mut dx = vec![0f32; n * c_in * len];
        let mut dw = vec![0f32; c_out * c_in * k];
        for b in 0..n {
            for o in 0..c_out {
                for t in 0..len_out {
                    let go = g[(b * c_out + o) * len_out + t];
                    for c in 0..c_in {
                        for j in 0..k {
                            let i = (t * stride + j) as isize - pad as isize;
                            if i < 0 || i >= len as isize {
                                continue;
                            }
                            let xi = (b * c_in + c) * len + i as usize;
                            let wi = (o * c_in + c) * k + j;
                            dx[xi] += go * b_fb[wi];
                            dw[wi] += go * x[xi];
                        }
                    }
                }
            }
        }
        (dx, dw)
    }

    /// FA (B stored), KP (B stored and receiving W's gradient) and uSF (B = s·sign(W) formed in
    /// backward): forward is Burn's conv1d, `dx` goes through B, `dW` and KP's `dB` are the
    /// correlation of `x` and `g`, all against the loops above.
    #[test]
    fn gradients_match_the_convolution_written_out() {
        let _serial = wt::wt_core::device::device_test_lock();
        for (name, device) in test_devices() {
            let ad = device.autodiff();
            for rule in ["fa", "kp", "usf"] {
                let rule: Rule = rule.parse().unwrap();
                let layer = FeedbackConv1dConfig::new([3, 4], 3)
                    .with_stride(2)
                    .with_padding(1)
                    .with_rule(rule)
                    .init(&ad);
                let shape = [2, 3, 9];
                let x =
                    Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
                let y = layer.forward(x.clone());
                let want_y = burn::tensor::module::conv1d(
                    x.clone().detach(),
                    layer.weight.val().detach(),
                    layer.bias.as_ref().map(|b| b.val().detach()),
                    burn::tensor::ops::ConvOptions::new([2], [1], [1], 1),
                );
                y.clone()
                    .into_data()
                    .assert_approx_eq::<f32>(&want_y.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
                let g = Tensor::<3>::random(y.dims(), Distribution::Normal(0.0, 1.0), &ad);
                let grads = (y * g.clone()).sum().backward();
                let b_fb = layer
                    .rule
                    .feedback_matrix(
                        &layer.weight.val(),
                        layer.feedback.as_ref().map(|p| p.val()),
                        layer.sign_scale,
                    )
                    .detach();
                let w = values(layer.weight.val().detach());
                assert_ne!(values(b_fb.clone()), w, "{name} {}: B is W", rule.name());
                let (dx, dw) = explicit(
                    &values(x.clone().detach()),
                    &values(b_fb),
                    &values(g),
                    shape,
                    [4, 3],
                    2,
                    1,
                );
                let what = format!("{name} {}", rule.name());
                close(&format!("{what} dx"), values(x.grad(&grads).unwrap()), &dx);
                close(
                    &format!("{what} dW"),
                    values(layer.weight.grad(&grads).unwrap()),
                    &dw,
                );
                let db = layer.feedback.as_ref().and_then(|b| b.grad(&grads));
                match rule {
                    Rule::KolenPollack(_) => close(&format!("{what} dB"), values(db.unwrap()), &dw),
                    _ => assert!(db.is_none(), "{what}: B got a gradient"),
                }
            }
        }
    }

    /// The model-wide operations reach the custom layer: the mirror moves its B toward W, rule
    /// overrides put it on another rule, the reports name it.
    #[test]
    fn model_wide_operations_reach_the_custom_layer() {
        let _serial = wt::wt_core::device::device_test_lock();
        let device: Device = parse_device("flex").unwrap();
        device.seed(3);
        let ad = device.autodiff();
        let model = RowNet::new("wm".parse().unwrap(), &ad);
        let angle = |m: &RowNet| wt::weight_alignment(m)[0].weight.angle_deg;
        let before = angle(&model);
        let model = wt::mirror_steps(model, 50);
        let after = angle(&model);
        assert!(
            after < before - 20.0,
            "the mirror did not reach conv1: {before:.1}° → {after:.1}°"
        );
        let report = wt::weight_alignment(&model);
        let kinds: Vec<_> = report.iter().map(|l| (l.path.as_str(), l.kind)).collect();
        assert_eq!(
            kinds,
            [("conv1", "conv1d"), ("conv2", "conv1d"), ("fc", "linear")]
        );
        let overrides: LayerRules = [("conv2".to_string(), "fa".parse().unwrap())].into();
        let model = wt::set_layer_rules(model, &overrides).unwrap();
        let names: Vec<_> = wt::model_rules(&model).iter().map(|r| r.name()).collect();
        assert_eq!(names, ["wm", "fa", "wm"]);
        assert_eq!(model.conv2.rule.name(), "fa");
        // The error probes see the custom layers' inputs.
        let x = Tensor::<3>::random([8, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
        let probe = wt::gradient_alignment(&model, |m| m.forward(x.clone()).powi_scalar(2).mean());
        let paths: Vec<_> = probe.layers.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, ["conv1", "conv2", "fc"]);
        assert!(probe.layers[1].error_angle_deg > 1.0, "{probe:?}");
    }

    /// The example's own rule moves each `fa` layer's `B` by `−η·(α·B − β·W)` exactly, on the
    /// custom Conv1d and on wt's FeedbackLinear alike, and leaves a layer on another rule alone.
    #[test]
    fn the_own_rule_is_its_formula_on_every_layer_on_fa() {
        let _serial = wt::wt_core::device::device_test_lock();
        let device: Device = parse_device("flex").unwrap();
        let ad = device.autodiff();
        let model = RowNet::new("fa".parse().unwrap(), &ad);
        let overrides: LayerRules = [("conv2".to_string(), "kp".parse().unwrap())].into();
        let model = wt::set_layer_rules(model, &overrides).unwrap();
        let rule = SymmetricAlignment {
            lr: 0.1,
            alpha: 0.5,
            beta: 2.0,
        };
        let stored = |m: &RowNet| {
            [
                values(m.conv1.feedback.as_ref().unwrap().val()),
                values(m.conv2.feedback.as_ref().unwrap().val()),
                values(m.fc.feedback().unwrap().val()),
            ]
        };
        let weights = [
            values(model.conv1.weight.val()),
            values(model.conv2.weight.val()),
            values(model.fc.weight().val()),
        ];
        let before = stored(&model);
        let after = stored(&wt::map_layers(model, rule).0);
        for (i, name) in [(0, "conv1"), (2, "fc")] {
            let want: Vec<f32> = (before[i].iter().zip(&weights[i]))
                .map(|(&b, &w)| b - 0.1 * (0.5 * b - 2.0 * w))
                .collect();
            close(name, after[i].clone(), &want);
        }
        assert_eq!(after[1], before[1], "conv2 is on kp: left alone");
    }
}
