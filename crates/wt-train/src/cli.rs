//! The command line shared by the `mnist`, `cifar10` and `imagenet` examples.
//!
//! A run's config is resolved in this order: the example's [`Preset`], then `--config FILE`
//! (or, with `--resume`, the run folder's `config.toml`), then the flags given. The resolved
//! config is written to the run folder, so `--config <out>/config.toml` repeats the run.
// The flags' doc comments are clap's `--help` text, written for a terminal (`cuda[:N]`,
// `<data>/val`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, FromArgMatches, Parser};
use wt_core::{MirrorSamples, MirrorUpdate, Named};
use wt_models::{Architecture, InitScheme, ModelConfig, Rule, Shortcut, Stem};

use crate::config::{
    DataConfig, DatasetKind, OptimizerConfig, OptimizerKind, Schedule, ScheduleConfig, TrainConfig,
};
use crate::data::{RunData, locate_data};
use crate::distributed::{Launch, World};
use crate::error::TrainError;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{FitOptions, Verbosity, final_json, fit};

/// Defaults of one example.
#[derive(Debug, Clone)]
pub struct Preset {
    /// Example name (for `--help` and the default run folder).
    pub name: &'static str,
    /// Data set read by default.
    pub dataset: DatasetKind,
    /// Default model.
    pub model: Architecture,
    /// Default epochs.
    pub epochs: usize,
    /// Default batch size.
    pub batch_size: usize,
    /// Default base learning rate.
    pub lr: f64,
    /// Default schedule: `true` steps at 40/60/80 % of the run (BioTorch's 100/150/200 of
    /// 250), `false` cosine.
    pub step_schedule: bool,
    /// Default images held out for validation.
    pub validation: usize,
    /// Default initialisation.
    pub init: InitScheme,
    /// Default class index file (ImageFolder), looked for under `$WT_DATA` and the cache
    /// folder like the data ([`wt_data::locate`]); not found: sorted folder names.
    pub class_index: Option<&'static str>,
}

impl Preset {
    /// MNIST / Fashion-MNIST: MLP 784-1000-1000-10, SGD 0.01 momentum 0.9, cosine, batch 128.
    pub fn mnist() -> Self {
        Self {
            name: "mnist",
            dataset: DatasetKind::Mnist,
            model: Architecture::Mlp,
            epochs: 10,
            batch_size: 128,
            lr: 0.01,
            step_schedule: false,
            validation: 0,
            init: InitScheme::Default,
            class_index: None,
        }
    }

    /// CIFAR-10: ResNet-20, BioTorch's recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, steps
    /// at 40/60/80 %, Xavier init, 45k/5k split, crop + flip).
    pub fn cifar10() -> Self {
        Self {
            name: "cifar10",
            dataset: DatasetKind::Cifar10,
            model: Architecture::Resnet20,
            epochs: 10,
            batch_size: 128,
            lr: 0.1,
            step_schedule: true,
            validation: 5000,
            init: InitScheme::Xavier,
            class_index: None,
        }
    }

    /// ImageNet-style folders: ResNet-18, SGD 0.1, steps at 40/60/80 %, batch 32.
    pub fn imagenet() -> Self {
        Self {
            name: "imagenet",
            dataset: DatasetKind::ImageFolder,
            model: Architecture::Resnet18,
            epochs: 10,
            batch_size: 32,
            lr: 0.1,
            step_schedule: true,
            validation: 0,
            // torchvision's: fan-out Kaiming-normal convolutions, PyTorch's default classifier.
            init: InitScheme::Default,
            class_index: Some("imagenet-classes/imagenet1k_classes.tsv"),
        }
    }

    fn schedule(&self, epochs: usize, step: bool) -> ScheduleConfig {
        ScheduleConfig {
            schedule: if step {
                Schedule::Step {
                    milestones: [0.4, 0.6, 0.8]
                        .iter()
                        .map(|f| ((f * epochs as f64).round() as usize).max(1))
                        .collect(),
                    gamma: 0.1,
                }
            } else {
                Schedule::Cosine
            },
            warmup_epochs: 0.0,
        }
    }
}

