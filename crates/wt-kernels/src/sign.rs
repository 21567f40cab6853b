//! The sign-symmetry rules' feedback matrices, each in one parallel pass over `W`:
//!
//! | rule | `B` | kernel |
//! |---|---|---|
//! | uSF | `s·sign(W)` | [`scaled_sign`] |
//! | frSF | `|R0|·sign(W)` | [`signed_magnitudes`] |
//! | brSF | `|R|·sign(W)`, `|R| ~ U(0, bound)` fresh | [`signed_uniform`] |
//!
//! `sign` is Burn's: `±1`, and `0` where `W` is `±0` or NaN, so the first two give Burn's
//! `sign(W)·s` and `|R0|·sign(W)` bit for bit (a product by `±1` is exact). brSF's magnitudes
//! come from a counter-based generator: element `i`'s magnitude is a hash of the seed and `i`,
//! so the result depends on the seed alone, never on the thread count or the chunking.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements per rayon task (128 KiB of `f32`): a 1024×1024 `W` is 32 tasks, enough for both
/// cores to share evenly, each long enough that scheduling it costs nothing visible. A power
/// of two, so that no task straddles a 2³² boundary of the element index.
const CHUNK: usize = 1 << 15;

/// `v` with the sign of `w`, and `0` where `w` is `±0` or NaN: `v·sign(w)` for a finite
/// `v ≥ 0`, as Burn's `sign` then a product would give it.
#[inline(always)]
fn with_sign_of(v: f32, w: f32) -> f32 {
    if w == 0.0 || w.is_nan() {
        0.0
    } else {
        f32::from_bits(v.to_bits() | (w.to_bits() & 0x8000_0000))
    }
}

/// A vector of `n` elements written chunk by chunk on rayon's threads by `fill(start, chunk)`,
/// which must write every element of `chunk` (elements `start..start + chunk.len()`); a vector
/// of one chunk or less is written on the calling thread.
fn filled_in_parallel(
    n: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if n <= CHUNK {
        fill(0, spare);
    } else {
        spare
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * CHUNK, chunk));
    }
    // SAFETY: `fill` wrote each of the `n` elements (every caller below writes its whole
    // chunk through `zip` over the chunk and inputs of the same length).
    unsafe { out.set_len(n) };
    out
}

