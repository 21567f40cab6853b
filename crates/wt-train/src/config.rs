//! [`TrainConfig`]: everything a run needs, written to the run folder as `config.toml` so the
//! run can be repeated with `--config config.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wt_core::kernels::FlexKernels;
use wt_core::{Named, named_str};
use wt_data::KnownDataset;
use wt_models::ModelConfig;

use crate::error::TrainError;

/// The data sets the examples know how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// MNIST IDX files (gzipped or raw) in `dir`.
    Mnist,
    /// Fashion-MNIST IDX files in `dir`.
    FashionMnist,
    /// CIFAR-10: `cifar-10-binary.tar.gz`, `cifar-10-batches-bin/` or its parent.
    Cifar10,
    /// CIFAR-100: `cifar-100-binary.tar.gz`, `cifar-100-binary/` or its parent.
    Cifar100,
    /// An ImageFolder tree with `train/<class>/` and `val/<class>/` (ImageNet layout).
    ImageFolder,
}

impl Named for DatasetKind {
    const WHAT: &'static str = "dataset";

    fn all() -> Vec<Self> {
        vec![
            Self::Mnist,
            Self::FashionMnist,
            Self::Cifar10,
            Self::Cifar100,
            Self::ImageFolder,
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion_mnist",
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::ImageFolder => "image_folder",
        }
    }
}

impl DatasetKind {
    /// The data set in wt-data's [`catalog`](wt_data::catalog): its usual folder names and
    /// where it is downloaded from.
    pub fn known(self) -> KnownDataset {
        match self {
            Self::Mnist => KnownDataset::Mnist,
            Self::FashionMnist => KnownDataset::FashionMnist,
            Self::Cifar10 => KnownDataset::Cifar10,
            Self::Cifar100 => KnownDataset::Cifar100,
            Self::ImageFolder => KnownDataset::ImageFolder,
        }
    }

    /// The folder and archive names the data set is looked for under `$WT_DATA` and the
    /// cache folder ([`wt_data::locate`]), in order ([`KnownDataset::usual_names`]).
    pub fn usual_names(self) -> &'static [&'static str] {
        self.known().usual_names()
    }
}

/// Where the data is and how it is split and augmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Which reader.
    pub dataset: DatasetKind,
    /// Folder (or archive) holding the data set.
    pub dir: PathBuf,
    /// Images held out of the training split for validation (seeded random choice), e.g.
    /// BioTorch's 5,000 of CIFAR-10's 50,000. 0: no validation split.
    #[serde(default)]
    pub validation: usize,
    /// Train on only this many images of the training split (seeded random choice).
    #[serde(default)]
    pub train_subset: Option<usize>,
    /// Evaluate on only the first this-many test images.
    #[serde(default)]
    pub test_subset: Option<usize>,
    /// Training augmentation (CIFAR: crop 32 pad 4 + flip; ImageFolder: RandomResizedCrop +
    /// flip). MNIST has none.
    #[serde(default = "yes")]
    pub augment: bool,
    /// Class index file (`imagenet1k_classes.tsv`) for ImageFolder trees; sorted folder names
    /// otherwise.
    #[serde(default)]
    pub class_index: Option<PathBuf>,
    /// Side of the images an ImageFolder pipeline makes (training crop; evaluation resize
    /// `round(side·256/224)` and centre crop); `None`: 224. Other data sets have fixed sides.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// ImageFolder trees: skip images that do not decode (counted and listed at the end of
    /// the run) instead of stopping at the first with an error naming it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_undecodable: bool,
    /// ImageFolder trees: the test images lie flat in `<dir>/val` (ILSVRC-2012's validation
    /// folder, `ILSVRC2012_val_00000001.JPEG`, ...) and this JSON maps each file name to its
    /// class (`ilsvrc2012_val_image_to_label.json`); needs `class_index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_labels: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// Optimizer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with (optionally Nesterov) momentum and L2 weight decay.
    Sgd,
    /// Adam with L2 weight decay.
    Adam,
    /// AdamW (Loshchilov & Hutter): Adam with the weight decay decoupled from the gradient,
    /// `θ ← θ − lr·λ·θ` beside Adam's step, on every parameter (`B` of KP, WM, SA, AA and IA
    /// included, as SGD's decay is); the usual optimizer of transformers.
    #[serde(rename = "adamw")]
    AdamW,
    /// Batch-Manhattan SGD: SGD on the sign of the gradient, with momentum and L2 weight
    /// decay as SGD's ([`BatchManhattanSgd`](crate::BatchManhattanSgd)).
    #[serde(rename = "bm_sgd", alias = "bm-sgd")]
    BmSgd,
}