/// A clap value parser taking the names of a [`Named`] enum (`--help` lists them; an
/// unknown name is an error listing them); `-` may stand for `_`.
pub fn one_of<T>() -> impl TypedValueParser<Value = T>
where
    T: Named + Clone + Send + Sync + 'static,
{
    let values = T::names().into_iter().map(|name| {
        let value = PossibleValue::new(name);
        if name.contains('_') {
            value.alias(name.replace('_', "-"))
        } else {
            value
        }
    });
    PossibleValuesParser::new(values).map(|name| T::from_name(&name).expect("a name of the table"))
}

/// A clap value parser for counts that must be at least 1 (batch sizes, workers, passes).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

/// The options of a hand-written SGD loop on MNIST (`examples/mnist_mlp.rs`,
/// `examples/burn_train.rs`): data, device, and the recipe of the MNIST MLP table.
#[derive(Debug, Clone, Args)]
pub struct MnistLoopArgs {
    /// MNIST folder (default: `mnist` under $WT_DATA or the cache folder)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Batch size
    #[arg(long, default_value_t = 128, value_parser = positive)]
    pub batch: usize,
    /// Learning rate
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// SGD momentum
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Weight-mirror steps before training (WM only)
    #[arg(long, default_value_t = 500)]
    pub mirror_warmup: usize,
}

impl MnistLoopArgs {
    /// The MNIST folder: `--data`, else `mnist` under `$WT_DATA` or the cache folder.
    pub fn mnist_dir(&self) -> Result<PathBuf, String> {
        match &self.data {
            Some(dir) => Ok(dir.clone()),
            None => wt_data::locate::find(&["mnist"]).ok_or_else(|| {
                format!(
                    "no MNIST data: give --data DIR or set {} to a folder holding mnist/",
                    wt_data::locate::DATA_VAR
                )
            }),
        }
    }

    /// wt's SGD recipe ([`OptimizerConfig::sgd`]) with the rate, momentum and weight decay
    /// asked for.
    pub fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig::sgd(self.lr, self.momentum, self.weight_decay)
    }

    /// Burn's optimizer for [`optimizer_config`](Self::optimizer_config) (no dampening), for a
    /// loop that holds it itself (burn-train's `Learner`).
    pub fn sgd(&self) -> burn::optim::ModuleOptimizer {
        crate::trainer::optimizer(&self.optimizer_config())
    }
}

fn rule_override(item: &str) -> Result<(String, Rule), String> {
    let (pattern, rule) = item
        .split_once('=')
        .ok_or_else(|| format!("`{item}` is not PATTERN=RULE (e.g. fc=bp)"))?;
    let rule = rule.trim().parse::<Rule>().map_err(|e| e.to_string())?;
    Ok((pattern.trim().to_string(), rule))
}

/// The flags of the `mnist`, `cifar10` and `imagenet` examples. Every value flag is optional:
/// given, it overrides the preset or the `--config` file. A flag given twice takes its last
/// value (so a script's fixed flags can be overridden by flags appended after them); list flags
/// (`--hidden`, `--milestones`, `--rule-for`, `--devices`) collect every occurrence.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    args_override_self = true,
    about = "Trains a zoo model with a learning rule, writing a run folder",
    after_help = "The data folder is --data, else $WT_DATA/<usual name> (mnist, fashion-mnist, \
                  cifar-10-batches-bin, ...), else the cache folder, else (with --download) a \
                  checksum-verified download into the cache."
)]
pub struct TrainArgs {
    /// The run folder: `--out`, `--resume`, `--overwrite`, `--config`, `--quiet`.
    #[command(flatten)]
    pub run: RunArgs,
    /// The model and its rules.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The data set and its splits.
    #[command(flatten)]
    pub data: DataArgs,
    /// Optimiser, schedule, epochs, batch.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Devices, processes, workers and measurements.
    #[command(flatten)]
    pub running: RunningArgs,
}

/// Run folder and config.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Run folder and config")]
pub struct RunArgs {
    /// Run folder (default runs/<example>-<model>-<rule>-s<seed>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Start from this config (.toml or .json), e.g. a run's config.toml
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (flags may extend --epochs)
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete the run files in --out and start again
    #[arg(long)]
    pub overwrite: bool,
    /// Print only the final JSON line
    #[arg(long)]
    pub quiet: bool,
}

