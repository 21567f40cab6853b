//! # wt-kernels: deterministic CPU kernels on slices
//!
//! wt's own kernels for what dominates a conv net's training step on the CPU, on `f32` slices
//! in row-major (NCHW) order, with no Burn types in their API:
//! - [`conv2d`]: the three convolutions of a training step (forward, input gradient, weight
//!   gradient), unfolded by [`im2col`] into `gemm` micro-kernel products on rayon's threads,
//!   for any stride, padding, dilation and groups ([`ConvGeometry`]), and [`direct`]'s
//!   register-blocked kernels without the unfolded copy for stride-1 convolutions, and
//!   [`winograd`]'s F(2×2, 3×3) for the deep layers' 3×3 convolutions,
//! - [`batch_norm`]: training-mode batch norm's forward and gradients,
//! - [`sign`]: the sign-symmetry rules' feedback matrices (`s·sign(W)`, `|R0|·sign(W)`,
//!   `|R|·sign(W)` with `|R|` from a counter-based generator).
//!
//! Every kernel gives the same bits on every run and for any number of threads. wt-core calls
//! them from its `Kernels` trait on Burn's Flex backend. Layout, tiling and determinism:
//! `docs/architecture.md`, "Kernels".

#![warn(missing_docs)]

pub mod batch_norm;
pub mod conv2d;
pub mod direct;
pub mod geometry;
pub mod im2col;
mod scratch;
pub mod sign;
pub mod winograd;

pub use geometry::ConvGeometry;

/// `n` uniform values in `[−1, 1)` from a seeded xorshift stream: the kernels' tests' random
/// inputs (never all zeros); wt-core's tests of the kernels on Flex draw the same stream
/// (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
pub fn test_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Checks the kernels' tests share.
#[cfg(test)]
mod test_util {
    /// The largest absolute difference over the largest magnitude of `want`.
    pub(crate) fn max_rel_error(got: &[f32], want: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        got.iter()
            .zip(want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale
    }

    /// `run` gives the same result twice on the global pool and on pools of 1, 2 and 3
    /// threads.
    pub(crate) fn assert_same_bits_on_pools<T: PartialEq + std::fmt::Debug + Send>(
        what: &str,
        run: impl Fn() -> T + Sync,
    ) {
        let reference = run();
        assert_eq!(run(), reference, "{what}: second run on the global pool");
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(&run), reference, "{what}: {threads} threads");
        }
    }
}
