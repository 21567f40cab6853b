//! What [`fit`](super::fit) prints while it runs: how much ([`Verbosity`]), its lines
//! (`Say`), and the progress within an epoch (`StepProgress`: an `indicatif` bar on a
//! terminal, else a line every 30 s).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much [`fit`](super::fit) prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Nothing.
    Quiet,
    /// Start, progress within epochs, one line per epoch.
    Normal,
}

/// Prints a line unless the run is quiet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Say(pub(super) Verbosity);

impl Say {
    pub(super) fn line(self, line: String) {
        if self.0 == Verbosity::Normal {
            println!("{line}");
        }
    }
}

/// Progress within an epoch: an `indicatif` bar on a terminal, else a line every 30 s (and
/// at the end), so a log file shows the run moving. The loop reads the device only when
/// [`due`](Self::due) says a step is shown.
pub(super) struct StepProgress {
    bar: Option<ProgressBar>,
    verbosity: Verbosity,
    head: String,
    steps: usize,
    start: Instant,
    last_line: Instant,
}

impl StepProgress {
    /// `lines_only`: lines even on a terminal (an MPI launcher hands its ranks a terminal
    /// whose output it forwards into logs).
    pub(super) fn new(
        verbosity: Verbosity,
        epoch: usize,
        epochs: usize,
        steps: usize,
        lines_only: bool,
    ) -> Self {
        let head = format!("epoch {}/{epochs}", epoch + 1);
        let terminal = std::io::stdout().is_terminal() && !lines_only;
        let bar = (verbosity == Verbosity::Normal && terminal).then(|| {
            let style =
                ProgressStyle::with_template("{prefix} {bar:24} {pos}/{len} {msg}, eta {eta}")
                    .expect("a valid template");
            let bar = ProgressBar::with_draw_target(
                Some(steps as u64),
                ProgressDrawTarget::stdout_with_hz(4),
            );
            bar.set_style(style);
            bar.set_prefix(head.clone());
            bar
        });
        Self {
            bar,
            verbosity,
            head,
            steps,
            start: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Whether step `done` (1-based) is shown, so the loop reads the loss and accuracy for
    /// it: the last step; on a terminal twice a second; else (log files, `--quiet`) every
    /// 30 s, which also bounds how late a diverged loss is noticed.
    pub(super) fn due(&self, done: usize) -> bool {
        let every = if self.bar.is_some() { 0.5 } else { 30.0 };
        done == self.steps || self.last_line.elapsed().as_secs_f64() > every
    }

    /// Moves the bar to step `done` without new numbers.
    pub(super) fn advance(&self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    /// Shows step `done` with the epoch's mean loss and accuracy so far.
    pub(super) fn update(&mut self, done: usize, loss: f64, accuracy: f64, lr: f64, seen: usize) {
        self.last_line = Instant::now();
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = seen as f64 / elapsed;
        let msg = format!(
            "loss {loss:.4}, accuracy {:.2}%, lr {lr:.4}, {rate:.0} img/s",
            100.0 * accuracy
        );
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg);
                bar.set_position(done as u64);
            }
            None => {
                let eta = elapsed / done as f64 * (self.steps - done) as f64;
                println!(
                    "{} step {done}/{}: {msg}, eta {eta:.0}s",
                    self.head, self.steps
                );
            }
        }
    }

    pub(super) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