/// The model and its rules.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// Zoo model
    #[arg(long, value_parser = one_of::<Architecture>())]
    pub model: Option<Architecture>,
    /// Learning rule of every feedback layer
    #[arg(long, value_parser = one_of::<Rule>())]
    pub rule: Option<Rule>,
    /// Keep the classifier (the last feedback layer) on backprop
    #[arg(long)]
    pub last_layer_bp: bool,
    /// Rules of their own for the layers a path pattern names, e.g. 'conv1=bp,fc=bp',
    /// 'blocks.0=fa', 'fc*=bp' (model.rule_for in a config)
    #[arg(long, value_name = "PATTERN=RULE", value_delimiter = ',', value_parser = rule_override)]
    pub rule_for: Vec<(String, Rule)>,
    /// Initialisation of W (and of B where the rule draws it)
    #[arg(long, value_parser = one_of::<InitScheme>())]
    pub init: Option<InitScheme>,
    /// MLP hidden widths (default 1000,1000)
    #[arg(long, value_name = "W,W,..", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// CIFAR ResNet shortcut (default a)
    #[arg(long, value_parser = one_of::<Shortcut>())]
    pub shortcut: Option<Shortcut>,
    /// ResNet-18/50 stem (default: imagenet above 64 pixels, cifar below)
    #[arg(long, value_parser = one_of::<Stem>())]
    pub stem: Option<Stem>,
    /// Kolen-Pollack: decay on B alone, added to the weight decay (0)
    #[arg(long, value_name = "X")]
    pub kp_decay: Option<f64>,
    /// DFA, DKP: send e/P to each of a convolution's P output positions (not BioTorch's e)
    #[arg(long)]
    pub dfa_position_mean: bool,
    /// Weight-mirror steps before epoch 1 (default 500 with wm)
    #[arg(long, value_name = "N")]
    pub mirror_warmup: Option<usize>,
    /// Weight mirror: learning rate η_B (0.5)
    #[arg(long, value_name = "X")]
    pub mirror_lr: Option<f64>,
    /// Weight mirror: decay λ_B (default η_B·σ²)
    #[arg(long, value_name = "X")]
    pub mirror_decay: Option<f64>,
    /// Weight mirror: noise standard deviation σ (1)
    #[arg(long, value_name = "X")]
    pub mirror_sigma: Option<f64>,
    /// Weight mirror: noise samples per mirror step (128)
    #[arg(long, value_name = "N")]
    pub mirror_batch: Option<usize>,
    /// Weight mirror: mirror steps per training step (1)
    #[arg(long, value_name = "N")]
    pub mirror_steps: Option<usize>,
    /// Weight mirror: noise samples per layer, patch:SIDE (every layer alike; default
    /// patch:4) or fan-in:RATIO (at least RATIO × the layer's fan-in)
    #[arg(long, value_name = "KIND:N")]
    pub mirror_samples: Option<MirrorSamples>,
    /// Weight mirror: how the update reaches B (direct)
    #[arg(long, value_parser = one_of::<MirrorUpdate>())]
    pub mirror_update: Option<MirrorUpdate>,
}

/// The data.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// Data folder or archive
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Download the data set into the cache folder (checksums verified) when it is not found
    #[arg(long)]
    pub download: bool,
    /// Data set
    #[arg(long, value_parser = one_of::<DatasetKind>())]
    pub dataset: Option<DatasetKind>,
    /// Images held out of the training files for validation
    #[arg(long, value_name = "N")]
    pub validation: Option<usize>,
    /// Train on N images only
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Evaluate on the first N test images only
    #[arg(long, value_name = "N")]
    pub test_subset: Option<usize>,
    /// No training augmentation
    #[arg(long)]
    pub no_augment: bool,
    /// Class index (.tsv) for image folders; `none`: sorted folder names
    #[arg(long, value_name = "FILE")]
    pub class_index: Option<PathBuf>,
    /// Image folders: RandomResizedCrop N, eval resize N·256/224, crop N (224)
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    /// Image folders: skip images that do not decode (counted and listed at the end) instead
    /// of stopping at the first
    #[arg(long)]
    pub skip_undecodable: bool,
    /// Image folders: the test images lie flat in <data>/val (ILSVRC-2012's validation
    /// folder), labelled by this JSON map of file name to class (needs the class index)
    #[arg(long, value_name = "FILE")]
    pub val_labels: Option<PathBuf>,
}

