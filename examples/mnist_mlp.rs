//! The smallest complete training loop written by hand: a 784-1000-1000-10 MLP on MNIST with
//! any learning rule, test accuracy and per-layer B–W angles (the `mnist` example does the
//! same through `wt_train::fit`, with run folders, checkpoints and plots).
//!
//! ```text
//! cargo run --release --example mnist_mlp -- --rule kp --epochs 3
//! cargo run --release --example mnist_mlp -- --rule wm --data /path/to/mnist --device flex
//! ```
//! `--help` lists the options and their defaults (rule bp, 3 epochs, SGD 0.01 momentum 0.9,
//! weight decay 1e-4; a slow mirror, `--mirror-lr 0.005`, for WM: see docs/rules.md). Ends
//! with one JSON line of the final metrics.

use std::path::PathBuf;
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};
use clap::Parser;
use wt::wt_core::device::parse_device;
use wt::wt_train::cli::{MnistLoopArgs, one_of};
use wt::{FeedbackLinear, FeedbackLinearConfig, Rule};
use wt_data::{MnistBatcher, MnistDataset, Split};

#[derive(Module, Debug)]
struct Mlp {
    fc1: FeedbackLinear,
    fc2: FeedbackLinear,
    fc3: FeedbackLinear,
}

impl Mlp {
    fn new(rule: Rule, device: &Device) -> Self {
        let rule = rule.with_outputs(10);
        let layer = |i, o| FeedbackLinearConfig::new(i, o).with_rule(rule).init(device);
        Self {
            fc1: layer(784, 1000),
            fc2: layer(1000, 1000),
            fc3: layer(1000, 10),
        }
    }

    /// `[batch, 784]` → logits `[batch, 10]`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(self.fc1.forward(x));
        let h = relu(self.fc2.forward(h));
        wt::direct_error(self.fc3.forward(h))
    }
}

/// Batch of normalised images `[n, 784]` and labels `[n]` for the given item indices.
fn batch(split: &MnistDataset, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let items = idx
        .iter()
        .map(|&i| split.get(i).expect("index within the split"))
        .collect();
    let b = MnistBatcher.batch(items, device);
    (b.images.flatten(1, 3), b.targets)
}

fn accuracy(model: &Mlp, split: &MnistDataset, device: &Device) -> f64 {
    let mut correct = 0i64;
    let all: Vec<usize> = (0..split.len()).collect();
    for chunk in all.chunks(1000) {
        let (x, y) = batch(split, chunk, device);
        let pred = model.forward(x).argmax(1).flatten::<1>(0, 1);
        correct += pred.equal(y).int().sum().into_scalar::<i64>();
    }
    correct as f64 / split.len() as f64
}

/// The smallest complete training loop written by hand: an MLP on MNIST with any rule.
#[derive(Parser)]
struct Args {
    /// Learning rule of every layer
    #[arg(long, default_value = "bp", value_parser = one_of::<Rule>())]
    rule: Rule,
    /// Epochs
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[command(flatten)]
    common: MnistLoopArgs,
    /// Mirror learning rate (WM only: a slow mirror suits this MLP, see docs/rules.md)
    #[arg(long, default_value_t = 0.005)]
    mirror_lr: f64,
}

fn parse_args() -> Result<(Args, PathBuf), String> {
    let mut a = Args::parse();
    if let Rule::WeightMirror(wm) = &mut a.rule {
        wm.mirror_lr = a.mirror_lr;
    }
    let data = a.common.mnist_dir()?;
    Ok((a, data))
}

/// A small deterministic shuffle (xorshift), so runs repeat with the same seed.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.swap(i, (state % (i as u64 + 1)) as usize);
    }
    v
}

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let (args, data) = parse_args()?;
    let device = parse_device(&args.common.device)?;
    device.seed(args.common.seed);
    let train = MnistDataset::new(&data, Split::Train).map_err(|e| e.to_string())?;
    let test = MnistDataset::new(&data, Split::Test).map_err(|e| e.to_string())?;
    println!(
        "MNIST: {} train, {} test from {}; rule {}; device {}",
        train.len(),
        test.len(),
        data.display(),
        args.rule.name(),
        args.common.device
    );

    let ad = device.clone().autodiff();
    let mut model = Mlp::new(args.rule, &ad);
    if args.rule.weight_mirror().is_some() && args.common.mirror_warmup > 0 {
        model = wt::mirror_steps(model, args.common.mirror_warmup);
        println!("mirror warm-up: {} steps", args.common.mirror_warmup);
    }
    // wt's SGD recipe with the rules' per-step work around its step.
    let mut optim = args.common.optimizer_config().init();
    let criterion = CrossEntropyLossConfig::new().init(&ad);
    let mut test_accuracy = 0.0;
    let mut angles = Vec::new();
    for epoch in 1..=args.epochs {
        let start = Instant::now();
        let order = shuffled(train.len(), args.common.seed + epoch as u64);
        let (mut loss_sum, mut steps) = (0.0f64, 0usize);
        for idx in order.chunks(args.common.batch) {
            let (x, y) = batch(&train, idx, &ad);
            let logits = model.forward(x);
            // DRTP's layers take the labels (the mean loss puts 1/batch on each error).
            wt::direct_targets(y.clone(), 1.0 / idx.len() as f64);
            let loss = criterion.forward(logits, y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(args.common.lr, model, grads);
            if steps % 50 == 0 {
                let l = loss.into_scalar::<f64>();
                if !l.is_finite() {
                    return Err(format!("loss is {l} at epoch {epoch}, step {steps}"));
                }
                loss_sum += l;
            }
            steps += 1;
        }
        test_accuracy = accuracy(&model.valid(), &test, &device);
        let report = wt::weight_alignment(&model);
        angles = report.iter().map(|r| r.weight.angle_deg).collect();
        let per_layer: Vec<String> = report
            .iter()
            .map(|r| {
                format!(
                    "{} {:.1}° (|B|/|W| {:.2})",
                    r.path, r.weight.angle_deg, r.weight.norm_ratio
                )
            })
            .collect();
        println!(
            "epoch {epoch}/{}: loss {:.4}, test accuracy {:.2}%, {:.1}s; B-W angle: {}",
            args.epochs,
            loss_sum / steps.div_ceil(50) as f64,
            100.0 * test_accuracy,
            start.elapsed().as_secs_f64(),
            per_layer.join(", ")
        );
    }
    // DFA's layers have no B–W angle (NaN): JSON null.
    let angles_json: Vec<String> = angles
        .iter()
        .map(|a| match a.is_finite() {
            true => format!("{a:.2}"),
            false => "null".to_string(),
        })
        .collect();
    println!(
        "{{\"rule\":\"{}\",\"epochs\":{},\"test_accuracy\":{:.4},\"angles_deg\":[{}]}}",
        args.rule.name(),
        args.epochs,
        test_accuracy,
        angles_json.join(",")
    );
    Ok(())
}