impl Named for OptimizerKind {
    const WHAT: &'static str = "optimizer";

    fn all() -> Vec<Self> {
        vec![Self::Sgd, Self::Adam, Self::AdamW, Self::BmSgd]
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Adam => "adam",
            Self::AdamW => "adamw",
            Self::BmSgd => "bm_sgd",
        }
    }
}

/// Optimizer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// SGD, Adam, AdamW or Batch-Manhattan SGD.
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (0: none).
    #[serde(default)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay, applied by the optimizer to every parameter with a gradient (W, b,
    /// batch and layer norm, and B for KP and WM: the decay KP needs to align): L2 for SGD,
    /// Adam and Batch-Manhattan SGD, decoupled for AdamW.
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam's and AdamW's β₁, β₂.
    #[serde(default = "adam_betas")]
    pub betas: (f32, f32),
}

fn adam_betas() -> (f32, f32) {
    (0.9, 0.999)
}

impl OptimizerConfig {
    /// SGD at `lr` with heavy-ball `momentum` (no dampening, not Nesterov) and L2
    /// `weight_decay`: PyTorch's `SGD(lr, momentum, dampening=0, weight_decay)`, wt's one SGD
    /// recipe (what `fit`, the examples and the benchmarks build).
    pub fn sgd(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            lr,
            momentum,
            nesterov: false,
            weight_decay,
            betas: adam_betas(),
        }
    }

    /// The optimizer this config asks for (SGD, Adam or Batch-Manhattan SGD), with the rules'
    /// work around its step, as Burn's configs' `init`; the momentum is read from here once.
    pub fn init(&self) -> wt_nn::FeedbackOptimizer {
        let momentum = match self.kind {
            OptimizerKind::Sgd | OptimizerKind::BmSgd => self.momentum,
            OptimizerKind::Adam | OptimizerKind::AdamW => 0.0,
        };
        wt_nn::FeedbackOptimizer::wrap(crate::feedback_optimizer::optimizer(self), momentum)
    }
}

/// Learning-rate schedule over epochs (evaluated at every step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` at each milestone epoch (0-based count of finished epochs).
    Step {
        /// Epochs after which the rate drops.
        milestones: Vec<usize>,
        /// Factor of each drop.
        gamma: f64,
    },
    /// Cosine annealing from the base rate to 0 over the run.
    Cosine,
}

impl Named for Schedule {
    const WHAT: &'static str = "schedule";

    /// `step` with no milestones: the command line fills them in from the run's length.
    fn all() -> Vec<Self> {
        vec![
            Self::Constant,
            Self::Step {
                milestones: Vec::new(),
                gamma: 0.1,
            },
            Self::Cosine,
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Step { .. } => "step",
            Self::Cosine => "cosine",
        }
    }
}

named_str!(DatasetKind, OptimizerKind, Schedule);