/// The optimisation.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Optimisation")]
pub struct OptimArgs {
    /// Epochs (a step schedule's milestones follow unless given)
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Training batch size
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Evaluation batch size
    #[arg(long, value_name = "N")]
    pub eval_batch: Option<usize>,
    /// Base learning rate
    #[arg(long, value_name = "X")]
    pub lr: Option<f64>,
    /// SGD momentum
    #[arg(long, value_name = "X")]
    pub momentum: Option<f64>,
    /// Nesterov momentum
    #[arg(long)]
    pub nesterov: bool,
    /// L2 weight decay on every parameter
    #[arg(long, value_name = "X")]
    pub weight_decay: Option<f64>,
    /// Optimizer
    #[arg(long, value_parser = one_of::<OptimizerKind>())]
    pub optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule
    #[arg(long, value_parser = one_of::<Schedule>())]
    pub schedule: Option<Schedule>,
    /// Step schedule: epochs after which the rate drops
    #[arg(long, value_name = "E,E,..", value_delimiter = ',')]
    pub milestones: Vec<usize>,
    /// Step schedule: factor of each drop
    #[arg(long, value_name = "X")]
    pub gamma: Option<f64>,
    /// Epochs of linear warm-up
    #[arg(long, value_name = "EPOCHS")]
    pub warmup: Option<f64>,
    /// Label smoothing of the loss
    #[arg(long, value_name = "X")]
    pub label_smoothing: Option<f32>,
    /// Seed of the initialisation, the data order and the augmentation
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Devices, workers and measurements.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Running")]
pub struct RunningArgs {
    /// flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// Data-parallel on several devices, e.g. cuda:0,cuda:1 (batch split)
    #[arg(long, value_name = "A,B,..", value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Processes: auto (MPI when started by mpirun or srun), none, mpi. Under MPI --batch is
    /// per rank and --device may name {local_rank} or {rank}, e.g. cuda:{local_rank}
    #[arg(long, value_enum, value_name = "HOW", default_value = "auto")]
    pub distributed: Launch,
    /// Batch-preparing threads (default 2)
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Skip the per-epoch error- and update-angle measurement
    #[arg(long)]
    pub no_error_alignment: bool,
    /// Probe batches the angles are averaged over (4)
    #[arg(long, value_name = "K")]
    pub alignment_batches: Option<usize>,
    /// Also write every scalar as TensorBoard event files into DIR
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
}

impl TrainArgs {
    /// The run mode `--resume` / `--overwrite` ask for.
    pub fn mode(&self) -> RunMode {
        match (self.run.resume, self.run.overwrite) {
            (true, _) => RunMode::Resume,
            (_, true) => RunMode::Overwrite,
            _ => RunMode::New,
        }
    }

