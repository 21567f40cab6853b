//! Checkpoint files: one file holding the run's progress, the model record and the optimizer
//! state, written to a temporary file, synced and renamed over the previous checkpoint, so a
//! run killed at any moment leaves the previous checkpoint whole.
//!
//! Layout (little-endian): magic `WTCKPT01`; three sections, each a `u64` length and its
//! bytes: progress (JSON), model (Burn's burnpack record), optimizer (burnpack); then the
//! FNV-1a 64 hash of everything before it.

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::feedback_optimizer::FeedbackOptimizer;
use crate::metrics::EpochMetrics;
use crate::run_dir::RunDir;

const MAGIC: &[u8; 8] = b"WTCKPT01";

/// Where the run is: what a checkpoint records besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Metrics of every finished epoch.
    pub history: Vec<EpochMetrics>,
}

/// A checkpoint read back from disk.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Progress of the run.
    pub progress: Progress,
    /// Model record (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimizer state (burnpack bytes).
    pub optimizer: Vec<u8>,
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Writes a checkpoint to `path` atomically: a temporary file beside it, `fsync`, rename,
/// `fsync` of the folder.
pub fn write(
    path: &Path,
    progress: &Progress,
    model: &[u8],
    optimizer: &[u8],
) -> Result<(), TrainError> {
    let meta = serde_json::to_vec(progress).expect("progress serialises");
    let mut buf = Vec::with_capacity(8 + 24 + meta.len() + model.len() + optimizer.len() + 8);
    buf.extend_from_slice(MAGIC);
    for part in [&meta[..], model, optimizer] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part);
    }
    let hash = fnv1a(&buf);
    buf.extend_from_slice(&hash.to_le_bytes());

    RunDir::write_atomic(path, &buf)
}

/// Reads and verifies a checkpoint; errors name the file, the part and the offset.
pub fn read(path: &Path) -> Result<Checkpoint, TrainError> {
    let buf = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |m: String| TrainError::Checkpoint(format!("{}: {m}", path.display()));
    if buf.len() < 8 + 24 + 8 || &buf[..8] != MAGIC {
        return Err(bad(format!(
            "not a wt checkpoint (expected magic WTCKPT01 and at least 40 bytes, file has {})",
            buf.len()
        )));
    }
    let body = buf.len() - 8;
    let stored = u64::from_le_bytes(buf[body..].try_into().expect("8 bytes"));
    let mut parts = Vec::new();
    let mut at = 8;
    for name in ["progress", "model", "optimizer"] {
        if at + 8 > body {
            return Err(bad(format!(
                "truncated before the {name} length at offset {at}"
            )));
        }
        let len = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes")) as usize;
        at += 8;
        if len > body - at {
            return Err(bad(format!(
                "{name} section at offset {at} claims {len} bytes, only {} remain",
                body - at
            )));
        }
        parts.push(buf[at..at + len].to_vec());
        at += len;
    }
    if at != body {
        return Err(bad(format!(
            "{} unexpected bytes after the optimizer section",
            body - at
        )));
    }
    let actual = fnv1a(&buf[..body]);
    if actual != stored {
        return Err(bad(format!(
            "checksum mismatch (stored {stored:016x}, computed {actual:016x}): the file is corrupted"
        )));
    }
    let optimizer = parts.pop().expect("three parts");
    let model = parts.pop().expect("three parts");
    let progress: Progress = serde_json::from_slice(&parts[0])
        .map_err(|e| bad(format!("progress section is not valid JSON: {e}")))?;
    Ok(Checkpoint {
        progress,
        model,
        optimizer,
    })
}

/// The model's record as burnpack bytes (what `save_file` writes and `load_file` reads).
pub fn record_bytes<M: Module>(model: &M) -> Result<Bytes, TrainError> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| TrainError::Checkpoint(format!("serialising the model: {e}")))
}

