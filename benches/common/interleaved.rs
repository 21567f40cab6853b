//! Interleaved timing shared by `examples/bench_rules.rs` and `examples/bench_models.rs` (both
//! include this file).

use std::time::{Duration, Instant};

/// Runs every case once per round, `warmup + reps` rounds, and returns each case's median
/// time (or the first error a case returns). Each round starts one case later than the last
/// (round `r` runs case `r mod n` first), so that no case always follows the same neighbour:
/// what a case leaves in the allocator and caches changes the next one's time.
pub fn interleaved<E>(
    cases: &mut [Box<dyn FnMut() -> Result<(), E> + '_>],
    warmup: usize,
    reps: usize,
) -> Result<Vec<Duration>, E> {
    let n = cases.len();
    let mut times = vec![Vec::new(); n];
    for round in 0..warmup + reps {
        for i in (0..n).map(|k| (round + k) % n) {
            let start = Instant::now();
            cases[i]()?;
            if round >= warmup {
                times[i].push(start.elapsed());
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect())
}
