//! Redraws the PNG plots of run folders from their `metrics.jsonl` (after a run made on a
//! machine without fonts, or to compare runs drawn by the current code).
//!
//! ```text
//! cargo run --release --example replot -- runs/mnist-mlp-kp-s1 [more run folders]
//! ```

use std::path::PathBuf;

use clap::Parser;
use wt::wt_train::{EpochMetrics, RunDir, RunMode, plot};

/// Redraws the PNG plots of run folders from their metrics.jsonl.
#[derive(Parser)]
struct Cli {
    /// Run folders
    #[arg(required = true, value_name = "RUN_DIR")]
    dirs: Vec<PathBuf>,
}

fn main() {
    for dir in Cli::parse().dirs {
        let result = RunDir::open(&dir, RunMode::Resume)
            .map_err(|e| e.to_string())
            .and_then(|run| {
                let text = std::fs::read_to_string(run.metrics_jsonl())
                    .map_err(|e| format!("{}: {e}", run.metrics_jsonl().display()))?;
                let history = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| {
                        serde_json::from_str::<EpochMetrics>(l).map_err(|e| {
                            format!("{} line {}: {e}", run.metrics_jsonl().display(), i + 1)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                plot::draw_all(&history, &run.plots())?;
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
