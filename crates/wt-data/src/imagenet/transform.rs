//! The standard ImageNet transforms, to normalised CHW floats.

use super::RgbImage;
use super::resize::resize_triangle;
use crate::augment::ItemRng;

/// ImageNet's per-channel mean (RGB, in `[0, 1]`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The standard ImageNet transforms, to normalised CHW floats.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageNetTransform {
    /// RandomResizedCrop(`size`, scale, ratio) then a horizontal flip with probability ½.
    Train {
        /// Output side.
        size: usize,
        /// Range of the crop's area as a fraction of the image's.
        scale: (f64, f64),
        /// Range of the crop's aspect ratio (width / height).
        ratio: (f64, f64),
    },
    /// Resize the shorter side to `resize`, then a centre crop of `size`.
    Eval {
        /// Shorter side after resizing.
        resize: usize,
        /// Output side.
        size: usize,
    },
}

impl ImageNetTransform {
    /// Training: RandomResizedCrop(224, scale 0.08–1, ratio 3/4–4/3), flip.
    pub fn train() -> Self {
        Self::train_at(224)
    }

    /// Evaluation: resize 256, centre crop 224.
    pub fn eval() -> Self {
        Self::eval_at(224)
    }

    /// Training at another side: RandomResizedCrop(`size`, scale 0.08–1, ratio 3/4–4/3), flip.
    pub fn train_at(size: usize) -> Self {
        Self::Train {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// Evaluation at another side, in ImageNet's proportion: resize the shorter side to
    /// `round(size·256/224)`, centre crop `size` (64 → resize 73, crop 64).
    pub fn eval_at(size: usize) -> Self {
        Self::Eval {
            resize: (size as f64 * 256.0 / 224.0).round() as usize,
            size,
        }
    }

    /// Output side.
    pub fn size(&self) -> usize {
        match self {
            Self::Train { size, .. } | Self::Eval { size, .. } => *size,
        }
    }

    /// Applies the transform; returns `[3 * size * size]` normalised with ImageNet's mean/std.
    ///
    /// The resizing is `image::imageops::resize` with the Triangle (bilinear, antialiased when
    /// shrinking) filter, computed by [`resize_triangle`] for RGB bytes only where the output
    /// needs it: the same bytes, several times faster.
    pub fn apply(&self, img: &RgbImage, rng: &mut ItemRng) -> Vec<f32> {
        let (w, h) = (img.width, img.height);
        assert_eq!(
            img.pixels.len(),
            w * h * 3,
            "RgbImage holds width*height*3 bytes"
        );
        match *self {
            Self::Train { size, scale, ratio } => {
                let (x, y, cw, ch) = random_resized_crop(w as u32, h as u32, scale, ratio, rng);
                let src = (x as usize, y as usize, cw as usize, ch as usize);
                let out = resize_triangle(img, src, (size, size), (0, 0, size, size));
                normalised_chw(&out, rng.below(2) == 1)
            }
            Self::Eval { resize, size } => {
                let (rw, rh) = if w <= h {
                    (
                        resize,
                        (h as f64 * resize as f64 / w as f64).round() as usize,
                    )
                } else {
                    (
                        (w as f64 * resize as f64 / h as f64).round() as usize,
                        resize,
                    )
                };
                // Resize, then the centre crop: only the crop's pixels are computed.
                let s = size.min(rw).min(rh);
                let window = ((rw - s) / 2, (rh - s) / 2, s, s);
                let mut out = resize_triangle(img, (0, 0, w, h), (rw, rh), window);
                if s != size {
                    // `resize` below `size`: the crop is scaled up to `size`.
                    out = resize_triangle(&out, (0, 0, s, s), (size, size), (0, 0, size, size));
                }
                normalised_chw(&out, false)
            }
        }
    }
}

/// HWC bytes to CHW floats normalised with ImageNet's mean and std, mirrored when `flip`.
fn normalised_chw(img: &RgbImage, flip: bool) -> Vec<f32> {
    // Each channel's 256 possible values, each computed by the same expression as per pixel.
    let lut: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    });
    let (w, h) = (img.width, img.height);
    let plane = w * h;
    let mut chw = vec![0f32; 3 * plane];
    let (r, rest) = chw.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (y, row) in img.pixels.chunks_exact(3 * w.max(1)).enumerate().take(h) {
        let at = y * w;
        for (x, p) in row.chunks_exact(3).enumerate() {
            let o = at + if flip { w - 1 - x } else { x };
            r[o] = lut[0][p[0] as usize];
            g[o] = lut[1][p[1] as usize];
            b[o] = lut[2][p[2] as usize];
        }
    }
    chw
}

/// torchvision's RandomResizedCrop parameters: up to 10 tries of a random area and log-uniform
/// aspect ratio, else the largest centred crop within the ratio range. Returns `(x, y, w, h)`.
pub(super) fn random_resized_crop(
    w: u32,
    h: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut ItemRng,
) -> (u32, u32, u32, u32) {
    let uniform = |rng: &mut ItemRng, lo: f64, hi: f64| {
        lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    };
    let area = (w * h) as f64;
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, ratio.0.ln(), ratio.1.ln()).exp();
        let cw = (target * aspect).sqrt().round() as u32;
        let ch = (target / aspect).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.below((w - cw + 1) as u64) as u32;
            let y = rng.below((h - ch + 1) as u64) as u32;
            return (x, y, cw, ch);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, ((w as f64 / ratio.0).round() as u32).min(h))
    } else if in_ratio > ratio.1 {
        (((h as f64 * ratio.1).round() as u32).min(w), h)
    } else {
        (w, h)
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}
