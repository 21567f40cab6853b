//! A zoo model with any learning rule, trained by burn-train's `Learner` as a Burn user
//! already trains: `SupervisedTraining` with its loss and accuracy metrics, its progress
//! display and its run folder. The rules' per-step work (the gradients of `B` that backward
//! does not give, the weight mirror's update) happens in the `TrainStep::optimize` hook,
//! through `wt_train::FeedbackOptimizer::step_with`, around the `Learner`'s own optimizer.
//!
//! ```text
//! cargo run --release --example burn_train -- --rule kp --epochs 2
//! cargo run --release --example burn_train -- --model lenet --rule wm --limit 2048 --epochs 1
//! ```
//! MNIST's training split trains; its test split is burn-train's validation split. `--limit N`
//! keeps the first N items of each (CI runs a few steps so). wt's own `fit` (the `mnist`
//! example) adds what burn-train does not do: exact resume, the alignment metrics, plots.

use std::path::PathBuf;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::data::dataset::transform::PartialDataset;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, ExecutionStrategy, InferenceStep, Learner, SupervisedTraining,
    TrainOutput, TrainStep,
};
use clap::Parser;
use wt::wt_core::device::parse_device;
use wt::wt_models::{Architecture, ImageClassifier, Model, ModelConfig};
use wt::wt_train::FeedbackOptimizer;
use wt::wt_train::cli::{one_of, positive};
use wt::{Rule, mirror_steps};
use wt_data::{ImageBatch, MnistBatcher, MnistDataset, Split};

/// A zoo model as burn-train's `Learner` sees it: a classification step and the rules'
/// optimizer step.
#[derive(Module, Debug)]
struct Classifier {
    model: Model,
    /// SGD's momentum β, which sets the step a weight mirror in `gradient` mode is scaled for.
    momentum: f64,
}

impl Classifier {
    /// Images `[batch, 1, 28, 28]` and labels `[batch]` → loss, logits, labels.
    fn classify(&self, batch: ImageBatch) -> ClassificationOutput {
        let logits = self.model.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
        let out = self.classify(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }

    /// The `Learner`'s optimizer step with the rules' work around it.
    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let momentum = self.momentum;
        FeedbackOptimizer::step_with(optim, lr, momentum, self, grads)
    }
}

impl InferenceStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}

/// Trains a zoo model on MNIST with any rule through burn-train's Learner.
#[derive(Parser)]
struct Args {
    /// Learning rule of every layer
    #[arg(long, default_value = "kp", value_parser = one_of::<Rule>())]
    rule: Rule,
    /// Zoo model (an MNIST-sized one)
    #[arg(long, default_value = "mlp", value_parser = one_of::<Architecture>())]
    model: Architecture,
    /// Epochs
    #[arg(long, default_value_t = 2, value_parser = positive)]
    epochs: usize,
    /// Keep the first N items of each split (all when absent)
    #[arg(long, value_name = "N", value_parser = positive)]
    limit: Option<usize>,
    /// MNIST folder (default: `mnist` under $WT_DATA or the cache folder)
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, default_value = "flex")]
    device: String,
    /// Batch size
    #[arg(long, default_value_t = 128, value_parser = positive)]
    batch: usize,
    /// Learning rate
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// SGD momentum
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Weight-mirror steps before training (WM only)
    #[arg(long, default_value_t = 500)]
    mirror_warmup: usize,
    /// burn-train's run folder (its logs and checkpoints)
    #[arg(long, default_value = "runs/burn-train")]
    out: PathBuf,
}

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// The first `limit` items of `split` (all of them without a limit).
fn first(
    split: MnistDataset,
    limit: Option<usize>,
) -> PartialDataset<MnistDataset, wt_data::MnistItem> {
    let n = limit.map_or(split.len(), |l| l.min(split.len()));
    PartialDataset::new(split, 0, n)
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let data = match args.data.clone() {
        Some(dir) => dir,
        None => wt_data::locate::find(&["mnist"]).ok_or_else(|| {
            format!(
                "no MNIST data: give --data DIR or set {} to a folder holding mnist/",
                wt_data::locate::DATA_VAR
            )
        })?,
    };
    let device = parse_device(&args.device)?;
    device.seed(args.seed);
    let train = MnistDataset::new(&data, Split::Train).map_err(|e| e.to_string())?;
    let test = MnistDataset::new(&data, Split::Test).map_err(|e| e.to_string())?;
    let (train, test) = (first(train, args.limit), first(test, args.limit));
    println!(
        "MNIST from {}: {} train, {} validation (the test split); {} with rule {}; device {}",
        data.display(),
        train.len(),
        test.len(),
        args.model,
        args.rule.name(),
        args.device
    );
    let loader = |dataset| {
        DataLoaderBuilder::new(MnistBatcher)
            .batch_size(args.batch)
            .shuffle(args.seed)
            .num_workers(1)
            .build(dataset)
    };
    let (train, test) = (loader(train), loader(test));

    let ad = device.clone().autodiff();
    let mut model = ModelConfig::new(args.model, 10, 1, 28, args.rule).init(&ad);
    if args.rule.weight_mirror().is_some() && args.mirror_warmup > 0 {
        model = mirror_steps(model, args.mirror_warmup);
    }
    let classifier = Classifier {
        model,
        momentum: args.momentum,
    };
    let sgd = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(args.momentum)))
        .with_weight_decay(Some(WeightDecayConfig::new(args.weight_decay as f32)))
        .init();
    let training = SupervisedTraining::new(&args.out, train, test)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_training_strategy(ExecutionStrategy::SingleDevice(ad).into())
        .num_epochs(args.epochs)
        .summary();
    let result = training.launch(Learner::new(classifier, sgd, args.lr));
    let layers = wt::weight_alignment(&result.model.model);
    let angles: Vec<String> = layers
        .iter()
        .map(|l| format!("{} {:.1}°", l.path, l.weight.angle_deg))
        .collect();
    println!("B–W angles after training: {}", angles.join(", "));
    Ok(())
}
