//! Training-mode batch norm on f32 NCHW buffers (any trailing dims flattened to `positions`):
//! the forward (batch statistics and the normalised, scaled output) and its backward, each one
//! fused kernel per channel on rayon's threads instead of the dozen element-wise passes,
//! reductions and layout copies Burn composes them from.
//!
//! Every channel is reduced by one thread in a fixed order (sixteen interleaved f32 partial
//! sums, combined in f64), so the bits do not depend on the thread count.

use rayon::prelude::*;

/// Sizes of a batch-norm input `[batch, channels, positions]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels (the normalised axis).
    pub channels: usize,
    /// Elements of one channel of one image (`h·w` for images).
    pub positions: usize,
}

impl NormGeometry {
    fn count(&self) -> usize {
        self.batch * self.positions
    }

    /// The `batch` runs of `positions` elements that make up channel `c`.
    fn runs<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (stride, p, off) = (
            self.channels * self.positions,
            self.positions,
            c * self.positions,
        );
        (0..self.batch).map(move |n| &data[n * stride + off..][..p])
    }
}

const LANES: usize = 16;

/// `Σ f(a_i, b_i)` over a run, in sixteen interleaved partial sums (vectorisable, fixed order).
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(xa[l], xb[l]);
        }
    }
    let mut total: f64 = acc.iter().map(|v| *v as f64).sum();
    for (x, y) in ra.iter().zip(rb) {
        total += f(*x, *y) as f64;
    }
    total
}

/// Per-channel statistics and the output of training-mode batch norm:
/// `y = (x − mean)/sqrt(var + eps)·gamma + beta`, `mean` and the biased `var` over batch and
/// positions. Returns `(y, mean, var)`.
pub fn batch_norm_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    g: NormGeometry,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = g.count().max(1) as f64;
    // Two passes per channel (mean, then the centred variance), as Burn computes them.
    let stats: Vec<(f32, f32)> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = g.runs(x, c).map(|r| lane_sum(r, r, |v, _| v)).sum();
            let mean = (sum / count) as f32;
            let sq: f64 = g
                .runs(x, c)
                .map(|r| lane_sum(r, r, |v, _| (v - mean) * (v - mean)))
                .sum();
            (mean, (sq / count) as f32)
        })
        .collect();
    let mut y = vec![0.0f32; x.len()];
    let plane = g.channels * g.positions;
    if plane > 0 {
        y.par_chunks_mut(g.positions.max(1))
            .enumerate()
            .for_each(|(run, out)| {
                let c = run % g.channels;
                let (mean, var) = stats[c];
                let scale = gamma[c] / ((var as f64 + epsilon).sqrt() as f32);
                let shift = beta[c] - mean * scale;
                let src = &x[run * g.positions..][..out.len()];
                for (o, v) in out.iter_mut().zip(src) {
                    *o = v * scale + shift;
                }
            });
    }
    let (mean, var) = stats.into_iter().unzip();
    (y, mean, var)
}