/// Writes `progress`, `model`'s record and `optim`'s state to `path` ([`write()`]: atomically);
/// returns the model's record bytes.
pub fn save<M: Module>(
    path: &Path,
    progress: &Progress,
    model: &M,
    optim: &FeedbackOptimizer,
) -> Result<Bytes, TrainError> {
    let model_bytes = record_bytes(model)?;
    let optim_bytes = optim.to_bytes().map_err(TrainError::Checkpoint)?;
    write(path, progress, &model_bytes, &optim_bytes)?;
    Ok(model_bytes)
}

/// Reads the checkpoint at `path` ([`read()`]) into `model` and `optim`; an error names the file
/// and the part that does not fit them.
pub fn restore<M: Module>(
    path: &Path,
    model: M,
    optim: FeedbackOptimizer,
) -> Result<(M, FeedbackOptimizer, Progress), TrainError> {
    let ckpt = read(path)?;
    let bad = |part: &str, e: String| {
        TrainError::Checkpoint(format!(
            "{}: {part} does not fit this model: {e}",
            path.display()
        ))
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(ckpt.model))
        .map_err(|e| bad("model record", e.to_string()))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| bad("model record", e.to_string()))?;
    let optim = optim
        .with_bytes(Bytes::from_bytes_vec(ckpt.optimizer))
        .map_err(|e| bad("optimizer state", e))?;
    Ok((model, optim, ckpt.progress))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("wt-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn progress(epochs_done: usize) -> Progress {
        Progress {
            epochs_done,
            global_step: 10 * epochs_done as u64,
            history: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_every_corruption_is_named() {
        let dir = tmpdir("rt");
        let path = dir.join("checkpoint.wtck");
        write(&path, &progress(3), &[1, 2, 3, 4], &[9; 100]).unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.progress, progress(3));
        assert_eq!(c.model, vec![1, 2, 3, 4]);
        assert_eq!(c.optimizer, vec![9; 100]);
        let good = std::fs::read(&path).unwrap();

        let check = |bytes: &[u8], expect: &str| {
            std::fs::write(&path, bytes).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(
                err.contains(expect) && err.contains("checkpoint.wtck"),
                "{err}"
            );
        };
        check(&good[..good.len() - 1], "");
        check(&good[..20], "not a wt checkpoint");
        check(&good[..60], "claims");
        let mut flipped = good.clone();
        flipped[50] ^= 1;
        check(&flipped, "checksum mismatch");
        check(b"hello world, this is not a checkpoint file", "magic");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Run by `killed_writer_leaves_the_previous_checkpoint` in a child process: writes
    /// checkpoints of 32 MiB in a loop until killed.
    #[test]
    #[ignore = "helper process of killed_writer_leaves_the_previous_checkpoint"]
    fn checkpoint_writer_child() {
        let Ok(dir) = std::env::var("WT_CHECKPOINT_CHILD_DIR") else {
            return;
        };
        let path = Path::new(&dir).join("checkpoint.wtck");
        for k in 1..10_000usize {
            write(
                &path,
                &progress(k),
                &vec![k as u8; 32 << 20],
                &[k as u8; 16],
            )
            .unwrap();
        }
    }

    #[test]
    fn killed_writer_leaves_the_previous_checkpoint() {
        let dir = tmpdir("kill");
        let path = dir.join("checkpoint.wtck");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "checkpoint::tests::checkpoint_writer_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env("WT_CHECKPOINT_CHILD_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until one checkpoint is complete and the next one is being written.
        let start = std::time::Instant::now();
        let mid_write = loop {
            let tmp_exists = std::fs::read_dir(&dir)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"));
            if path.exists() && tmp_exists {
                break true;
            }
            if start.elapsed().as_secs() > 60 {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(mid_write, "the child never started a second checkpoint");
        let c = read(&path).expect("the previous checkpoint is whole");
        let k = c.progress.epochs_done;
        assert!(k >= 1);
        assert!(c.model.len() == 32 << 20 && c.model.iter().all(|&b| b == k as u8));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
