//! wt's own kernels for the three convolutions of a training step, for training-mode batch
//! norm and for the sign-symmetry rules' feedback matrices, behind [`Kernels`].
//!
//! The feedback ops call [`Kernels::conv2d_forward`], [`Kernels::conv2d_input_gradient`]
//! and [`Kernels::conv2d_weight_gradient`] on the inner backend; their default bodies are
//! Burn's own ops (`conv2d`, `conv2d_x_backward`, `conv2d_weight_backward`). Flex overrides them
//! with [`conv2d`]'s kernels (unfolding + `gemm` micro-kernels, [`direct`]'s register-blocked
//! stride-1 kernels or [`winograd`]'s F(2×2, 3×3), as `conv2d::KernelChoice` picks; on rayon's
//! threads, deterministic for any thread count) for every f32 convolution, whatever its stride, padding, dilation and
//! groups; other dtypes take Burn's op. [`FlexKernels::Burn`] (a run's setting, in force on a
//! thread for the duration of [`FlexKernels::run`]) sends all of Flex's kernels to Burn's ops
//! instead, for benchmarks that compare the two.
//!
//! The kernels themselves work on slices and live in the `wt-kernels` crate (re-exported here
//! with the `flex` feature: [`ConvGeometry`], [`conv2d`], [`direct`], [`winograd`], [`im2col`],
//! [`batch_norm`], [`sign`]); this module is their Burn side: the trait, Burn's ops as its defaults, and the
//! glue from Flex's tensors to slices ([`conv_geometry`] turns Burn's `ConvOptions` into a
//! [`ConvGeometry`]).
//!
//! Layout and tiling: `docs/architecture.md`, "Kernels".

mod choice;
#[cfg(feature = "flex")]
mod flex;

#[cfg(feature = "flex")]
pub use flex::conv_geometry;
#[cfg(feature = "flex")]
pub use wt_kernels::{ConvGeometry, batch_norm, conv2d, direct, geometry, im2col, sign, winograd};

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Scalar, TensorMetadata};
use burn::tensor::Distribution;
use burn::tensor::ops::ConvOptions;

pub use choice::FlexKernels;

// Burn's own ops, for what the kernels do not take.
#[cfg(feature = "flex")]
use burn::backend::ops::ModuleOps;

/// The convolutions a feedback conv2d runs, the batch norm of the zoo's models and the
/// sign-symmetry rules' `B`, on a backend's primitives. Every method defaults to Burn's op; a backend with faster kernels
/// overrides them.
pub trait Kernels: Backend {
    /// Training-mode batch norm over every axis but 1 of `x` `[batch, channels, ...]`:
    /// `(output, mean, biased variance)`, the statistics `[channels]`.
    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_batch_norm_forward::<Self>(x, gamma, beta, epsilon)
    }

    /// Gradients `(dx, dgamma, dbeta)` of [`batch_norm_forward`](Self::batch_norm_forward) for
    /// `output_grad`, given the statistics it returned.
    fn batch_norm_gradients(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_batch_norm_gradients::<Self>(x, gamma, mean, variance, epsilon, output_grad)
    }

    /// `conv2d(x, weight) + bias`. Shapes as Burn's `conv2d`.
    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, bias, options)
    }

    /// The error a conv2d sends to its input through `feedback` (`W`'s shape):
    /// `conv_transpose2d(output_grad, feedback)` cropped to `x`'s shape (only `x`'s shape is read).
    fn conv2d_input_gradient(
        x: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, feedback, output_grad, options)
    }

    /// `Σ_{batch, positions} x ⋆ output_grad`, shaped like `weight` (only its shape is read).
    fn conv2d_weight_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }

    /// uSF's `B = scale·sign(weight)` (Burn's `sign`: `0` where the weight is `±0` or NaN).
    fn scaled_sign(weight: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        burn_scaled_sign::<Self>(weight, scale)
    }

    /// frSF's `B = magnitudes·sign(weight)`, `magnitudes ≥ 0` shaped like the weight.
    fn signed_magnitudes(
        weight: FloatTensor<Self>,
        magnitudes: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burn_signed_magnitudes::<Self>(weight, magnitudes)
    }

    /// brSF's `B = |R|·sign(weight)`, `|R| ~ U(0, bound)` drawn afresh from the backend's
    /// seeded generator (so `seed` the device for a reproducible draw).
    fn signed_uniform(weight: FloatTensor<Self>, bound: f64) -> FloatTensor<Self> {
        burn_signed_uniform::<Self>(weight, bound)
    }
}

/// Burn's `scale·sign(weight)`: `sign`, then a product in place.
fn burn_scaled_sign<B: Backend>(weight: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
    let dtype = weight.dtype();
    B::float_mul_scalar(B::float_sign(weight), Scalar::new(scale, &dtype))
}