/// Runs `$body` (a block using the listed arguments) compiled for AVX-512F, for AVX2 or for
/// the build's baseline, chosen at run time by the CPU's features: the loops are the same
/// scalar code, which the compiler vectorises at the width each target allows (the hash's
/// 32-bit products need AVX2's `vpmulld` to vectorise well).
macro_rules! multiversioned {
    (fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    // SAFETY: the CPU has the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

multiversioned! {
    fn scaled_sign_chunk(out: &mut [MaybeUninit<f32>], weight: &[f32], magnitude: f32) {
        for (o, &w) in out.iter_mut().zip(weight) {
            o.write(with_sign_of(magnitude, w));
        }
    }
}

multiversioned! {
    fn signed_magnitudes_chunk(out: &mut [MaybeUninit<f32>], weight: &[f32], magnitudes: &[f32]) {
        for ((o, &w), &m) in out.iter_mut().zip(weight).zip(magnitudes) {
            o.write(with_sign_of(m, w));
        }
    }
}

multiversioned! {
    fn signed_uniform_chunk(
        out: &mut [MaybeUninit<f32>],
        weight: &[f32],
        key: &ChunkKey,
        first: u32,
        unit: f32,
    ) {
        for ((o, &w), j) in out.iter_mut().zip(weight).zip(0u32..) {
            let bits = key.hash(first.wrapping_add(j));
            o.write(with_sign_of((bits >> 8) as f32 * unit, w));
        }
    }
}

/// uSF's `B = scale·sign(weight)`: `±scale`, `0` where the weight is `±0` or NaN. `scale` is
/// a standard deviation; a negative one is taken by its magnitude (unlike Burn's product).
pub fn scaled_sign(weight: &[f32], scale: f32) -> Vec<f32> {
    let magnitude = scale.abs();
    filled_in_parallel(weight.len(), |start, out| {
        let end = start + out.len();
        scaled_sign_chunk(out, &weight[start..end], magnitude);
    })
}

/// frSF's `B = magnitudes·sign(weight)` for `magnitudes ≥ 0` of the weight's length.
pub fn signed_magnitudes(weight: &[f32], magnitudes: &[f32]) -> Vec<f32> {
    assert_eq!(weight.len(), magnitudes.len(), "one magnitude per weight");
    filled_in_parallel(weight.len(), |start, out| {
        let end = start + out.len();
        signed_magnitudes_chunk(out, &weight[start..end], &magnitudes[start..end]);
    })
}

/// brSF's `B = |R|·sign(weight)` with `|R| ~ U(0, bound)`: element `i`'s magnitude is
/// `bound·u`, `u` the top 24 bits of [`counter_hash`]`(i, seed)` over `2²⁴` (so `u` takes the
/// 2²⁴ values `k/2²⁴` of `[0, 1)`, as a 24-bit uniform `f32` does).
pub fn signed_uniform(weight: &[f32], bound: f32, seed: u64) -> Vec<f32> {
    let unit = bound.abs() / (1u32 << 24) as f32;
    filled_in_parallel(weight.len(), |start, out| {
        let end = start + out.len();
        // The low 32 bits of the index; the key holds the rest.
        let first = start as u32;
        signed_uniform_chunk(
            out,
            &weight[start..end],
            &ChunkKey::new(seed, start),
            first,
            unit,
        );
    })
}

/// The two 32-bit keys of [`counter_hash`] for the chunk starting at element `start`: the
/// seed's halves, the upper one mixed with the index's bits above 2³² (constant over a chunk).
struct ChunkKey([u32; 2]);

impl ChunkKey {
    fn new(seed: u64, start: usize) -> Self {
        let high = ((start as u64) >> 32) as u32;
        ChunkKey([
            seed as u32,
            ((seed >> 32) as u32) ^ high.wrapping_mul(0x9E37_79B9),
        ])
    }

    #[inline(always)]
    fn hash(&self, low: u32) -> u32 {
        mix32(mix32(low ^ self.0[0]).wrapping_add(self.0[1]))
    }
}

/// [`signed_uniform`]'s hash of element `index` under `seed`, for tests and readers.
pub fn counter_hash(index: u64, seed: u64) -> u32 {
    ChunkKey::new(seed, index as usize).hash(index as u32)
}

/// A 32-bit integer hash with full avalanche (the `lowbias32` constants of C. Wellons'
/// hash-prospector), applied twice by [`ChunkKey::hash`] with a key between the rounds.
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values;

    /// Burn's `sign` followed by a product, element by element.
    fn burn_sign(w: f32) -> f32 {
        if w.is_nan() || w == 0.0 {
            0.0
        } else {
            1f32.copysign(w)
        }
    }

    /// Random weights with the special values in the middle of a chunk boundary's reach.
    fn weights(n: usize) -> Vec<f32> {
        let mut w = test_values(n, 3);
        for (i, v) in [0.0, -0.0, f32::NAN, f32::INFINITY, -1e-30]
            .into_iter()
            .enumerate()
        {
            w[CHUNK - 2 + i] = v;
        }
        w
    }

    #[test]
    fn scaled_sign_and_signed_magnitudes_equal_burns_sign_times_the_magnitude_bit_for_bit() {
        let n = 2 * CHUNK + 77;
        let w = weights(n);
        let s = 0.0371f32;
        let b = scaled_sign(&w, s);
        let m: Vec<f32> = test_values(n, 5).iter().map(|v| v.abs()).collect();
        let bm = signed_magnitudes(&w, &m);
        for i in 0..n {
            assert_eq!(b[i].to_bits(), (burn_sign(w[i]) * s).to_bits(), "uSF {i}");
            assert_eq!(
                bm[i].to_bits(),
                (m[i] * burn_sign(w[i])).to_bits(),
                "frSF {i}"
            );
        }
    }

    #[test]
    fn signed_uniform_has_ws_signs_and_uniform_magnitudes_below_the_bound() {
        let n = 1 << 20;
        let w = weights(n);
        let bound = 0.3f32;
        let b = signed_uniform(&w, bound, 42);
        let mut bins = [0usize; 16];
        for i in 0..n {
            let sign = burn_sign(w[i]);
            if sign == 0.0 {
                assert_eq!(b[i].to_bits(), 0, "zero where W has no sign ({i})");
                continue;
            }
            assert_eq!(b[i].signum(), sign, "sign of element {i}");
            let m = b[i].abs();
            assert!(m < bound, "|B| {m} ≥ bound at {i}");
            bins[(m / bound * 16.0) as usize] += 1;
        }
        // Each of 16 bins expects n/16 = 65,536 (sd ≈ 248): within 1 % is > 2.5 sd.
        for (k, &count) in bins.iter().enumerate() {
            let expected = n as f64 / 16.0;
            assert!(
                (count as f64 - expected).abs() < 0.01 * expected,
                "bin {k}: {count} values, expected about {expected}"
            );
        }
        // Neighbouring elements are not correlated (lag-1 correlation of the magnitudes).
        let m: Vec<f64> = b.iter().map(|v| v.abs() as f64 / bound as f64).collect();
        let mean = m.iter().sum::<f64>() / n as f64;
        let var = m.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let cov = m
            .windows(2)
            .map(|p| (p[0] - mean) * (p[1] - mean))
            .sum::<f64>()
            / (n - 1) as f64;
        assert!((cov / var).abs() < 0.005, "lag-1 correlation {}", cov / var);
    }

    #[test]
    fn signed_uniform_depends_on_the_seed_alone() {
        let n = 3 * CHUNK + 5;
        let w = weights(n);
        let run = |threads: usize, seed: u64| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| signed_uniform(&w, 0.5, seed))
        };
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let one = bits(run(1, 9));
        assert_eq!(one, bits(run(2, 9)), "1 against 2 threads");
        assert_eq!(one, bits(run(3, 9)), "1 against 3 threads");
        assert_eq!(one, bits(run(2, 9)), "two runs");
        let other = bits(run(2, 10));
        let same = one.iter().zip(&other).filter(|(a, b)| a == b).count();
        // Equal only where W has no sign (5 special values) or by a 2⁻²⁴ chance.
        assert!(same < 10, "seeds 9 and 10 agree on {same} of {n} elements");
        // Element i's magnitude is bound·(hash(i, seed) >> 8)/2²⁴ wherever it sits.
        for i in [0, 1, CHUNK - 3, CHUNK + 3, n - 1] {
            let u = (counter_hash(i as u64, 9) >> 8) as f32 / (1u32 << 24) as f32;
            assert_eq!(f32::from_bits(one[i]).abs(), 0.5 * u, "element {i}");
        }
    }

    #[test]
    fn indices_past_two_to_the_32_get_their_own_stream() {
        let low = counter_hash(12, 7);
        assert_ne!(low, counter_hash(12 + (1u64 << 32), 7));
        assert_ne!(counter_hash(12, 7), counter_hash(12, 7 | (1 << 40)));
    }
}
