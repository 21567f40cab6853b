//! Weight-mirror correlations: drive a layer with zero-mean noise and correlate input with
//! response. `E[ξᵀ(ξ·W)/n] = σ²·W`, so these estimate `W` up to `σ²` without reading it into
//! the feedback path. All work happens outside autodiff.

use crate::ops::conv2d_correlation;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor};

/// `ξᵀ(ξ·W)/n` for a dense layer.
///
/// # Shapes
/// - `weight`: `[d_input, d_output]`; result: `[d_input, d_output]`; `ξ`: `[batch, d_input]`.
pub fn linear_correlation(weight: Tensor<2>, sigma: f64, batch: usize) -> Tensor<2> {
    let weight = weight.inner();
    let [d_input, _] = weight.dims();
    let noise = Tensor::<2>::random(
        [batch, d_input],
        Distribution::Normal(0.0, sigma),
        &weight.device(),
    );
    // Dividing the response `[batch, d_output]` rather than the result `[d_input, d_output]`
    // by `n` is the same math on fewer values.
    let response = noise.clone().matmul(weight).div_scalar(batch as f64);
    noise.transpose().matmul(response)
}

/// `Σ_{batch, positions} ξ ⋆ conv2d(ξ, W)` divided by `batch·positions`, for a conv layer.
///
/// The noise is convolved without padding (stride, dilation and groups as the layer's), so
/// every tap of `W` sees the same number of noise samples and the estimate is `σ²·W` for all
/// of them; `output_side` is the side of the response map (`output_side²` positions a sample).
///
/// # Shapes
/// - `weight`: `[c_out, c_in/groups, kh, kw]`; result: the same.
/// - `ξ`: `[batch, c_in, h, w]` with `h = dilation·(kh − 1) + 1 + stride·(output_side − 1)`.
pub fn conv2d_mirror_correlation(
    weight: Tensor<4>,
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    sigma: f64,
    batch: usize,
    output_side: usize,
) -> Tensor<4> {
    let weight = weight.inner();
    let [_, c_in_group, kh, kw] = weight.dims();
    let c_in = c_in_group * groups;
    let side = |k: usize, i: usize| dilation[i] * (k - 1) + 1 + stride[i] * (output_side - 1);
    let noise = Tensor::<4>::random(
        [batch, c_in, side(kh, 0), side(kw, 1)],
        Distribution::Normal(0.0, sigma),
        &weight.device(),
    );
    let options = ConvOptions::new(stride, [0, 0], dilation, groups);
    let response =
        burn::tensor::module::conv2d(noise.clone(), weight.clone(), None, options.clone());
    let positions = batch * output_side * output_side;
    conv2d_correlation(noise, weight, response, options).div_scalar(positions as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_devices;
    use burn::tensor::Tolerance;

    /// The dense correlation is `ξᵀ(ξ·W)/n` for the noise the device's RNG draws.
    #[test]
    fn linear_correlation_is_the_explicit_product() {
        let _serial = crate::device::device_test_lock();
        for (name, device) in test_devices() {
            let w = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
            device.seed(21);
            let got = linear_correlation(w.clone(), 0.7, 50);
            device.seed(21);
            let xi = Tensor::<2>::random([50, 6], Distribution::Normal(0.0, 0.7), &device);
            let want = xi.clone().transpose().matmul(xi.matmul(w)).div_scalar(50.0);
            got.into_data()
                .assert_approx_eq::<f32>(&want.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
            eprintln!("{name}: ok");
        }
    }
}
