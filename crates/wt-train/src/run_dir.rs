//! [`RunDir`]: the folder a run writes: `config.toml`, `metrics.csv`, `metrics.jsonl`,
//! `checkpoint.wtck`, `model.bpk` (final weights) and `plots/`.

use std::path::{Path, PathBuf};

use crate::error::TrainError;
use crate::metrics::EpochMetrics;

/// What to do with an existing run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Start a new run; refuse if the folder exists and is not empty.
    New,
    /// Continue the run from its checkpoint.
    Resume,
    /// Delete the folder's run files and start again.
    Overwrite,
}

impl RunMode {
    /// The mode the `--resume` and `--overwrite` flags ask for (`--resume` first).
    pub fn from_flags(resume: bool, overwrite: bool) -> Self {
        match (resume, overwrite) {
            (true, _) => Self::Resume,
            (_, true) => Self::Overwrite,
            _ => Self::New,
        }
    }
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

/// Files a run writes (removed by [`RunMode::Overwrite`]; nothing else is touched).
const RUN_FILES: [&str; 6] = [
    "config.toml",
    "metrics.csv",
    "metrics.jsonl",
    "checkpoint.wtck",
    "model.bpk",
    "plots",
];

impl RunDir {
    /// Opens `root` for a run in `mode`.
    pub fn open(root: impl Into<PathBuf>, mode: RunMode) -> Result<Self, TrainError> {
        let run = Self { root: root.into() };
        let io = |e| TrainError::io(&run.root, e);
        let exists = run.root.exists();
        let empty = !exists || std::fs::read_dir(&run.root).map_err(io)?.next().is_none();
        match mode {
            RunMode::New if !empty => return Err(TrainError::RunExists(run.root.clone())),
            RunMode::Resume if !run.checkpoint().exists() => {
                return Err(TrainError::Config(format!(
                    "--resume: no checkpoint at {} (nothing to resume; start a new run)",
                    run.checkpoint().display()
                )));
            }
            RunMode::Overwrite if exists => {
                for name in RUN_FILES {
                    let p = run.root.join(name);
                    if p.is_dir() {
                        std::fs::remove_dir_all(&p).map_err(|e| TrainError::io(&p, e))?;
                    } else if p.exists() {
                        std::fs::remove_file(&p).map_err(|e| TrainError::io(&p, e))?;
                    }
                }
            }
            _ => {}
        }
        std::fs::create_dir_all(run.root.join("plots")).map_err(io)?;
        Ok(run)
    }

    /// The run folder at `root` as a run's other MPI ranks see it: nothing is checked, created
    /// or removed (rank 0 prepares the folder; the others read its checkpoint on `--resume`).
    pub fn reading(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Opens a run folder to read what its run wrote, creating and removing nothing (unlike
    /// [`open`](Self::open), which prepares a folder for a run): the folder must hold a
    /// `metrics.jsonl`; its checkpoint may be gone.
    pub fn existing(root: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let run = Self { root: root.into() };
        if !run.metrics_jsonl().is_file() {
            return Err(TrainError::Metrics(format!(
                "{}: not a run folder (expected a metrics.jsonl in it)",
                run.root.display()
            )));
        }
        Ok(run)
    }

    /// The epochs recorded in `metrics.jsonl`, in order; an error names the line that is not
    /// an epoch's record.
    pub fn history(&self) -> Result<Vec<EpochMetrics>, TrainError> {
        let path = self.metrics_jsonl();
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        (text.lines().enumerate())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| {
                    TrainError::Metrics(format!(
                        "{} line {}: not an epoch's record ({e})",
                        path.display(),
                        i + 1
                    ))
                })
            })
            .collect()
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder's name (its last path component); it names the run's TensorBoard file.
    pub fn name(&self) -> String {
        (self.root.file_name())
            .map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned())
    }

