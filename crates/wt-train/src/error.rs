//! [`TrainError`]: why a run stopped.

use std::path::{Path, PathBuf};

use wt_data::DataError;

/// Why a run could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config value is missing or out of range; the message names the field.
    #[error("config: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The data could not be read: the data set's own error (file, offset, expectation).
    #[error("data: {0}")]
    Data(#[source] DataError),
    /// A batch could not be made: the data set's error (for wt's readers a [`DataError`]
    /// naming the file and offset, or an index out of range) as its source.
    #[error("data: {0}")]
    Batch(#[source] burn::data::dataset::DatasetError),
    /// A data-loading worker stopped (it panicked or was killed).
    #[error("data loader: {0}")]
    Loader(String),
    /// The ranks of an MPI run disagree (config, data, parameters), or MPI failed.
    #[error("MPI: {0}")]
    Distributed(String),
    /// A checkpoint is malformed (file, offset or part, and what was expected).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A run folder's `metrics.jsonl` is missing or malformed (file, line, what was expected).
    #[error("metrics: {0}")]
    Metrics(String),
    /// The run folder exists and neither resuming nor overwriting was asked for.
    #[error(
        "run folder {} already exists: pass --resume to continue it or --overwrite to start it again",
        .0.display()
    )]
    RunExists(PathBuf),
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "training diverged: loss {loss} at epoch {epoch}, step {step}; the last good checkpoint is kept (lower the learning rate and --resume, or start again)"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based step within the epoch at which the loss was read (the loop reads it at
        /// progress updates, so it may have turned non-finite a few steps before).
        step: usize,
        /// The loss value seen.
        loss: f64,
    },
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