    /// Applies the given flags to `c`: the model's and rules' first (the rules' own flags
    /// need their rule), then data, optimisation and running.
    pub fn apply(&self, c: &mut TrainConfig) -> Result<(), TrainError> {
        let cfg = |m: String| Err(TrainError::Config(m));
        let m = &self.model;
        set(&mut c.model.architecture, m.model);
        set(&mut c.model.rule, m.rule);
        c.model.last_layer_backprop |= m.last_layer_bp;
        c.model.rule_for.extend(m.rule_for.iter().cloned());
        set(&mut c.model.init, m.init);
        if !m.hidden.is_empty() {
            c.model.hidden = m.hidden.clone();
        }
        set(&mut c.model.shortcut, m.shortcut);
        if m.stem.is_some() {
            c.model.stem = m.stem;
        }
        set(&mut c.mirror_warmup, m.mirror_warmup);
        if let Some(decay) = m.kp_decay {
            let Rule::KolenPollack(kp) = &mut c.model.rule else {
                return cfg(format!(
                    "--kp-decay needs --rule kp (the rule is {})",
                    c.model.rule.name()
                ));
            };
            kp.feedback_decay = decay;
        }
        if m.dfa_position_mean {
            let (Rule::DirectFeedbackAlignment(d) | Rule::DirectKolenPollack(d)) =
                &mut c.model.rule
            else {
                return cfg(format!(
                    "--dfa-position-mean needs --rule dfa or dkp (the rule is {})",
                    c.model.rule.name()
                ));
            };
            d.conv_position_mean = true;
        }
        let mirror_flags = [
            ("--mirror-lr", m.mirror_lr.is_some()),
            ("--mirror-decay", m.mirror_decay.is_some()),
            ("--mirror-sigma", m.mirror_sigma.is_some()),
            ("--mirror-batch", m.mirror_batch.is_some()),
            ("--mirror-steps", m.mirror_steps.is_some()),
            ("--mirror-update", m.mirror_update.is_some()),
            ("--mirror-samples", m.mirror_samples.is_some()),
        ];
        if let Some((flag, _)) = mirror_flags.iter().find(|(_, given)| *given) {
            let rule = c.model.rule.name();
            let Rule::WeightMirror(wm) = &mut c.model.rule else {
                return cfg(format!("{flag} needs --rule wm (the rule is {rule})"));
            };
            set(&mut wm.mirror_lr, m.mirror_lr);
            if m.mirror_decay.is_some() {
                wm.mirror_decay = m.mirror_decay;
            }
            set(&mut wm.sigma, m.mirror_sigma);
            set(&mut wm.mirror_batch, m.mirror_batch);
            set(&mut wm.mirror_steps, m.mirror_steps);
            set(&mut wm.update, m.mirror_update);
            set(&mut wm.samples, m.mirror_samples);
        }

        let d = &self.data;
        if let Some(dir) = &d.data {
            c.data.dir = dir.clone();
        }
        set(&mut c.data.dataset, d.dataset);
        set(&mut c.data.validation, d.validation);
        if d.train_subset.is_some() {
            c.data.train_subset = d.train_subset;
        }
        if d.test_subset.is_some() {
            c.data.test_subset = d.test_subset;
        }
        c.data.augment &= !d.no_augment;
        if let Some(index) = &d.class_index {
            c.data.class_index = (index.as_os_str() != "none").then(|| index.clone());
        }
        if d.image_size.is_some() {
            c.data.image_size = d.image_size;
        }
        c.data.skip_undecodable |= d.skip_undecodable;
        if d.val_labels.is_some() {
            c.data.val_labels = d.val_labels.clone();
        }

        let o = &self.optim;
        set(&mut c.epochs, o.epochs);
        set(&mut c.batch_size, o.batch);
        set(&mut c.eval_batch_size, o.eval_batch);
        set(&mut c.optimizer.lr, o.lr);
        set(&mut c.optimizer.momentum, o.momentum);
        c.optimizer.nesterov |= o.nesterov;
        set(&mut c.optimizer.weight_decay, o.weight_decay);
        set(&mut c.optimizer.kind, o.optimizer);
        if let Some(schedule) = &o.schedule {
            let keep = matches!(
                (&c.schedule.schedule, schedule),
                (Schedule::Step { .. }, Schedule::Step { .. })
            );
            if !keep {
                c.schedule.schedule = match schedule {
                    Schedule::Step { .. } => Schedule::Step {
                        milestones: vec![c.epochs * 2 / 5, c.epochs * 3 / 5, c.epochs * 4 / 5],
                        gamma: 0.1,
                    },
                    other => other.clone(),
                };
            }
        }
        if !o.milestones.is_empty() || o.gamma.is_some() {
            let Schedule::Step { milestones, gamma } = &mut c.schedule.schedule else {
                let flag = if o.gamma.is_some() {
                    "--gamma"
                } else {
                    "--milestones"
                };
                return cfg(format!("{flag} needs --schedule step"));
            };
            if !o.milestones.is_empty() {
                *milestones = o.milestones.clone();
            }
            set(gamma, o.gamma);
        }
        set(&mut c.schedule.warmup_epochs, o.warmup);
        if o.label_smoothing.is_some() {
            c.label_smoothing = o.label_smoothing;
        }
        set(&mut c.seed, o.seed);

        let r = &self.running;
        if let Some(device) = &r.device {
            c.device = device.clone();
        }
        if !r.devices.is_empty() {
            c.devices = r.devices.clone();
            c.device = c.devices[0].clone();
        }
        set(&mut c.workers, r.workers);
        c.error_alignment &= !r.no_error_alignment;
        set(&mut c.alignment_batches, r.alignment_batches);
        if r.tensorboard.is_some() {
            c.tensorboard = r.tensorboard.clone();
        }
        Ok(())
    }
}

/// `*field = value` when a value was given.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

impl Preset {
    /// The preset's recipe as a [`TrainConfig`] (the rule BP until given), before the data is
    /// known: the data folder is looked up and `num_classes`, channels and image side are
    /// filled in from the data when the run starts. A user's program can start from it and
    /// change what it needs: `Preset::cifar10().config().with_epochs(5)`.
    pub fn config(&self) -> TrainConfig {
        let mut model = ModelConfig::new(self.model, 10, 1, 28, Rule::default());
        model.init = self.init;
        // Empty: looked up when the run starts (`locate_data`).
        let data = DataConfig::new(self.dataset, PathBuf::new())
            .with_validation(self.validation)
            .with_class_index(
                self.class_index
                    .and_then(|name| wt_data::locate::find(&[name])),
            );
        TrainConfig::new(model, data)
            .with_optimizer(OptimizerConfig::sgd(self.lr, 0.9, 1e-4))
            .with_schedule(self.schedule(self.epochs, self.step_schedule))
            .with_epochs(self.epochs)
            .with_batch_size(self.batch_size)
    }
}

/// Runs an example with parsed flags: trains, prints progress and ends with one JSON line
/// of the final metrics. Under MPI (`--distributed`, [`World::from_env`]) every rank runs
/// this; rank 0 prints and writes the run folder, and an error on any rank is printed with
/// its rank and stops the whole job (MPI's abort), so no rank waits for one that has stopped.
pub fn run(preset: Preset, args: &TrainArgs) -> Result<(), TrainError> {
    let world = World::from_env(args.running.distributed)?;
    match run_in(preset, args, &world) {
        Err(e) if world.is_distributed() => {
            eprintln!("error: rank {} of {}: {e}", world.rank(), world.size());
            world.abort(2)
        }
        done => done,
    }
}

/// [`run`] in `world`.
fn run_in(preset: Preset, args: &TrainArgs, world: &World) -> Result<(), TrainError> {
    let mode = args.mode();
    let out = args.run.out.as_ref();
    let mut config = match (&args.run.config, mode, out) {
        (_, RunMode::Resume, Some(out)) => TrainConfig::load(&out.join("config.toml"))?,
        (_, RunMode::Resume, None) => {
            return Err(TrainError::Config(
                "--resume needs --out DIR (the run folder)".into(),
            ));
        }
        (Some(file), _, _) => TrainConfig::load(file)?,
        (None, _, _) => {
            let mut c = preset.config();
            // A step schedule follows --epochs unless milestones are given.
            if let Some(epochs) = args.optim.epochs {
                c.schedule = preset.schedule(epochs, preset.step_schedule);
            }
            c
        }
    };
    args.apply(&mut config)?;
    if config.model.rules().all(|r| r.weight_mirror().is_none()) {
        config.mirror_warmup = 0;
    }
    if config.data.dir.as_os_str().is_empty() {
        config.data.dir = locate_data(config.data.dataset, args.data.download)?;
    }
    let data = RunData::open(&config.data, config.seed)?;
    config.model.num_classes = data.num_classes;
    config.model.in_channels = data.channels;
    config.model.image_side = data.side;
    config.validate()?;
    let out = out.cloned().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}-{}-s{}",
            preset.name,
            config.model.architecture,
            config.model.rule.name(),
            config.seed
        ))
    });
    // Rank 0 prepares the folder; the other ranks only read its checkpoint when resuming.
    let run = if world.is_main() {
        RunDir::open(&out, mode)?
    } else {
        RunDir::reading(&out)
    };
    let quiet = args.run.quiet || !world.is_main();
    if !quiet {
        println!(
            "{}: {} train / {} validation / {} test images from {}, {} classes; run folder {}",
            preset.name,
            data.train.len(),
            data.validation.as_ref().map_or(0, |v| v.len()),
            data.test.len(),
            config.data.dir.display(),
            data.num_classes,
            out.display()
        );
    }
    let options = FitOptions {
        resume: mode == RunMode::Resume,
        verbosity: if quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        },
        stop_after: None,
        world: world.clone(),
    };
    let model_config = config.model.clone();
    let trained = fit(&config, &data, &run, options, |d| model_config.init(d))?;
    if let Some(log) = &data.skipped {
        let files = log.files();
        eprintln!(
            "skipped {} undecodable image loads ({} files){}",
            log.count(),
            files.len(),
            if files.is_empty() { "" } else { ":" }
        );
        for (file, why) in files {
            eprintln!("  {}: {why}", file.display());
        }
    }
    if world.is_main() {
        println!("{}", final_json(&config, &trained));
    }
    Ok(())
}