/// Schedule plus linear warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Shape of the schedule.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Epochs of linear warm-up from ~0 to the scheduled rate (fractions allowed).
    #[serde(default)]
    pub warmup_epochs: f64,
}

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network and its rule.
    pub model: ModelConfig,
    /// The data.
    pub data: DataConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Epochs to train.
    pub epochs: usize,
    /// Images per training step.
    pub batch_size: usize,
    /// Images per evaluation batch.
    #[serde(default = "eval_batch")]
    pub eval_batch_size: usize,
    /// Seed of initialisation, shuffling, augmentation and the rules' random draws.
    pub seed: u64,
    /// Device: `flex`, `ndarray`, `wgpu`, `cuda[:N]` (what the build has).
    pub device: String,
    /// Data-parallel training on these devices (two or more): each step's batch is split
    /// between them, the first holds the model and the optimizer and receives the summed
    /// gradients. Empty: `device` alone. When given, the first must be `device`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Threads preparing batches ahead of the training step (0: prepared inline).
    #[serde(default = "workers")]
    pub workers: usize,
    /// Which kernels Flex's convolutions, batch norm and sign-symmetry matrices run: wt's
    /// (`wt`, the default) or Burn's own ops (`burn`); in force for the run only. Other
    /// backends ignore it.
    #[serde(default)]
    pub kernels: FlexKernels,
    /// Weight-mirror steps before the first epoch (WM only).
    #[serde(default)]
    pub mirror_warmup: usize,
    /// Label smoothing of the cross-entropy (off by default).
    #[serde(default)]
    pub label_smoothing: Option<f32>,
    /// Measure each layer's error and update angles against backprop after every epoch.
    #[serde(default = "yes")]
    pub error_alignment: bool,
    /// Probe batches the error and update angles are averaged over (the first
    /// `alignment_batches · min(batch_size, 128)` training images).
    #[serde(default = "alignment_batches")]
    pub alignment_batches: usize,
    /// Also write every logged scalar as TensorBoard event files into this folder
    /// (`crate::tensorboard`); the CSV and JSON lines stay the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<PathBuf>,
    /// Start a ResNet from a torchvision checkpoint (not read when resuming: the run's own
    /// checkpoint holds everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<Pretrained>,
}

/// A torchvision checkpoint to start from (`wt_models::torchvision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretrained {
    /// The state dict: PyTorch (`.pth`, `torch.save(model.state_dict(), f)`) or
    /// `.safetensors`, torchvision's key names.
    pub path: PathBuf,
    /// Load `fc` too (off: the classifier keeps its initialisation, for another number of
    /// classes).
    #[serde(default = "yes")]
    pub classifier: bool,
    /// What the rules' stored `B` become.
    #[serde(default)]
    pub feedback: wt_models::PretrainedFeedback,
}

fn alignment_batches() -> usize {
    4
}

fn eval_batch() -> usize {
    500
}

fn workers() -> usize {
    2
}

