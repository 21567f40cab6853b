//! A zoo model with any learning rule, trained by burn-train's `Learner` as a Burn user
//! already trains: `SupervisedTraining` with its loss and accuracy metrics, its progress
//! display and its run folder. The rules' per-step work (the gradients of `B` that backward
//! does not give, the weight mirror's update) happens in the `TrainStep::optimize` hook,
//! through `wt::FeedbackOptimizer::step_with`, around the `Learner`'s own optimizer.
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
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, ExecutionStrategy, InferenceStep, Learner, SupervisedTraining,
    TrainOutput, TrainStep,
};
use clap::Parser;
use wt::FeedbackOptimizer;
use wt::wt_core::device::parse_device;
use wt::wt_models::{Architecture, ImageClassifier, Model, ModelConfig};
use wt::wt_train::cli::{MnistLoopArgs, one_of, positive};
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
        // DRTP's layers take the labels (the mean loss puts 1/batch on each error).
        let n = batch.targets.dims()[0].max(1);
        wt::direct_targets(batch.targets.clone(), 1.0 / n as f64);
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
    #[command(flatten)]
    common: MnistLoopArgs,
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
    let data = args.common.mnist_dir()?;
    let device = parse_device(&args.common.device)?;
    device.seed(args.common.seed);
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
        args.common.device
    );
    let loader = |dataset| {
        DataLoaderBuilder::new(MnistBatcher)
            .batch_size(args.common.batch)
            .shuffle(args.common.seed)
            .num_workers(1)
            .build(dataset)
    };
    let (train, test) = (loader(train), loader(test));

    let ad = device.clone().autodiff();
    let mut model = ModelConfig::new(args.model, 10, 1, 28, args.rule).init(&ad);
    if args.rule.weight_mirror().is_some() && args.common.mirror_warmup > 0 {
        model = mirror_steps(model, args.common.mirror_warmup);
    }
    let classifier = Classifier {
        model,
        momentum: args.common.momentum,
    };
    let sgd = args.common.sgd();
    let training = SupervisedTraining::new(&args.out, train, test)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_training_strategy(ExecutionStrategy::SingleDevice(ad).into())
        .num_epochs(args.epochs)
        .summary();
    let result = training.launch(Learner::new(classifier, sgd, args.common.lr));
    let layers = wt::weight_alignment(&result.model.model);
    let angles: Vec<String> = layers
        .iter()
        .map(|l| format!("{} {:.1}°", l.path, l.weight.angle_deg))
        .collect();
    println!("B–W angles after training: {}", angles.join(", "));
    Ok(())
}