/// `main` of an example: parses the command line (`--help` prints the generated help; a bad
/// flag exits with status 2 and clap's message), runs, and exits with status 2 and the
/// message on error.
pub fn main(preset: Preset) {
    // CPU steps free and reallocate the same large temporaries: keep them (see the module).
    crate::allocator::keep_freed_memory();
    let args = TrainArgs::command()
        .name(preset.name)
        .bin_name(format!("cargo run --release --example {} --", preset.name))
        .get_matches();
    let args = TrainArgs::from_arg_matches(&args).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(preset, &args) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wt_core::WeightMirror;

    fn parse(line: &str) -> Result<TrainArgs, TrainError> {
        let words = std::iter::once("example").chain(line.split_whitespace());
        TrainArgs::try_parse_from(words).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The preset's config with `line`'s flags applied.
    fn applied(preset: &Preset, line: &str) -> Result<TrainConfig, TrainError> {
        let mut c = preset.config();
        parse(line)?.apply(&mut c)?;
        Ok(c)
    }

    #[test]
    fn flags_override_the_preset_and_errors_name_the_flag() {
        let line = "--rule kp --epochs 20 --lr 0.05 --hidden 500,300 --schedule step --milestones 5,10 --last-layer-bp --out x";
        let c = applied(&Preset::mnist(), line).unwrap();
        assert_eq!(c.model.rule.name(), "kp");
        assert_eq!((c.epochs, c.optimizer.lr), (20, 0.05));
        assert_eq!(c.model.hidden, vec![500, 300]);
        assert!(c.model.last_layer_backprop);
        assert_eq!(
            c.schedule.schedule,
            Schedule::Step {
                milestones: vec![5, 10],
                gamma: 0.1
            }
        );
        assert_eq!(parse(line).unwrap().run.out, Some(PathBuf::from("x")));
        let line = "--image-size 64 --stem imagenet --optimizer bm-sgd --dataset fashion-mnist";
        let mut c = applied(&Preset::imagenet(), line).unwrap();
        assert_eq!(c.data.dataset, DatasetKind::FashionMnist);
        c.data.dataset = DatasetKind::ImageFolder;
        assert_eq!(c.data.image_size, Some(64));
        assert_eq!(c.model.stem, Some(Stem::ImageNet));
        assert_eq!(c.optimizer.kind, OptimizerKind::BmSgd);
        c.validate().unwrap();
        let mut mnist = Preset::mnist().config();
        mnist.data.image_size = Some(64);
        let err = mnist.validate().unwrap_err().to_string();
        assert!(err.contains("image_folder"), "{err}");
        for (bad, expect) in [
            ("--stem tiny", "--stem"),
            ("--lr fast", "--lr"),
            (
                "--rule xx",
                "[possible values: bp, fa, usf, brsf, frsf, kp, wm, dfa, dkp]",
            ),
            ("--frobnicate 1", "unexpected argument '--frobnicate'"),
            ("--model vgg", "vgg"),
            ("--epochs", "a value is required for '--epochs <N>'"),
            ("--milestones 1,2", "needs --schedule step"),
            ("--resume --overwrite", "cannot be used with"),
        ] {
            let err = applied(&Preset::mnist(), bad).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }

    /// A repeated flag takes its last value, as `scripts/reproduce.sh ROW --lr X` relies on.
    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        let line = "--lr 1e-3 --dfa-position-mean --rule dfa --lr 0.05 --dfa-position-mean";
        let c = applied(&Preset::mnist(), line).unwrap();
        assert_eq!(c.optimizer.lr, 0.05);
        assert_eq!(c.model.rule.name(), "dfa");
        let c = applied(&Preset::mnist(), "--epochs 3 --epochs 7").unwrap();
        assert_eq!(c.epochs, 7);
    }

    /// Mirror and KP flags apply to their rule wherever they stand on the line, and need it.
    #[test]
    fn rule_flags_set_their_rule_and_need_it() {
        let c = applied(
            &Preset::mnist(),
            "--mirror-lr 0.2 --mirror-batch 64 --rule wm --mirror-decay 0.1 --mirror-sigma 0.5 --mirror-steps 2 --mirror-update gradient --mirror-samples fan-in:1.5 --devices flex,flex",
        )
        .unwrap();
        let wm = *c.model.rule.weight_mirror().expect("rule wm");
        assert_eq!(
            wm,
            WeightMirror {
                sigma: 0.5,
                mirror_lr: 0.2,
                mirror_decay: Some(0.1),
                mirror_batch: 64,
                mirror_steps: 2,
                update: MirrorUpdate::Gradient,
                samples: MirrorSamples::PerFanIn { ratio: 1.5 },
            }
        );
        assert_eq!(c.devices, vec!["flex".to_string(), "flex".into()]);
        assert_eq!(c.device, "flex");
        let c = applied(
            &Preset::mnist(),
            "--rule-for conv1=bp,fc*=fa --rule kp --rule-for blocks.0=dfa",
        )
        .unwrap();
        let names: Vec<(&str, &str)> = (c.model.rule_for.iter())
            .map(|(p, r)| (p.as_str(), r.name()))
            .collect();
        assert_eq!(names, [("blocks.0", "dfa"), ("conv1", "bp"), ("fc*", "fa")]);
        let c = applied(&Preset::mnist(), "--rule dkp --dfa-position-mean").unwrap();
        assert!(c.model.rule.direct().unwrap().conv_position_mean);
        let c = applied(&Preset::mnist(), "--kp-decay 0.003 --rule kp").unwrap();
        assert_eq!(
            c.model.rule,
            Rule::KolenPollack(wt_core::KolenPollack {
                feedback_decay: 0.003
            })
        );
        for (bad, expect) in [
            ("--rule wm --kp-decay 0.1", "--kp-decay needs --rule kp"),
            (
                "--rule kp --dfa-position-mean",
                "--dfa-position-mean needs --rule dfa",
            ),
            ("--rule-for fc", "not PATTERN=RULE"),
            ("--rule-for fc=sgd", "unknown learning rule `sgd`"),
            (
                "--rule wm --mirror-update later",
                "[possible values: direct, gradient]",
            ),
            ("--rule kp --kp-decay lots", "--kp-decay"),
            ("--rule kp --mirror-lr 0.1", "--mirror-lr needs --rule wm"),
            ("--rule wm --mirror-batch many", "--mirror-batch"),
        ] {
            let err = applied(&Preset::mnist(), bad).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }

    #[test]
    fn cifar_preset_is_biotorchs_recipe_shortened_proportionally() {
        let p = Preset::cifar10();
        let c = p.config();
        assert_eq!(
            (
                c.optimizer.lr,
                c.optimizer.momentum,
                c.optimizer.weight_decay
            ),
            (0.1, 0.9, 1e-4)
        );
        assert_eq!(c.data.validation, 5000);
        assert_eq!(c.model.init, InitScheme::Xavier);
        assert_eq!(
            p.schedule(250, true).schedule,
            Schedule::Step {
                milestones: vec![100, 150, 200],
                gamma: 0.1
            }
        );
    }
}
