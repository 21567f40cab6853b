//! CIFAR augmentation as the papers use it — random crop of 32 from the image zero-padded by
//! 4 pixels, horizontal flip with probability ½, per-channel normalisation — deterministic per
//! `(seed, epoch, index)`: the same triple always gives the same tensor, another epoch gives
//! another crop, and worker threads or batch order change nothing.

/// Per-channel mean of the CIFAR-10 training set (RGB, in `[0, 1]`).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of the CIFAR-10 training set.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// SplitMix64: a small, well-mixed generator seeded from `(seed, epoch, index)`.
#[derive(Debug, Clone)]
pub struct ItemRng(u64);

impl ItemRng {
    /// The generator for one item of one epoch.
    pub fn new(seed: u64, epoch: u64, index: u64) -> Self {
        let mut r = Self(seed ^ 0x6A09_E667_F3BC_C908);
        let a = r.next_u64() ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut r = Self(a);
        let b = r.next_u64() ^ index.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        Self(b)
    }

    /// The generator whose state is `state`: its first number is SplitMix64's first output
    /// from that seed.
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// CIFAR train or eval transform of one `[3, side, side]` CHW byte image into normalised floats.
#[derive(Debug, Clone, PartialEq)]
pub struct CifarTransform {
    /// Side of the (square) image.
    pub side: usize,
    /// Zero padding before the random crop; 0 disables cropping.
    pub padding: usize,
    /// Whether to flip horizontally with probability ½.
    pub flip: bool,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
}

impl CifarTransform {
    /// Training transform: crop 32 with padding 4, flip, CIFAR-10 normalisation.
    pub fn train() -> Self {
        Self {
            side: 32,
            padding: 4,
            flip: true,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
        }
    }

    /// Evaluation transform: normalisation only.
    pub fn eval() -> Self {
        Self {
            padding: 0,
            flip: false,
            ..Self::train()
        }
    }

    /// Applies the transform to `image` (`[3 * side * side]`, CHW), writing `out` (same size).
    pub fn apply(&self, image: &[u8], rng: &mut ItemRng, out: &mut [f32]) {
        let s = self.side;
        assert_eq!(
            image.len(),
            3 * s * s,
            "CifarTransform: image is not 3x{s}x{s}"
        );
        assert_eq!(out.len(), image.len(), "CifarTransform: output size");
        let p = self.padding as i64;
        // Offset of the crop in the padded image, minus the padding: source = target + shift.
        let (dy, dx) = if p > 0 {
            (
                rng.below(2 * p as u64 + 1) as i64 - p,
                rng.below(2 * p as u64 + 1) as i64 - p,
            )
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.below(2) == 1;
        for c in 0..3 {
            let zero = (0.0 - self.mean[c]) / self.std[c];
            let scale = 1.0 / (255.0 * self.std[c]);
            let offset = self.mean[c] / self.std[c];
            let plane = &image[c * s * s..(c + 1) * s * s];
            let out_plane = &mut out[c * s * s..(c + 1) * s * s];
            for y in 0..s {
                let sy = y as i64 + dy;
                for x in 0..s {
                    let tx = if flip { s - 1 - x } else { x };
                    let sx = tx as i64 + dx;
                    out_plane[y * s + x] = if sy < 0 || sx < 0 || sy >= s as i64 || sx >= s as i64 {
                        zero
                    } else {
                        plane[sy as usize * s + sx as usize] as f32 * scale - offset
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        (0..3 * 32 * 32).map(|i| (i * 7 % 256) as u8).collect()
    }

    fn run(t: &CifarTransform, seed: u64, epoch: u64, index: u64) -> Vec<f32> {
        let mut out = vec![0.0; 3 * 32 * 32];
        t.apply(&image(), &mut ItemRng::new(seed, epoch, index), &mut out);
        out
    }

    #[test]
    fn same_seed_epoch_index_same_tensor_other_epochs_other_crops() {
        let t = CifarTransform::train();
        assert_eq!(run(&t, 1, 3, 42), run(&t, 1, 3, 42));
        let differing = (0..8)
            .filter(|&e| run(&t, 1, e, 42) != run(&t, 1, 0, 42))
            .count();
        assert!(
            differing >= 6,
            "only {differing} of 7 other epochs changed the crop"
        );
        assert_ne!(run(&t, 1, 3, 42), run(&t, 1, 3, 43));
        assert_ne!(run(&t, 1, 3, 42), run(&t, 2, 3, 42));
    }

    #[test]
    fn eval_transform_is_plain_normalisation() {
        let t = CifarTransform::eval();
        let out = run(&t, 0, 0, 0);
        let img = image();
        for (i, (&o, &p)) in out.iter().zip(&img).enumerate() {
            let c = i / 1024;
            let expected = (p as f32 / 255.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c];
            assert!((o - expected).abs() < 1e-5, "pixel {i}: {o} vs {expected}");
        }
    }

    #[test]
    fn crops_shift_content_and_pad_with_normalised_zero() {
        let t = CifarTransform {
            flip: false,
            ..CifarTransform::train()
        };
        // Find an item whose crop is shifted; its shifted-in border is normalised zero.
        for index in 0..50 {
            let mut rng = ItemRng::new(9, 0, index);
            let (dy, dx) = (rng.below(9) as i64 - 4, rng.below(9) as i64 - 4);
            if dy <= 0 || dx == 0 {
                continue;
            }
            let out = run(&t, 9, 0, index);
            let zero = -CIFAR10_MEAN[0] / CIFAR10_STD[0];
            // Bottom row reads beyond the image: padding.
            assert!((out[31 * 32 + 16] - zero).abs() < 1e-6);
            // An interior pixel equals the shifted source.
            let (y, x) = (10i64, 10i64);
            let src = image()[((y + dy) * 32 + x + dx) as usize] as f32;
            let expected = (src / 255.0 - CIFAR10_MEAN[0]) / CIFAR10_STD[0];
            assert!((out[(y * 32 + x) as usize] - expected).abs() < 1e-5);
            return;
        }
        panic!("no shifted crop among 50 items");
    }
}