/// Burn's `magnitudes·sign(weight)`.
fn burn_signed_magnitudes<B: Backend>(
    weight: FloatTensor<B>,
    magnitudes: FloatTensor<B>,
) -> FloatTensor<B> {
    B::float_mul(magnitudes, B::float_sign(weight))
}

/// Burn's `U(0, bound)` draw times `sign(weight)`.
fn burn_signed_uniform<B: Backend>(weight: FloatTensor<B>, bound: f64) -> FloatTensor<B> {
    let (shape, device) = (weight.shape(), weight.device());
    let dtype = weight.dtype().into();
    let magnitudes = B::float_random(shape, Distribution::Uniform(0.0, bound), &device, dtype);
    B::float_mul(magnitudes, B::float_sign(weight))
}

/// Burn's training-mode batch norm, `(output, mean, variance)`.
fn burn_batch_norm_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    (r.output, r.mean, r.variance)
}

/// Burn's batch-norm gradients, `(dx, dgamma, dbeta)`.
fn burn_batch_norm_gradients<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    output_grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad);
    (r.x_grad, r.gamma_grad, r.beta_grad)
}

/// Whether Flex runs wt's kernels on this thread now.
#[cfg(feature = "flex")]
fn flex_kernels_enabled() -> bool {
    FlexKernels::current() == FlexKernels::Wt
}

#[cfg(feature = "flex")]
impl Kernels for burn::backend::Flex {
    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if flex_kernels_enabled()
            && let Some(out) = flex::batch_norm_forward(&x, &gamma, &beta, epsilon)
        {
            return out;
        }
        burn_batch_norm_forward::<Self>(x, gamma, beta, epsilon)
    }

    fn batch_norm_gradients(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if flex_kernels_enabled()
            && let Some(out) =
                flex::batch_norm_gradients(&x, &gamma, &mean, &variance, epsilon, &output_grad)
        {
            return out;
        }
        burn_batch_norm_gradients::<Self>(x, gamma, mean, variance, epsilon, output_grad)
    }

    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        if flex_kernels_enabled()
            && let Some(y) = flex::conv2d_forward(&x, &weight, bias.as_ref(), &options)
        {
            return y;
        }
        Self::conv2d(x, weight, bias, options)
    }

    fn conv2d_input_gradient(
        x: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        use burn::backend::TensorMetadata;
        let shape = x.shape();
        if flex_kernels_enabled()
            && shape.num_dims() == 4
            && let Some(dx) =
                flex::conv2d_input_gradient(shape.dims::<4>(), &feedback, &output_grad, &options)
        {
            return dx;
        }
        Self::conv2d_x_backward(x, feedback, output_grad, options)
    }

    fn conv2d_weight_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        use burn::backend::TensorMetadata;
        let w_shape = weight.shape();
        if flex_kernels_enabled()
            && w_shape.num_dims() == 4
            && let Some(dw) =
                flex::conv2d_weight_gradient(&x, w_shape.dims::<4>(), &output_grad, &options)
        {
            return dw;
        }
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }

    fn scaled_sign(weight: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        if flex_kernels_enabled()
            && let Some(b) = flex::scaled_sign(&weight, scale)
        {
            return b;
        }
        burn_scaled_sign::<Self>(weight, scale)
    }

    fn signed_magnitudes(
        weight: FloatTensor<Self>,
        magnitudes: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if flex_kernels_enabled()
            && let Some(b) = flex::signed_magnitudes(&weight, &magnitudes)
        {
            return b;
        }
        burn_signed_magnitudes::<Self>(weight, magnitudes)
    }

    fn signed_uniform(weight: FloatTensor<Self>, bound: f64) -> FloatTensor<Self> {
        if flex_kernels_enabled() && weight.dtype() == burn::tensor::DType::F32 {
            // The kernel's seed: 2 × 53 random bits from Flex's own seeded generator, so that
            // `seed`ing the device makes the draw reproducible, as Burn's random tensors are.
            use burn::backend::ops::FloatTensorOps;
            let device = weight.device();
            let draw = Self::float_random(
                [2].into(),
                Distribution::Uniform(0.0, 1.0),
                &device,
                burn::tensor::FloatDType::F64,
            );
            let seed = match draw.as_slice::<f64>() {
                Some(&[a, b]) => (a.to_bits() << 11) ^ b.to_bits().rotate_left(29),
                _ => unreachable!("Flex's two-element f64 draw is contiguous"),
            };
            if let Some(b) = flex::signed_uniform(&weight, bound, seed) {
                return b;
            }
        }
        burn_signed_uniform::<Self>(weight, bound)
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
impl Kernels for burn::backend::NdArray {}
// The extensions built on `Kernels` (`FeedbackBackend`, `NormBackend`) are implemented for
// these two as well; their ops route to the inner backend, so Burn's defaults here never run.
impl<B: Backend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> Kernels
    for burn::backend::Autodiff<B, C>
{
}
impl Kernels for burn::backend::Dispatch {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Kernels for burn::backend::Cube {}