/// Gradients of [`batch_norm_forward`] for the output gradient `dy`, given the statistics it
/// returned: `dx = gamma/σ · (dy − mean(dy) − x̂·mean(dy·x̂))`, `dgamma = Σ dy·x̂`,
/// `dbeta = Σ dy`, with `σ = sqrt(var + eps)`, `x̂ = (x − mean)/σ`. Returns `(dx, dgamma, dbeta)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    dy: &[f32],
    g: NormGeometry,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = g.count().max(1) as f64;
    let inv_std: Vec<f32> = var
        .iter()
        .map(|v| (1.0 / (*v as f64 + epsilon).sqrt()) as f32)
        .collect();
    // Per channel: Σ dy and Σ dy·(x − mean), in a fixed order.
    let sums: Vec<(f64, f64)> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let (mut s_dy, mut s_dyx) = (0.0, 0.0);
            for (xr, dr) in g.runs(x, c).zip(g.runs(dy, c)) {
                s_dy += lane_sum(dr, dr, |d, _| d);
                s_dyx += lane_sum(dr, xr, |d, v| d * (v - m));
            }
            (s_dy, s_dyx)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums
        .iter()
        .zip(&inv_std)
        .map(|(s, is)| (s.1 * *is as f64) as f32)
        .collect();
    let mut dx = vec![0.0f32; x.len()];
    if g.channels * g.positions > 0 {
        dx.par_chunks_mut(g.positions.max(1))
            .enumerate()
            .for_each(|(run, out)| {
                let c = run % g.channels;
                let is = inv_std[c];
                let mean_dy = (sums[c].0 / count) as f32;
                // mean(dy·x̂) = Σ dy·(x − mean)·σ⁻¹ / count; x̂·that = (x − mean)·σ⁻²·Σ dy(x − mean)/count.
                let k = (sums[c].1 / count) as f32 * is * is;
                let scale = gamma[c] * is;
                let (m, xs, ds) = (
                    mean[c],
                    &x[run * g.positions..][..out.len()],
                    &dy[run * g.positions..][..out.len()],
                );
                for ((o, v), d) in out.iter_mut().zip(xs).zip(ds) {
                    *o = scale * (d - mean_dy - (v - m) * k);
                }
            });
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64, offset: f32) -> Vec<f32> {
        crate::test_values(n, seed)
            .into_iter()
            .map(|v| v + offset)
            .collect()
    }

    /// Forward and backward against the formulas in f64, on an input with a non-zero mean.
    #[test]
    fn batch_norm_matches_its_formulas() {
        let g = NormGeometry {
            batch: 5,
            channels: 3,
            positions: 37,
        };
        let n = g.batch * g.channels * g.positions;
        let x = values(n, 1, 0.7);
        let dy = values(n, 2, 0.1);
        let gamma = [1.5f32, -0.5, 0.25];
        let beta = [0.1f32, 0.2, -0.3];
        let eps = 1e-5;
        let (y, mean, var) = batch_norm_forward(&x, &gamma, &beta, eps, g);
        let (dx, dgamma, dbeta) = batch_norm_backward(&x, &gamma, &mean, &var, eps, &dy, g);
        let idx = |b: usize, c: usize, p: usize| (b * g.channels + c) * g.positions + p;
        let cnt = (g.batch * g.positions) as f64;
        for c in 0..g.channels {
            let all: Vec<usize> = (0..g.batch)
                .flat_map(|b| (0..g.positions).map(move |p| idx(b, c, p)))
                .collect();
            let m: f64 = all.iter().map(|&i| x[i] as f64).sum::<f64>() / cnt;
            let v: f64 = all.iter().map(|&i| (x[i] as f64 - m).powi(2)).sum::<f64>() / cnt;
            assert!((mean[c] as f64 - m).abs() < 1e-6, "mean");
            assert!((var[c] as f64 - v).abs() < 1e-6, "var");
            let s = (v + eps).sqrt();
            let xh = |i: usize| (x[i] as f64 - m) / s;
            let sdy: f64 = all.iter().map(|&i| dy[i] as f64).sum();
            let sdyx: f64 = all.iter().map(|&i| dy[i] as f64 * xh(i)).sum();
            assert!((dbeta[c] as f64 - sdy).abs() < 1e-4, "dbeta");
            assert!((dgamma[c] as f64 - sdyx).abs() < 1e-4, "dgamma");
            for &i in &all {
                let want_y = xh(i) * gamma[c] as f64 + beta[c] as f64;
                assert!((y[i] as f64 - want_y).abs() < 1e-5, "y");
                let want_dx = gamma[c] as f64 / s * (dy[i] as f64 - sdy / cnt - xh(i) * sdyx / cnt);
                assert!(
                    (dx[i] as f64 - want_dx).abs() < 1e-4,
                    "dx: {} vs {want_dx}",
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn batch_norm_is_bit_identical_across_thread_counts() {
        let g = NormGeometry {
            batch: 7,
            channels: 5,
            positions: 61,
        };
        let n = g.batch * g.channels * g.positions;
        let (x, dy) = (values(n, 3, 0.2), values(n, 4, 0.0));
        let (gamma, beta) = (vec![1.1f32; 5], vec![0.3f32; 5]);
        let run = || {
            let f = batch_norm_forward(&x, &gamma, &beta, 1e-5, g);
            let b = batch_norm_backward(&x, &gamma, &f.1, &f.2, 1e-5, &dy, g);
            (f, b)
        };
        let reference = run();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(run), reference, "{threads} threads");
        }
    }
}
