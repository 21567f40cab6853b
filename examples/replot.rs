//! Redraws the PNG plots of run folders from their `metrics.jsonl` (after a run made on a
//! machine without fonts, or to compare runs drawn by the current code), or draws plots that
//! compare several runs, one line per run (`--compare`).
//!
//! ```text
//! cargo run --release --example replot -- runs/mnist-mlp-kp-s1 [more run folders]
//! cargo run --release --example replot -- --compare docs/img/x --labels bp,kp runs/a runs/b
//! ```

use std::path::{Path, PathBuf};

use clap::Parser;
use wt::wt_train::{EpochMetrics, RunDir, plot};

/// Redraws the PNG plots of run folders from their metrics.jsonl, or compares runs.
#[derive(Parser)]
struct Cli {
    /// Run folders
    #[arg(required = true, value_name = "RUN_DIR")]
    dirs: Vec<PathBuf>,
    /// Instead of redrawing each run's plots, draw plots comparing the runs (test top-1 and
    /// top-5, median B–W and error angle over epochs) into this folder
    #[arg(long, value_name = "OUT_DIR")]
    compare: Option<PathBuf>,
    /// With --compare: one name per run folder, comma-separated (default: the folder's name,
    /// with its parent's for a `seed-N` folder)
    #[arg(long, value_delimiter = ',', requires = "compare")]
    labels: Vec<String>,
}

/// A run folder's epochs, read from its metrics.jsonl (the folder is only read: its
/// checkpoint may be gone).
fn history(dir: &Path) -> Result<(RunDir, Vec<EpochMetrics>), String> {
    let run = RunDir::existing(dir).map_err(|e| e.to_string())?;
    let history = run.history().map_err(|e| e.to_string())?;
    Ok((run, history))
}

/// `runs/table-kp/seed-1` → `table-kp/seed-1`; `runs/mnist-kp` → `mnist-kp`.
fn default_label(dir: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match (name(dir), dir.parent().and_then(name)) {
        (Some(n), Some(parent)) if n.starts_with("seed-") => format!("{parent}/{n}"),
        (Some(n), _) => n,
        _ => dir.display().to_string(),
    }
}

fn compare(cli: &Cli, out: &Path) -> Result<(), String> {
    if !cli.labels.is_empty() && cli.labels.len() != cli.dirs.len() {
        return Err(format!(
            "--labels names {} runs, but {} run folders were given",
            cli.labels.len(),
            cli.dirs.len()
        ));
    }
    let mut runs = Vec::new();
    for (i, dir) in cli.dirs.iter().enumerate() {
        let (_, history) = history(dir)?;
        let label = cli
            .labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| default_label(dir));
        runs.push((label, history));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    plot::draw_comparison(&runs, out)
}

fn main() {
    let cli = Cli::parse();
    if let Some(out) = &cli.compare {
        match compare(&cli, out) {
            Ok(()) => println!("{}", out.display()),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    for dir in &cli.dirs {
        let result = history(dir).and_then(|(run, history)| {
            let plots = run.plots();
            std::fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
            plot::draw_all(&history, &plots)?;
            Ok(run.plots())
        });
        match result {
            Ok(p) => println!("{}", p.display()),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    }
}