    /// `config.toml`: the resolved config of the run.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `checkpoint.wtck`: progress, model and optimizer after the last finished epoch.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.wtck")
    }

    /// `metrics.csv`: one row per epoch.
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// `metrics.jsonl`: one JSON object per epoch.
    pub fn metrics_jsonl(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `model.bpk`: the final model record (Burn's burnpack), loadable with `load_file`.
    pub fn model(&self) -> PathBuf {
        self.root.join("model.bpk")
    }

    /// `plots/`: PNG plots of the run.
    pub fn plots(&self) -> PathBuf {
        self.root.join("plots")
    }

    /// Writes `bytes` to `path` atomically, the one way every file of a run is written: a
    /// temporary file beside it, `fsync`, rename over `path`, `fsync` of the folder. A reader
    /// (or a run killed meanwhile) sees the old file or the new one, never a part.
    pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
        use std::io::Write;
        let tmp = Self::temporary(path);
        let at_tmp = |e| TrainError::io(&tmp, e);
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(at_tmp)?;
        Self::publish(&tmp, path)
    }

    /// The temporary file beside `path` that [`write_atomic`](Self::write_atomic) writes, and
    /// that a writer making the file itself (the plots) writes before [`publish`](Self::publish):
    /// `name.tmp-PID.ext`.
    pub fn temporary(path: &Path) -> PathBuf {
        path.with_extension(format!("tmp-{}.{}", std::process::id(), extension(path)))
    }

    /// Makes a finished temporary file `path`'s content: `fsync`, rename over `path`, `fsync`
    /// of the folder.
    pub fn publish(tmp: &Path, path: &Path) -> Result<(), TrainError> {
        std::fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainError::io(tmp, e))?;
        std::fs::rename(tmp, path).map_err(|e| TrainError::io(path, e))?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// `path`'s extension, or `tmp`.
fn extension(path: &Path) -> String {
    path.extension()
        .map_or("tmp".into(), |e| e.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overwrite_unless_asked_and_resume_needs_a_checkpoint() {
        let dir = std::env::temp_dir().join(format!("wt-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let run = RunDir::open(&dir, RunMode::New).unwrap();
        std::fs::write(run.config(), "x").unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = RunDir::open(&dir, RunMode::New).unwrap_err();
        assert!(err.to_string().contains("--resume"), "{err}");
        let err = RunDir::open(&dir, RunMode::Resume).unwrap_err();
        assert!(err.to_string().contains("no checkpoint"), "{err}");
        let run = RunDir::open(&dir, RunMode::Overwrite).unwrap();
        assert!(!run.config().exists());
        // Files that are not the run's own are left alone.
        assert!(dir.join("notes.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_run_is_read_without_creating_anything_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("wt-rundir-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let err = RunDir::existing(&dir).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl"), "{err}");
        let epoch = |epoch, top1| EpochMetrics {
            epoch,
            lr: 0.1,
            train_loss: 1.25,
            train_accuracy: 0.5,
            validation: None,
            test: crate::metrics::Evaluation {
                loss: 1.5,
                top1,
                top5: 0.875,
            },
            train_seconds: 2.0,
            images_per_s: 64.0,
            layers: Vec::new(),
            blocks: Vec::new(),
        };
        let lines = [epoch(1, 0.25), epoch(2, 0.5)]
            .map(|m| serde_json::to_string(&m).unwrap())
            .join("\n");
        std::fs::write(dir.join("metrics.jsonl"), format!("{lines}\n")).unwrap();
        let run = RunDir::existing(&dir).unwrap();
        assert_eq!(run.history().unwrap(), vec![epoch(1, 0.25), epoch(2, 0.5)]);
        // Reading created nothing: no plots/ and no checkpoint were needed.
        assert!(!run.plots().exists() && !run.checkpoint().exists());
        std::fs::write(
            dir.join("metrics.jsonl"),
            format!("{lines}\n{{\"epoch\": 3}}\n"),
        )
        .unwrap();
        let err = run.history().unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl line 3"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
