//! The examples' recipes: each example's [`Preset`] (data set, model, epochs, batch, rate,
//! schedule, split, initialisation) and the [`TrainConfig`] it starts a run from.

use std::path::PathBuf;

use wt_models::{Architecture, InitScheme, ModelConfig, Rule};

use crate::config::{
    DataConfig, DatasetKind, OptimizerConfig, Schedule, ScheduleConfig, TrainConfig,
};

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

    /// The schedule of a run of `epochs`: `step`, drops by 10× at 40/60/80 % of it; else
    /// cosine.
    pub(super) fn schedule(&self, epochs: usize, step: bool) -> ScheduleConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

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
