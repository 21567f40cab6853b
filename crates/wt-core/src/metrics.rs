//! Alignment metrics between feedback and forward weights, or between two error signals.
//!
//! `angle(a, b) = acos(⟨a, b⟩ / (‖a‖·‖b‖))` over the flattened tensors, in degrees, and
//! `‖a‖/‖b‖`. Computed in `f64` on the host after one reduction each on the device, so calling
//! them once an epoch costs a few elementwise passes over the weights.

use burn::tensor::Tensor;

/// Dot product and squared norms of two tensors of the same shape, read back as `f64`.
fn moments<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> (f64, f64, f64) {
    assert_eq!(
        a.dims(),
        b.dims(),
        "alignment metrics need tensors of one shape"
    );
    let a = a.inner();
    let b = b.inner();
    let dot = (a.clone() * b.clone()).sum();
    let aa = a.clone().powi_scalar(2).sum();
    let bb = b.powi_scalar(2).sum();
    let all = Tensor::cat(vec![dot, aa, bb], 0).into_data();
    let v: Vec<f64> = all
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("metrics: reading back three scalars");
    (v[0], v[1], v[2])
}

/// Angle in degrees between two tensors viewed as vectors; 90° if either is zero.
pub fn angle_degrees<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let (dot, aa, bb) = moments(a, b);
    angle_from_moments(dot, aa, bb)
}

/// `acos(⟨a, b⟩ / (‖a‖·‖b‖))` in degrees from the three moments; 90° if a norm is zero.
fn angle_from_moments(dot: f64, aa: f64, bb: f64) -> f64 {
    let denom = (aa * bb).sqrt();
    if denom == 0.0 || !denom.is_finite() {
        return 90.0;
    }
    (dot / denom).clamp(-1.0, 1.0).acos().to_degrees()
}

/// Angle and norm ratio of `B` against `W` for one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightAlignment {
    /// Angle between B and W, degrees.
    pub angle_deg: f64,
    /// ‖B‖ / ‖W‖.
    pub norm_ratio: f64,
}

impl WeightAlignment {
    /// Measures `feedback` against `weight`.
    pub fn measure<const D: usize>(feedback: Tensor<D>, weight: Tensor<D>) -> Self {
        let (dot, bb, ww) = moments(feedback, weight);
        Self {
            angle_deg: angle_from_moments(dot, bb, ww),
            norm_ratio: (bb / ww).sqrt(),
        }
    }
}
