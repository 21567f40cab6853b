//! The flags of the `mnist`, `cifar10` and `imagenet` examples ([`TrainArgs`] and its
//! groups, clap's derive) and the value parsers the examples share ([`one_of`], [`positive`]).
// The flags' doc comments are clap's `--help` text, written for a terminal (`cuda[:N]`,
// `<data>/val`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser};
use wt_core::kernels::FlexKernels;
use wt_core::{MirrorSamples, MirrorUpdate, Named};
use wt_models::{Architecture, InitScheme, Rule, Shortcut, Stem};

use crate::config::{DatasetKind, OptimizerKind, Schedule};
use crate::distributed::Launch;
use crate::run_dir::RunMode;

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

/// A `--rule-for` value, `PATTERN=RULE` (e.g. `fc=bp`): the layer pattern and its rule.
pub fn rule_override(item: &str) -> Result<(String, Rule), String> {
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
    /// ResNet-18 to -152 stem (default: imagenet above 64 pixels, cifar below)
    #[arg(long, value_parser = one_of::<Stem>())]
    pub stem: Option<Stem>,
    /// Kolen-Pollack: decay on B alone, added to the weight decay (0)
    #[arg(long, value_name = "X")]
    pub kp_decay: Option<f64>,
    /// DFA, DKP, DRTP: send e/P to each of a convolution's P output positions (not BioTorch's e)
    #[arg(long)]
    pub dfa_position_mean: bool,
    /// sa, aa, ia: the α coefficient, VALUE[:from=EPOCH][:to=EPOCH][:linear=RATE|:exp=RATE]
    #[arg(long, value_name = "COEF")]
    pub alpha: Option<wt_core::Coefficient>,
    /// sa, aa, ia: the β coefficient (same form as --alpha)
    #[arg(long, value_name = "COEF")]
    pub beta: Option<wt_core::Coefficient>,
    /// ia: the γ coefficient (same form as --alpha)
    #[arg(long, value_name = "COEF")]
    pub gamma: Option<wt_core::Coefficient>,
    /// Start a ResNet-18/34/50/101/152 from a torchvision state dict (.pth or .safetensors)
    #[arg(long, value_name = "FILE")]
    pub pretrained: Option<PathBuf>,
    /// With --pretrained: leave the classifier (fc) at its initialisation
    #[arg(long)]
    pub pretrained_skip_fc: bool,
    /// With --pretrained: B starts as each rule prescribes for a trained W (rule: B = W for
    /// kp, wm, sa, aa, ia) or keeps its random draw (random)
    #[arg(long, value_parser = one_of::<wt_models::PretrainedFeedback>())]
    pub pretrained_feedback: Option<wt_models::PretrainedFeedback>,
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
    /// Step schedule: factor of each drop (`--gamma` is information alignment's γ)
    #[arg(long = "step-gamma", value_name = "X")]
    pub step_gamma: Option<f64>,
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
    /// Flex's convolution, batch-norm and sign kernels: wt (default) or burn (Burn's own ops,
    /// to compare)
    #[arg(long, env = "WT_CONV_KERNELS", value_name = "WHICH", value_parser = one_of::<FlexKernels>())]
    pub kernels: Option<FlexKernels>,
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
        RunMode::from_flags(self.run.resume, self.run.overwrite)
    }
}