/// `pub fn $with(mut self, value) -> Self` setting `$field`, as Burn's configs have.
macro_rules! with_fields {
    ($($with:ident $field:ident: $ty:ty, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub fn $with(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

impl DataConfig {
    /// The data set `dataset` in `dir` (an empty path: looked up at the start of a run, see
    /// `data::locate_data`), every training image, none held out, augmented, the data set's
    /// own class order and image size.
    pub fn new(dataset: DatasetKind, dir: impl Into<PathBuf>) -> Self {
        Self {
            dataset,
            dir: dir.into(),
            validation: 0,
            train_subset: None,
            test_subset: None,
            augment: true,
            class_index: None,
            image_size: None,
            skip_undecodable: false,
            val_labels: None,
        }
    }

    with_fields! {
        with_validation validation: usize, "Training images held out for validation.";
        with_train_subset train_subset: Option<usize>, "Train on this many images only.";
        with_test_subset test_subset: Option<usize>, "Evaluate on this many test images only.";
        with_augment augment: bool, "Augment the training images (CIFAR crop and flip, ImageNet random resized crop).";
        with_class_index class_index: Option<PathBuf>, "An ImageFolder's class order from this index file.";
        with_image_size image_size: Option<usize>, "Side of ImageFolder images after resizing.";
        with_skip_undecodable skip_undecodable: bool, "Skip undecodable ImageFolder images instead of stopping.";
    }
}

impl TrainConfig {
    /// Training `model` on `data` with wt's defaults: SGD 0.01 with momentum 0.9 and weight
    /// decay 1e-4 ([`OptimizerConfig::sgd`]), a cosine schedule without warm-up, 10 epochs of
    /// batch 128 (500 to evaluate), seed 1, on `flex` with wt's kernels, 2 loader threads, 500 weight-mirror
    /// warm-up steps (WM only), no label smoothing, the error-alignment probe on 4 batches.
    /// The presets ([`Preset::config`](crate::cli::Preset::config)) are these with each
    /// example's recipe.
    pub fn new(model: ModelConfig, data: DataConfig) -> Self {
        Self {
            model,
            data,
            optimizer: OptimizerConfig::sgd(0.01, 0.9, 1e-4),
            schedule: ScheduleConfig {
                schedule: Schedule::Cosine,
                warmup_epochs: 0.0,
            },
            epochs: 10,
            batch_size: 128,
            eval_batch_size: eval_batch(),
            seed: 1,
            device: "flex".into(),
            devices: Vec::new(),
            workers: workers(),
            kernels: FlexKernels::Wt,
            mirror_warmup: 500,
            label_smoothing: None,
            error_alignment: true,
            alignment_batches: alignment_batches(),
            tensorboard: None,
            pretrained: None,
        }
    }

    with_fields! {
        with_optimizer optimizer: OptimizerConfig, "The optimizer.";
        with_schedule schedule: ScheduleConfig, "The learning-rate schedule.";
        with_epochs epochs: usize, "Epochs to train.";
        with_batch_size batch_size: usize, "Training batch (per rank under MPI).";
        with_eval_batch_size eval_batch_size: usize, "Evaluation batch.";
        with_seed seed: u64, "Seed of the initialisation, the data order, the augmentation and the rules' draws.";
        with_device device: String, "The device (`flex`, `ndarray`, `wgpu`, `cuda:0`, ...).";
        with_devices devices: Vec<String>, "Data-parallel devices, the first being `device`.";
        with_workers workers: usize, "Batch-preparing threads.";
        with_kernels kernels: FlexKernels, "Flex's kernels: wt's or Burn's ops.";
        with_mirror_warmup mirror_warmup: usize, "Weight-mirror steps before training (WM only).";
        with_label_smoothing label_smoothing: Option<f32>, "Label smoothing of the cross-entropy.";
        with_error_alignment error_alignment: bool, "Measure the error and update angles every epoch.";
        with_alignment_batches alignment_batches: usize, "Probe batches the angles average over.";
        with_tensorboard tensorboard: Option<PathBuf>, "Also write TensorBoard event files into this folder.";
    }
}

impl TrainConfig {
    /// Reads a config from a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let config: Self =
            parsed.map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a TrainConfig always serialises to TOML")
    }

    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1".into());
        }
        if let Some(side) = self.data.image_size {
            if self.data.dataset != DatasetKind::ImageFolder {
                return bad(format!(
                    "data.image_size = {side} applies to image_folder data only (the dataset is \
                     {:?}, whose images have a fixed side)",
                    self.data.dataset
                ));
            }
            if side < 16 {
                return bad(format!("data.image_size must be at least 16, got {side}"));
            }
        }
        let folder_only = [
            ("skip_undecodable", self.data.skip_undecodable),
            ("val_labels", self.data.val_labels.is_some()),
        ];
        if let Some((field, _)) = folder_only.iter().find(|(_, set)| *set)
            && self.data.dataset != DatasetKind::ImageFolder
        {
            return bad(format!(
                "data.{field} applies to image_folder data only (the dataset is {})",
                self.data.dataset
            ));
        }
        if self.error_alignment && self.alignment_batches == 0 {
            return bad(
                "alignment_batches must be at least 1 (or turn error_alignment off)".into(),
            );
        }
        let lr = self.optimizer.lr;
        if !(lr.is_finite() && lr > 0.0) {
            return bad(format!("optimizer.lr must be a positive number, got {lr}"));
        }
        if !(0.0..1.0).contains(&self.optimizer.momentum) {
            return bad(format!(
                "optimizer.momentum must be in [0, 1), got {}",
                self.optimizer.momentum
            ));
        }
        if let Schedule::Step { gamma, .. } = &self.schedule.schedule
            && !(gamma.is_finite() && *gamma > 0.0)
        {
            return bad(format!("schedule gamma must be positive, got {gamma}"));
        }
        if self.schedule.warmup_epochs < 0.0 {
            return bad("schedule.warmup_epochs must be ≥ 0".into());
        }
        let rules = std::iter::once(("model.rule".to_string(), &self.model.rule))
            .chain((self.model.rule_for.iter()).map(|(p, r)| (format!("model.rule_for.{p}"), r)));
        for (field, rule) in rules {
            if let wt_core::Rule::KolenPollack(kp) = rule {
                kp.validate()
                    .map_err(|e| TrainError::Config(format!("{field}: {e}")))?;
            }
            for (name, c) in rule.alignment_coefficients() {
                c.validate(name)
                    .map_err(|e| TrainError::Config(format!("{field}: {e}")))?;
            }
            if let Some(wm) = rule.weight_mirror() {
                wm.validate()
                    .map_err(|e| TrainError::Config(format!("{field}: {e}")))?;
                if wm.update == wt_core::MirrorUpdate::Gradient
                    && self.optimizer.kind == OptimizerKind::BmSgd
                {
                    return bad(format!(
                        "{field}: a weight mirror with update = \"gradient\" cannot train with \
                         bm_sgd, which would step by the sign of its pseudo-gradient; use \
                         update = \"direct\""
                    ));
                }
            }
        }
        if let Some(first) = self.devices.first() {
            if self.devices.len() < 2 {
                return bad(format!(
                    "devices lists {} device; data-parallel training needs two or more",
                    self.devices.len()
                ));
            }
            if *first != self.device {
                return bad(format!(
                    "devices starts with `{first}` but device is `{}`: the first of devices holds the model",
                    self.device
                ));
            }
            if self.batch_size < self.devices.len() {
                return bad(format!(
                    "batch size {} cannot be split between {} devices",
                    self.batch_size,
                    self.devices.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wt_models::Architecture;

    pub(crate) fn sample() -> TrainConfig {
        let mut model = ModelConfig::new(Architecture::Resnet20, 10, 3, 32, "wm".parse().unwrap());
        model.last_layer_backprop = true;
        let data = DataConfig::new(DatasetKind::Cifar10, "../shared/data/cifar-10")
            .with_validation(5000)
            .with_train_subset(Some(1000));
        let schedule = ScheduleConfig {
            schedule: Schedule::Step {
                milestones: vec![100, 150, 200],
                gamma: 0.1,
            },
            warmup_epochs: 0.5,
        };
        TrainConfig::new(model, data)
            .with_optimizer(OptimizerConfig::sgd(0.1, 0.9, 1e-4))
            .with_schedule(schedule)
            .with_epochs(250)
            .with_seed(7)
            .with_mirror_warmup(100)
    }

    /// The names the command line takes are the names serde writes.
    #[test]
    fn enum_names_are_their_serde_names() {
        use wt_core::named::assert_table;
        let json = |v: serde_json::Value| v.as_str().unwrap().to_string();
        assert_table::<DatasetKind>(|d| json(serde_json::to_value(d).unwrap()));
        assert_table::<OptimizerKind>(|o| json(serde_json::to_value(o).unwrap()));
        assert_table::<Schedule>(|s| json(serde_json::to_value(s).unwrap()["kind"].clone()));
    }

    #[test]
    fn config_round_trips_through_toml_and_json_files() {
        let dir = std::env::temp_dir().join(format!("wt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = sample();
        let toml_path = dir.join("run.toml");
        std::fs::write(&toml_path, config.to_toml()).unwrap();
        assert_eq!(TrainConfig::load(&toml_path).unwrap(), config);
        let json_path = dir.join("run.json");
        std::fs::write(&json_path, serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(TrainConfig::load(&json_path).unwrap(), config);
        let mut cosine = config.clone();
        cosine.schedule.schedule = Schedule::Cosine;
        cosine.optimizer.kind = OptimizerKind::Adam;
        std::fs::write(&toml_path, cosine.to_toml()).unwrap();
        assert_eq!(TrainConfig::load(&toml_path).unwrap(), cosine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        let dir = std::env::temp_dir().join(format!("wt-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.toml");
        let mut config = sample();
        config.optimizer.lr = -1.0;
        std::fs::write(&path, config.to_toml()).unwrap();
        let err = TrainConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("optimizer.lr"), "{err}");
        std::fs::write(&path, "epochs = \"many\"").unwrap();
        let err = TrainConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("run.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
