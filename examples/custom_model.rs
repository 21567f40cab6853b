//! Your own Burn model with feedback layers, trained by wt's loop: define the model with
//! `FeedbackConv2d` / `FeedbackLinear` (and any Burn module: batch norm, pooling, dropout),
//! implement `ImageClassifier` (its logits passed through `direct_error`, which direct feedback
//! alignment reads), and hand a builder to `wt_train::fit`. Every rule, the run
//! folder, checkpoints, `--resume`-exact restarts and the per-layer angles come with it.
//!
//! ```text
//! cargo run --release --example custom_model -- --rule kp --epochs 2
//! ```
//! `--help` lists the options: rule (kp), epochs (2), `--data DIR` (default `mnist` under
//! `$WT_DATA` or the cache folder), device (flex), `--out DIR` (runs/custom-<rule>, replaced if
//! it exists).

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use clap::Parser;
use wt::wt_models::{Architecture, ImageClassifier, ModelConfig};
use wt::wt_train::cli::one_of;
use wt::wt_train::data::locate_data;
use wt::wt_train::{
    DataConfig, DatasetKind, FitOptions, OptimizerConfig, RunData, RunDir, RunMode, TrainConfig,
    final_json, fit,
};
use wt::{
    FeedbackConv2d, FeedbackConv2dConfig, FeedbackLinear, FeedbackLinearConfig, Rule, direct_error,
};

/// A small convnet: two 3×3 feedback convolutions with batch norm and pooling, then two
/// feedback linear layers. `[n, 1, 28, 28]` → `[n, 10]`.
#[derive(Module, Debug)]
struct SmallConvNet {
    conv1: FeedbackConv2d,
    bn1: BatchNorm,
    conv2: FeedbackConv2d,
    bn2: BatchNorm,
    pool: MaxPool2d,
    fc1: FeedbackLinear,
    fc2: FeedbackLinear,
}

impl SmallConvNet {
    fn new(rule: Rule, device: &Device) -> Self {
        // DFA's layers need the number of outputs the error has (a no-op for other rules).
        let rule = rule.with_outputs(10);
        let conv = |i, o| {
            FeedbackConv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_rule(rule)
                .init(device)
        };
        Self {
            conv1: conv(1, 16),
            bn1: BatchNormConfig::new(16).init(device),
            conv2: conv(16, 32),
            bn2: BatchNormConfig::new(32).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: FeedbackLinearConfig::new(32 * 7 * 7, 128)
                .with_rule(rule)
                .init(device),
            fc2: FeedbackLinearConfig::new(128, 10)
                .with_rule(rule)
                .init(device),
        }
    }
}

impl ImageClassifier for SmallConvNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self
            .pool
            .forward(relu(self.bn1.forward(self.conv1.forward(x))));
        let x = self
            .pool
            .forward(relu(self.bn2.forward(self.conv2.forward(x))));
        let logits = self.fc2.forward(relu(self.fc1.forward(x.flatten(1, 3))));
        // The one line direct feedback alignment needs: the error at the logits is what its
        // layers receive (for every other rule, `logits` comes back untouched).
        direct_error(logits)
    }
}

/// Trains a user's own Burn model (a small conv net) on MNIST with any rule.
#[derive(Parser)]
struct Cli {
    /// Learning rule of every feedback layer
    #[arg(long, default_value = "kp", value_parser = one_of::<Rule>())]
    rule: Rule,
    /// Epochs
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// MNIST folder (default: found under $WT_DATA or the cache folder)
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, default_value = "flex")]
    device: String,
    /// Run folder (default runs/custom-<rule>)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Cli {
        rule,
        epochs,
        data,
        device,
        out,
    } = Cli::parse();
    let data = match data {
        Some(dir) => dir,
        None => locate_data(DatasetKind::Mnist, false)?,
    };
    // Only `rule` (for reports) and `mirror_warmup`'s rule check are read from the model
    // config: the network comes from the builder given to `fit`. Everything not set here is
    // `TrainConfig::new`'s default (cosine schedule, batch 128, seed 1, ...).
    let model = ModelConfig::new(Architecture::Lenet, 10, 1, 28, rule);
    let config = TrainConfig::new(
        model,
        DataConfig::new(DatasetKind::Mnist, data).with_augment(false),
    )
    .with_optimizer(OptimizerConfig::sgd(0.02, 0.9, 1e-4))
    .with_epochs(epochs)
    .with_device(device)
    .with_mirror_warmup(200);
    let data = RunData::open(&config.data, config.seed)?;
    let out = out.unwrap_or_else(|| format!("runs/custom-{}", rule.name()).into());
    let run = RunDir::open(&out, RunMode::Overwrite)?;
    let trained = fit(&config, &data, &run, FitOptions::default(), |device| {
        SmallConvNet::new(rule, device)
    })?;
    println!("{}", final_json(&config, &trained));
    Ok(())
}
