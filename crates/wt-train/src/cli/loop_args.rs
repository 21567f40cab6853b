//! The options of a hand-written SGD loop on MNIST ([`MnistLoopArgs`]), for the examples
//! that hold their own loop instead of running [`fit`](crate::fit).
// The flags' doc comments are clap's `--help` text, written for a terminal (`cuda[:N]`,
// `<data>/val`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::Args;
use wt_data::KnownDataset;

use super::positive;
use crate::config::OptimizerConfig;

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
            None => KnownDataset::Mnist.find().ok_or_else(|| {
                format!(
                    "no MNIST data: give --data DIR or set {} to a folder holding {}/",
                    wt_data::locate::DATA_VAR,
                    KnownDataset::Mnist.usual_names().join("/ or ")
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
        crate::feedback_optimizer::optimizer(&self.optimizer_config())
    }
}
