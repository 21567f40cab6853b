//! # wt-train: the training loop of wt's examples
//!
//! [`fit`] trains any [`ImageClassifier`](wt_models::ImageClassifier) with any rule on any
//! device, from a serialisable [`TrainConfig`], and writes a run folder ([`RunDir`]): the
//! resolved `config.toml`, `metrics.csv` and `metrics.jsonl`, PNG plots, and an atomic
//! checkpoint after every epoch from which `--resume` continues bit for bit. A NaN or infinite
//! loss stops the run with [`TrainError::Diverged`], keeping the last good checkpoint.

#![warn(missing_docs)]

pub mod allocator;
pub mod bm_sgd;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod distributed;
pub mod error;
pub mod feedback_optimizer;
pub mod loader;
pub mod metrics;
pub mod parameters;
pub mod plot;
pub mod run_dir;
mod schedule;
pub mod tensorboard;
pub mod trainer;

pub use bm_sgd::{BatchManhattanSgd, BatchManhattanSgdConfig};
pub use config::{
    DataConfig, DatasetKind, OptimizerConfig, OptimizerKind, Schedule, ScheduleConfig, TrainConfig,
};
pub use data::{BatchSource, DataSplit, RunData};
pub use distributed::{Launch, ReduceStats, World};
pub use error::TrainError;
pub use feedback_optimizer::FeedbackOptimizer;
pub use metrics::{BlockMetrics, EpochMetrics, Evaluation, LayerMetrics};
pub use parameters::{ParameterCount, parameter_count};
pub use run_dir::{RunDir, RunMode};
pub use trainer::{FitOptions, Trained, Verbosity, evaluate, final_json, fit};

#[cfg(test)]
mod tests;
