//! [`TrainError`]: why a run stopped.

use std::path::{Path, PathBuf};

/// Why a run could not start or stopped.
#[derive(Debug)]
pub enum TrainError {
    /// A config value is missing or out of range; the message names the field.
    Config(String),
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The data could not be read.
    Data(String),
    /// A checkpoint is malformed (file, offset or part, and what was expected).
    Checkpoint(String),
    /// The run folder exists and neither resuming nor overwriting was asked for.
    RunExists(PathBuf),
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based step within the epoch.
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

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) => write!(f, "config: {m}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Data(m) => write!(f, "data: {m}"),
            Self::Checkpoint(m) => write!(f, "checkpoint: {m}"),
            Self::RunExists(dir) => write!(
                f,
                "run folder {} already exists: pass --resume to continue it or --overwrite to start it again",
                dir.display()
            ),
            Self::Diverged { epoch, step, loss } => write!(
                f,
                "training diverged: loss {loss} at epoch {epoch}, step {step}; the last good checkpoint is kept (lower the learning rate and --resume, or start again)"
            ),
        }
    }
}

impl std::error::Error for TrainError {}
