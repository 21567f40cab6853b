//! The learning rate at each step: a pure function of the position in the run, so a resumed
//! run continues the schedule exactly.

use crate::config::{Schedule, ScheduleConfig};

impl ScheduleConfig {
    /// Learning rate for step `step` (0-based) of epoch `epoch` (0-based) of a run of `epochs`
    /// epochs with `steps_per_epoch` steps each, from base rate `lr`.
    pub fn lr(
        &self,
        lr: f64,
        epoch: usize,
        step: usize,
        steps_per_epoch: usize,
        epochs: usize,
    ) -> f64 {
        let steps = steps_per_epoch.max(1) as f64;
        // Position in epochs, at the end of this step.
        let t = epoch as f64 + (step as f64 + 1.0) / steps;
        let scheduled = match &self.schedule {
            Schedule::Constant => lr,
            Schedule::Step { milestones, gamma } => {
                let drops = milestones.iter().filter(|&&m| epoch >= m).count();
                lr * gamma.powi(drops as i32)
            }
            Schedule::Cosine => {
                let progress =
                    ((epoch as f64 + step as f64 / steps) / epochs.max(1) as f64).min(1.0);
                0.5 * lr * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        if t < self.warmup_epochs {
            scheduled * t / self.warmup_epochs
        } else {
            scheduled
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(schedule: Schedule, warmup_epochs: f64) -> ScheduleConfig {
        ScheduleConfig {
            schedule,
            warmup_epochs,
        }
    }

    #[test]
    fn step_schedule_drops_at_milestones() {
        let s = cfg(
            Schedule::Step {
                milestones: vec![2, 4],
                gamma: 0.1,
            },
            0.0,
        );
        let at = |e| s.lr(0.1, e, 0, 10, 6);
        assert_eq!(at(0), 0.1);
        assert_eq!(at(1), 0.1);
        assert!((at(2) - 0.01).abs() < 1e-12);
        assert!((at(3) - 0.01).abs() < 1e-12);
        assert!((at(4) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_goes_from_base_to_zero_and_warmup_ramps_linearly() {
        let s = cfg(Schedule::Cosine, 0.0);
        assert_eq!(s.lr(0.2, 0, 0, 100, 10), 0.2);
        assert!((s.lr(0.2, 5, 0, 100, 10) - 0.1).abs() < 1e-12);
        assert!(s.lr(0.2, 9, 99, 100, 10) < 1e-4);
        let w = cfg(Schedule::Constant, 2.0);
        assert!((w.lr(1.0, 0, 49, 100, 10) - 0.25).abs() < 1e-12);
        assert!((w.lr(1.0, 1, 49, 100, 10) - 0.75).abs() < 1e-12);
        assert_eq!(w.lr(1.0, 2, 0, 100, 10), 1.0);
        // Monotone within warm-up.
        let lrs: Vec<f64> = (0..200)
            .map(|i| w.lr(1.0, i / 100, i % 100, 100, 10))
            .collect();
        assert!(lrs.windows(2).all(|p| p[0] < p[1]));
    }
}
