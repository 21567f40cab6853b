//! The smallest complete training loop written by hand: a 784-1000-1000-10 MLP on MNIST with
//! any learning rule, test accuracy and per-layer B–W angles (the `mnist` example does the
//! same through `wt_train::fit`, with run folders, checkpoints and plots).
//!
//! ```text
//! cargo run --release --example mnist_mlp -- --rule kp --epochs 3
//! cargo run --release --example mnist_mlp -- --rule wm --data /path/to/mnist --device flex
//! ```
//! Options: `--rule bp|fa|usf|brsf|frsf|kp|wm|dfa|dkp` (default bp), `--epochs N` (3), `--data DIR`
//! (`../shared/data/mnist`), `--device flex|ndarray|wgpu|cuda[:N]` (flex), `--batch N` (128),
//! `--lr X` (0.01), `--momentum X` (0.9), `--weight-decay X` (1e-4), `--seed N` (1),
//! `--mirror-warmup N` (500, WM only), `--mirror-lr X` (0.005, WM only: a slow mirror suits
//! this MLP, see docs/rules.md). Ends with one JSON line of the final metrics.

use std::path::PathBuf;
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};
use wt::wt_core::device::parse_device;
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

struct Args {
    rule: Rule,
    epochs: usize,
    data: PathBuf,
    device: String,
    batch: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    seed: u64,
    mirror_warmup: usize,
    mirror_lr: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rule: Rule::default(),
        epochs: 3,
        data: PathBuf::from("../shared/data/mnist"),
        device: "flex".into(),
        batch: 128,
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
        seed: 1,
        mirror_warmup: 500,
        mirror_lr: 0.005,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!(
                "{}",
                include_str!("mnist_mlp.rs")
                    .lines()
                    .take(13)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| -> Result<f64, String> {
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        let int = |v: &str| -> Result<usize, String> {
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--rule" => a.rule = value.parse().map_err(|e| format!("{e}"))?,
            "--epochs" => a.epochs = int(&value)?,
            "--data" => a.data = PathBuf::from(value),
            "--device" => a.device = value,
            "--batch" => a.batch = int(&value)?.max(1),
            "--lr" => a.lr = num(&value)?,
            "--momentum" => a.momentum = num(&value)?,
            "--weight-decay" => a.weight_decay = num(&value)?,
            "--seed" => a.seed = int(&value)? as u64,
            "--mirror-warmup" => a.mirror_warmup = int(&value)?,
            "--mirror-lr" => a.mirror_lr = num(&value)?,
            _ => return Err(format!("unknown option {flag} (try --help)")),
        }
    }
    if let Rule::WeightMirror(wm) = &mut a.rule {
        wm.mirror_lr = a.mirror_lr;
    }
    Ok(a)
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
    wt::wt_core::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let device = parse_device(&args.device)?;
    device.seed(args.seed);
    let train = MnistDataset::new(&args.data, Split::Train).map_err(|e| e.to_string())?;
    let test = MnistDataset::new(&args.data, Split::Test).map_err(|e| e.to_string())?;
    println!(
        "MNIST: {} train, {} test from {}; rule {}; device {}",
        train.len(),
        test.len(),
        args.data.display(),
        args.rule.name(),
        args.device
    );

    let ad = device.clone().autodiff();
    let mut model = Mlp::new(args.rule, &ad);
    if args.rule.weight_mirror().is_some() && args.mirror_warmup > 0 {
        model = wt::mirror_steps(model, args.mirror_warmup);
        println!("mirror warm-up: {} steps", args.mirror_warmup);
    }
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(args.momentum)))
        .with_weight_decay(Some(WeightDecayConfig::new(args.weight_decay as f32)))
        .init();
    // Step size momentum SGD converges to, for a weight mirror in `Gradient` mode.
    let criterion = CrossEntropyLossConfig::new().init(&ad);
    let effective_lr = args.lr / (1.0 - args.momentum).max(1e-6);
    let mut test_accuracy = 0.0;
    let mut angles = Vec::new();
    for epoch in 1..=args.epochs {
        let start = Instant::now();
        let order = shuffled(train.len(), args.seed + epoch as u64);
        let (mut loss_sum, mut steps) = (0.0f64, 0usize);
        for idx in order.chunks(args.batch) {
            let (x, y) = batch(&train, idx, &ad);
            let loss = criterion.forward(model.forward(x), y);
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            wt::add_feedback_gradients(&model, &mut grads, effective_lr);
            model = optim.step(args.lr, model, grads);
            model = wt::mirror_update(model);
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
