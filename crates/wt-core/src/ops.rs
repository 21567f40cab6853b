//! The feedback operations: a Burn backend extension whose forward pass is the ordinary
//! linear / conv2d and whose backward pass sends the error to the input through separate
//! feedback weights `B` instead of the forward weights `W`.
//!
//! | op | forward | input gradient | weight, bias gradients |
//! |---|---|---|---|
//! | [`feedback_linear`] | `y = x·W + b` | `dx = g·Bᵀ` | `dW = xᵀ·g`, `db = Σ g` |
//! | [`feedback_conv2d`] | `y = conv2d(x, W) + b` | `dx = conv_transpose2d(g, B)` | `dW = Σ x ⋆ g`, `db = Σ g` |
//!
//! The convolutions run through [`Kernels`]: wt's own kernels on Flex, Burn's ops elsewhere.
//!
//! `B` has exactly `W`'s layout (`[d_input, d_output]` for linear, `[c_out, c_in/groups, kh, kw]`
//! for conv), so no transposes are needed anywhere. When `B` is tracked by autodiff (requires
//! grad), it receives the same gradient as `W` (this is how Kolen-Pollack learns `B`); otherwise
//! it is a constant of the step. No matmul or convolution is added to what backprop costs.

// NdArray is deprecated in Burn 0.22 but still a supported CPU backend here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

use crate::kernels::Kernels;
use crate::local_alignment::{AlignmentTerms, conv2d_feedback_gradient, linear_feedback_gradient};

/// Backend extension with the two feedback operations. Implemented for every backend wt
/// supports (Flex, NdArray, the CubeCL runtimes behind wgpu and CUDA) and for `Autodiff` over
/// any of them, where the custom backward lives. Its convolutions run through [`Kernels`]. Use the tensor-level functions
/// [`feedback_linear`] and [`feedback_conv2d`] rather than calling this trait directly.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait FeedbackBackend: Backend + Kernels {
    /// Forward of a linear layer without bias; `feedback` is only used by the backward pass,
    /// which forms `B` from it as `form` says.
    fn feedback_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
    ) -> FloatTensor<Self> {
        let _ = (feedback, form);
        Self::linear(x, weight, None)
    }

    /// Forward of a linear layer with bias; `feedback` is only used by the backward pass.
    fn feedback_linear_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = (feedback, form);
        Self::linear(x, weight, Some(bias))
    }

    /// Forward of a 2-D convolution without bias; `feedback` is only used by the backward pass.
    fn feedback_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let _ = (feedback, form);
        Self::conv2d_forward(x, weight, None, options)
    }

    /// Forward of a 2-D convolution with bias; `feedback` is only used by the backward pass.
    fn feedback_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let _ = (feedback, form);
        Self::conv2d_forward(x, weight, Some(bias), options)
    }

    /// The correlation `Σ_{batch, positions} x ⋆ g` that a conv2d weight gradient computes, for
    /// an input `x` and an output-shaped `g` (shape of `weight`). Weight mirrors use it with the
    /// layer's response in place of the error. Not differentiable.
    fn conv2d_correlation(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_gradient(x, weight, output_grad, options)
    }

    /// uSF's `B = scale·sign(weight)` ([`Kernels::scaled_sign`]). Not differentiable.
    fn feedback_scaled_sign(weight: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        Self::scaled_sign(weight, scale)
    }

    /// frSF's `B = magnitudes·sign(weight)` ([`Kernels::signed_magnitudes`]). Not
    /// differentiable.
    fn feedback_signed_magnitudes(
        weight: FloatTensor<Self>,
        magnitudes: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::signed_magnitudes(weight, magnitudes)
    }

    /// brSF's `B = |R|·sign(weight)`, `|R| ~ U(0, bound)` fresh ([`Kernels::signed_uniform`]).
    /// Not differentiable.
    fn feedback_signed_uniform(weight: FloatTensor<Self>, bound: f64) -> FloatTensor<Self> {
        Self::signed_uniform(weight, bound)
    }
}

/// How a feedback op's backward pass forms `B` from the `feedback` tensor it was given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedbackForm {
    /// `feedback` is `B`.
    Matrix,
    /// `B = scale·sign(feedback)`, `feedback` being `W` (uSF).
    ScaledSign(f64),
    /// `B = |R|·sign(feedback)`, `|R| ~ U(0, bound)` drawn when the backward pass runs,
    /// `feedback` being `W` (brSF).
    SignedUniform(f64),
    /// `B = feedback·sign(W)`, `feedback` holding the magnitudes `|R0|` (frSF); the op keeps
    /// its own `W` for the sign.
    SignedMagnitudes,
    /// `feedback` is `B`; when it is tracked it receives the gradient of Kunin et al.'s local
    /// terms with these weights ([`crate::local_alignment`]) instead of `dW`, computed from
    /// the op's input, `W` and `B`.
    Aligned(AlignmentTerms),
}

#[cfg(feature = "flex")]
impl FeedbackBackend for burn::backend::Flex {}
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
impl FeedbackBackend for burn::backend::NdArray {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl FeedbackBackend for burn::backend::Cube {}

/// Registers `dW` for the weight (parent 1) and, when the feedback (parent 2) is tracked, the
/// same tensor for it (Kolen-Pollack). `dw` is computed only if one of them needs it.
fn register_weight_gradient<B: Backend>(
    weight: Option<NodeId>,
    feedback: Option<NodeId>,
    grads: &mut Gradients,
    dw: impl FnOnce() -> <B as burn::backend::BackendTypes>::FloatTensorPrimitive,
) {
    if weight.is_none() && feedback.is_none() {
        return;
    }
    let dw = dw();
    if let Some(b) = feedback {
        grads.register::<B>(b, dw.clone());
    }
    if let Some(w) = weight {
        grads.register::<B>(w, dw);
    }
}

/// The `B` the backward pass uses, formed from the kept tensors as `form` says (`weight` is
/// kept for [`FeedbackForm::SignedMagnitudes`] only). The same kernels as [`Feedback::matrix`],
/// so a lazy and an eager `B` give bit-identical gradients.
fn formed_feedback<B: Kernels>(
    feedback: <B as burn::backend::BackendTypes>::FloatTensorPrimitive,
    form: FeedbackForm,
    weight: Option<<B as burn::backend::BackendTypes>::FloatTensorPrimitive>,
) -> <B as burn::backend::BackendTypes>::FloatTensorPrimitive {
    match form {
        FeedbackForm::Matrix | FeedbackForm::Aligned(_) => feedback,
        FeedbackForm::ScaledSign(s) => B::scaled_sign(feedback, s),
        FeedbackForm::SignedUniform(bound) => B::signed_uniform(feedback, bound),
        FeedbackForm::SignedMagnitudes => B::signed_magnitudes(
            weight.expect("the op keeps W for a signed-magnitudes feedback"),
            feedback,
        ),
    }
}

/// Backward of [`FeedbackBackend::feedback_linear`] (parents: x, W, B, and b when present).
#[derive(Debug)]
struct FeedbackLinearBackward;

/// State kept from the forward: the checkpointed input (when W or B needs a gradient), the
/// feedback tensor and W when `B` is formed from both (when x needs a gradient), the form.
type LinearState<B> = (
    Option<NodeId>,
    Option<<B as burn::backend::BackendTypes>::FloatTensorPrimitive>,
    FeedbackForm,
    Option<<B as burn::backend::BackendTypes>::FloatTensorPrimitive>,
);

impl<B: Kernels, const N: usize> Backward<B, N> for FeedbackLinearBackward {
    type State = LinearState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, feedback, form, weight) = ops.state;
        let x = x_state.map(|id| checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(id));
        let parents = ops.parents;

        if let Some(node) = &parents[0] {
            let feedback = feedback.clone().expect("feedback kept when x is tracked");
            let feedback = formed_feedback::<B>(feedback, form, weight.clone());
            grads.register::<B>(node.id, B::linear_x_backward(feedback, grad.clone()));
        }
        let x = || x.clone().expect("x kept when W or B is tracked");
        if let (FeedbackForm::Aligned(terms), Some(b)) = (form, &parents[2]) {
            let w = weight.clone().expect("the op keeps W for local alignment");
            let b_value = feedback
                .clone()
                .expect("the op keeps B for local alignment");
            grads.register::<B>(b.id, linear_feedback_gradient::<B>(x(), w, b_value, terms));
            if let Some(w) = &parents[1] {
                grads.register::<B>(w.id, B::linear_weight_backward(x(), grad.clone()));
            }
        } else {
            register_weight_gradient::<B>(
                parents[1].as_ref().map(|n| n.id),
                parents[2].as_ref().map(|n| n.id),
                grads,
                || B::linear_weight_backward(x(), grad.clone()),
            );
        }
        if N == 4
            && let Some(node) = &parents[N - 1]
        {
            grads.register::<B>(node.id, B::linear_bias_backward(grad));
        }
    }
}

/// Backward of [`FeedbackBackend::feedback_conv2d`] (parents: x, W, B, and b when present).
#[derive(Debug)]
struct FeedbackConv2dBackward;

/// State kept from the forward: the checkpointed input, the feedback tensor, its form and W
/// when `B` is formed from both, the bias (when present) and the convolution's options.
type ConvState<B> = (
    NodeId,
    <B as burn::backend::BackendTypes>::FloatTensorPrimitive,
    (
        FeedbackForm,
        Option<<B as burn::backend::BackendTypes>::FloatTensorPrimitive>,
    ),
    Option<<B as burn::backend::BackendTypes>::FloatTensorPrimitive>,
    ConvOptions<2>,
);

impl<B: Kernels, const N: usize> Backward<B, N> for FeedbackConv2dBackward {
    type State = ConvState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, feedback, (form, weight), bias, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let parents = ops.parents;

        // The weight gradient only reads the weight's shape: the feedback has the same one.
        let dw = || {
            B::conv2d_weight_gradient(x.clone(), feedback.clone(), grad.clone(), options.clone())
        };
        if let (FeedbackForm::Aligned(terms), Some(b)) = (form, &parents[2]) {
            let w = weight.clone().expect("the op keeps W for local alignment");
            let g = conv2d_feedback_gradient::<B>(
                x.clone(),
                w,
                feedback.clone(),
                terms,
                options.clone(),
            );
            grads.register::<B>(b.id, g);
            if let Some(w) = &parents[1] {
                grads.register::<B>(w.id, dw());
            }
        } else {
            register_weight_gradient::<B>(
                parents[1].as_ref().map(|n| n.id),
                parents[2].as_ref().map(|n| n.id),
                grads,
                dw,
            );
        }
        if N == 4
            && let Some(node) = &parents[N - 1]
        {
            let bias = bias.expect("bias kept when it is tracked");
            grads.register::<B>(
                node.id,
                B::conv2d_bias_backward(x.clone(), bias, grad.clone()),
            );
        }
        if let Some(node) = &parents[0] {
            let feedback = formed_feedback::<B>(feedback, form, weight);
            grads.register::<B>(
                node.id,
                B::conv2d_input_gradient(x, feedback, grad, options),
            );
        }
    }
}

/// Records the feedback linear op on the autodiff graph (bias optional).
fn autodiff_linear<B: Kernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    feedback: FloatTensor<Autodiff<B, C>>,
    form: FeedbackForm,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    let x_tracked = x.is_tracked();
    let needs_x = weight.is_tracked() || feedback.is_tracked();
    // Local alignment forms B's gradient from x, W and B, whatever x needs.
    let aligned = matches!(form, FeedbackForm::Aligned(_)) && feedback.is_tracked();
    let weight_state = ((x_tracked && form == FeedbackForm::SignedMagnitudes) || aligned)
        .then(|| weight.primitive().clone());
    macro_rules! run {
        ($prep:expr, $bias:expr) => {
            match $prep {
                OpsKind::Tracked(mut prep) => {
                    let x_state = needs_x.then(|| prep.checkpoint(&x));
                    let fb_state = (x_tracked || aligned).then(|| feedback.primitive().clone());
                    prep.finish(
                        (x_state, fb_state, form, weight_state),
                        B::linear(x.into_primitive(), weight.into_primitive(), $bias),
                    )
                }
                OpsKind::UnTracked(prep) => prep.finish(B::linear(
                    x.into_primitive(),
                    weight.into_primitive(),
                    $bias,
                )),
            }
        };
    }
    match bias {
        Some(bias) => {
            let prep = FeedbackLinearBackward
                .prepare::<C>([x.node(), weight.node(), feedback.node(), bias.node()])
                .compute_bound()
                .stateful();
            run!(prep, Some(bias.into_primitive()))
        }
        None => {
            let prep = FeedbackLinearBackward
                .prepare::<C>([x.node(), weight.node(), feedback.node()])
                .compute_bound()
                .stateful();
            run!(prep, None)
        }
    }
}

/// Records the feedback conv2d op on the autodiff graph (bias optional).
fn autodiff_conv2d<B: Kernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    feedback: FloatTensor<Autodiff<B, C>>,
    form: FeedbackForm,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
    options: ConvOptions<2>,
) -> FloatTensor<Autodiff<B, C>> {
    let aligned = matches!(form, FeedbackForm::Aligned(_)) && feedback.is_tracked();
    let weight_state = ((x.is_tracked() && form == FeedbackForm::SignedMagnitudes) || aligned)
        .then(|| weight.primitive().clone());
    macro_rules! run {
        ($prep:expr, $bias:expr) => {
            match $prep {
                OpsKind::Tracked(mut prep) => {
                    let x_state = prep.checkpoint(&x);
                    let bias_state = $bias.as_ref().map(|b| b.clone());
                    prep.finish(
                        (
                            x_state,
                            feedback.into_primitive(),
                            (form, weight_state),
                            bias_state,
                            options.clone(),
                        ),
                        B::conv2d_forward(
                            x.into_primitive(),
                            weight.into_primitive(),
                            $bias,
                            options,
                        ),
                    )
                }
                OpsKind::UnTracked(prep) => prep.finish(B::conv2d_forward(
                    x.into_primitive(),
                    weight.into_primitive(),
                    $bias,
                    options,
                )),
            }
        };
    }
    match bias {
        Some(bias) => {
            let prep = FeedbackConv2dBackward
                .prepare::<C>([x.node(), weight.node(), feedback.node(), bias.node()])
                .compute_bound()
                .stateful();
            let bias = Some(bias.into_primitive());
            run!(prep, bias)
        }
        None => {
            let prep = FeedbackConv2dBackward
                .prepare::<C>([x.node(), weight.node(), feedback.node()])
                .compute_bound()
                .stateful();
            let bias: Option<B::FloatTensorPrimitive> = None;
            run!(prep, bias)
        }
    }
}

impl<B: FeedbackBackend, C: CheckpointStrategy> FeedbackBackend for Autodiff<B, C> {
    fn feedback_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
    ) -> FloatTensor<Self> {
        autodiff_linear::<B, C>(x, weight, feedback, form, None)
    }

    fn feedback_linear_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_linear::<B, C>(x, weight, feedback, form, Some(bias))
    }

    fn feedback_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        autodiff_conv2d::<B, C>(x, weight, feedback, form, None, options)
    }

    fn feedback_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        feedback: FloatTensor<Self>,
        form: FeedbackForm,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        autodiff_conv2d::<B, C>(x, weight, feedback, form, Some(bias), options)
    }

    fn conv2d_correlation(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _output_grad: FloatTensor<Self>,
        _options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        unreachable!("wt calls conv2d_correlation on tensors outside autodiff only")
    }

    fn feedback_scaled_sign(weight: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(B::feedback_scaled_sign(
            weight.into_primitive(),
            scale,
        ))
    }

    fn feedback_signed_magnitudes(
        weight: FloatTensor<Self>,
        magnitudes: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(B::feedback_signed_magnitudes(
            weight.into_primitive(),
            magnitudes.into_primitive(),
        ))
    }

    fn feedback_signed_uniform(weight: FloatTensor<Self>, bound: f64) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(B::feedback_signed_uniform(
            weight.into_primitive(),
            bound,
        ))
    }
}

/// What a feedback op sends the error through.
// A short-lived value, moved once a forward pass: boxing the tensor would cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Feedback<const D: usize> {
    /// `B` itself, shaped like `W`. When it is tracked by autodiff it receives W's gradient
    /// (Kolen-Pollack).
    Matrix(Tensor<D>),
    /// `B = scale·sign(W)` (uniform sign-symmetry).
    ScaledSign {
        /// The magnitude `s` of every element of `B`.
        scale: f64,
    },
    /// `B = |R|·sign(W)`, `|R| ~ U(0, bound)` drawn afresh each time `B` is formed
    /// (batchwise random-magnitude sign-symmetry).
    SignedUniform {
        /// The upper end of the magnitudes' range.
        bound: f64,
    },
    /// `B = magnitudes·sign(W)` for stored `magnitudes ≥ 0` shaped like `W` (fixed
    /// random-magnitude sign-symmetry).
    SignedMagnitudes(Tensor<D>),
    /// `B` itself, shaped like `W`; when it is tracked it receives the gradient of Kunin et
    /// al.'s local terms with weights `terms` (symmetric, activation and information
    /// alignment, [`crate::local_alignment`]).
    Aligned {
        /// `B`.
        feedback: Tensor<D>,
        /// The weights of the local terms at this step.
        terms: AlignmentTerms,
    },
}

// The three sign forms are formed from the op's own `W` in the backward pass, and only when
// the input needs a gradient: nothing is computed in the forward pass, for a first layer or
// in evaluation. They give the gradients `Matrix(form.matrix(W))` gives, bit for bit (brSF:
// for the same draw).

impl<const D: usize> Feedback<D> {
    /// The `B` this feedback stands for, given the layer's `weight` (a fresh draw for
    /// [`SignedUniform`](Feedback::SignedUniform)). Sign forms are not differentiable.
    pub fn matrix(self, weight: &Tensor<D>) -> Tensor<D> {
        type Ext = burn::backend::Dispatch;
        let w = || weight.clone().detach().into_dispatch();
        let formed = match self {
            Feedback::Matrix(b) | Feedback::Aligned { feedback: b, .. } => return b,
            Feedback::ScaledSign { scale } => {
                <Ext as FeedbackBackend>::feedback_scaled_sign(w(), scale)
            }
            Feedback::SignedUniform { bound } => {
                <Ext as FeedbackBackend>::feedback_signed_uniform(w(), bound)
            }
            Feedback::SignedMagnitudes(m) => <Ext as FeedbackBackend>::feedback_signed_magnitudes(
                w(),
                m.detach().into_dispatch(),
            ),
        };
        Tensor::from_dispatch(formed)
    }

    /// The same feedback for `W` reshaped to `shape` (a layer that runs its op on a reshaped
    /// weight, e.g. a 1-D convolution as a 2-D one with kernel height 1): the tensors of
    /// [`Matrix`](Feedback::Matrix) and [`SignedMagnitudes`](Feedback::SignedMagnitudes)
    /// reshaped alike (a tracked `B` stays tracked, so Kolen-Pollack's `B` still receives `W`'s
    /// gradient); the sign forms, formed from the op's own `W`, unchanged.
    pub fn reshape<const D2: usize>(self, shape: [usize; D2]) -> Feedback<D2> {
        match self {
            Feedback::Matrix(b) => Feedback::Matrix(b.reshape(shape)),
            Feedback::ScaledSign { scale } => Feedback::ScaledSign { scale },
            Feedback::SignedUniform { bound } => Feedback::SignedUniform { bound },
            Feedback::SignedMagnitudes(m) => Feedback::SignedMagnitudes(m.reshape(shape)),
            Feedback::Aligned { feedback, terms } => Feedback::Aligned {
                feedback: feedback.reshape(shape),
                terms,
            },
        }
    }

    /// The tensor the op keeps for its backward pass and how `B` is formed from it.
    fn into_parts(self, weight: &Tensor<D>) -> (Tensor<D>, FeedbackForm) {
        match self {
            Feedback::Matrix(b) => (b, FeedbackForm::Matrix),
            Feedback::ScaledSign { scale } => {
                (weight.clone().detach(), FeedbackForm::ScaledSign(scale))
            }
            Feedback::SignedUniform { bound } => {
                (weight.clone().detach(), FeedbackForm::SignedUniform(bound))
            }
            Feedback::SignedMagnitudes(m) => (m.detach(), FeedbackForm::SignedMagnitudes),
            Feedback::Aligned { feedback, terms } => (feedback, FeedbackForm::Aligned(terms)),
        }
    }
}

/// Applies a linear transformation whose backward pass uses feedback weights.
///
/// # Shapes
/// - `x`: `[..., d_input]`
/// - `weight`, `feedback`: `[d_input, d_output]` (Burn's `Linear` layout)
/// - `bias`: `[d_output]`
/// - output: `[..., d_output]`
///
/// Backward: `dx = g·feedbackᵀ`; `dW = xᵀ·g` (summed over leading dimensions); `db = Σ g`.
/// When `feedback` is tracked it receives `dW` as its gradient.
pub fn feedback_linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    feedback: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    feedback_linear_with(x, weight, Feedback::Matrix(feedback), bias)
}

/// [`feedback_linear`] with any [`Feedback`] (e.g. a sign of `W` formed only in the backward).
pub fn feedback_linear_with<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    feedback: Feedback<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    if D == 1 {
        let out = feedback_linear_with::<2>(x.unsqueeze::<2>(), weight, feedback, bias);
        return out.squeeze_dim(0);
    }
    let (feedback, form) = feedback.into_parts(&weight);
    assert_eq!(
        weight.dims(),
        feedback.dims(),
        "feedback_linear: feedback must have the weight's shape [d_input, d_output]"
    );
    let [d_input, _] = weight.dims();
    assert_eq!(
        x.dims()[D - 1],
        d_input,
        "feedback_linear: last input dimension must be d_input = {d_input}"
    );
    type Ext = burn::backend::Dispatch;
    let (x, weight, feedback) = (
        x.into_dispatch(),
        weight.into_dispatch(),
        feedback.into_dispatch(),
    );
    let out = match bias {
        Some(b) => <Ext as FeedbackBackend>::feedback_linear_bias(
            x,
            weight,
            feedback,
            form,
            b.into_dispatch(),
        ),
        None => <Ext as FeedbackBackend>::feedback_linear(x, weight, feedback, form),
    };
    Tensor::from_dispatch(out)
}

/// Applies a 2-D convolution whose backward pass sends the error through `feedback`.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`
/// - `weight`, `feedback`: `[c_out, c_in / groups, kh, kw]`
/// - `bias`: `[c_out]`
/// - output: `[batch, c_out, h_out, w_out]`
///
/// Backward: `dx = conv_transpose2d(g, feedback)` with the layer's stride, padding, dilation
/// and groups; `dW`, `db` as Burn's `conv2d`. When `feedback` is tracked it receives `dW`.
pub fn feedback_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    feedback: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    feedback_conv2d_with(x, weight, Feedback::Matrix(feedback), bias, options)
}

/// [`feedback_conv2d`] with any [`Feedback`] (e.g. a sign of `W` formed only in the backward).
pub fn feedback_conv2d_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    feedback: Feedback<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let (feedback, form) = feedback.into_parts(&weight);
    assert_eq!(
        weight.dims(),
        feedback.dims(),
        "feedback_conv2d: feedback must have the weight's shape"
    );
    type Ext = burn::backend::Dispatch;
    let (x, weight, feedback) = (
        x.into_dispatch(),
        weight.into_dispatch(),
        feedback.into_dispatch(),
    );
    let out = match bias {
        Some(b) => <Ext as FeedbackBackend>::feedback_conv2d_bias(
            x,
            weight,
            feedback,
            form,
            b.into_dispatch(),
            options,
        ),
        None => <Ext as FeedbackBackend>::feedback_conv2d(x, weight, feedback, form, options),
    };
    Tensor::from_dispatch(out)
}

/// `Σ_{batch, positions}` correlation of `x` with an output-shaped `output_grad`, as a conv2d
/// weight gradient computes it; returns a tensor of `weight`'s shape. Autodiff is dropped.
pub fn conv2d_correlation(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let out = <burn::backend::Dispatch as FeedbackBackend>::conv2d_correlation(
        x.inner().into_dispatch(),
        weight.inner().into_dispatch(),
        output_grad.inner().into_dispatch(),
        options,
    );
    Tensor::from_dispatch(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::device::test_devices;
    use burn::tensor::module::{conv_transpose2d, conv2d, linear};
    use burn::tensor::ops::ConvTransposeOptions;
    use burn::tensor::{Device, Distribution, Tolerance};

    pub(crate) fn rand<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    pub(crate) fn close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Tolerance::rel_abs(1e-4, 1e-4));
    }

    /// Forward, dx, dW, db of feedback_linear against explicit math and Burn's linear.
    fn check_linear<const D: usize>(device: &Device, x_shape: [usize; D], bias: bool) {
        let d_in = x_shape[D - 1];
        let d_out = 5;
        let x = rand(x_shape, device);
        let w = rand([d_in, d_out], device);
        let fb = rand([d_in, d_out], device);
        let b = bias.then(|| rand([d_out], device));
        let mut out_shape = x_shape;
        out_shape[D - 1] = d_out;
        let up = rand(out_shape, device);

        let ad = device.clone().autodiff();
        let track = |t: &Tensor<D>| Tensor::<D>::from_data(t.to_data(), &ad).require_grad();
        let track2 = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &ad).require_grad();
        let track1 = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), &ad).require_grad();
        let up_ad = Tensor::<D>::from_data(up.to_data(), &ad);

        // Rule op.
        let (x1, w1, b1) = (track(&x), track2(&w), b.as_ref().map(track1));
        let fb1 = Tensor::<2>::from_data(fb.to_data(), &ad);
        let y1 = feedback_linear(x1.clone(), w1.clone(), fb1, b1.clone());
        let g1 = (y1.clone() * up_ad.clone()).sum().backward();
        // Burn's linear.
        let (x2, w2, b2) = (track(&x), track2(&w), b.as_ref().map(track1));
        let y2 = linear(x2.clone(), w2.clone(), b2.clone());
        let g2 = (y2.clone() * up_ad).sum().backward();

        close("forward", y1.inner(), y2.inner());
        // dx = g·Bᵀ
        let expected_dx = up.clone().matmul(fb.transpose().unsqueeze::<D>());
        close("dx", x1.grad(&g1).unwrap(), expected_dx);
        close("dW", w1.grad(&g1).unwrap(), w2.grad(&g2).unwrap());
        if let (Some(b1), Some(b2)) = (b1, b2) {
            close("db", b1.grad(&g1).unwrap(), b2.grad(&g2).unwrap());
        }
    }

    #[test]
    fn linear_gradients_match_explicit_math_on_every_device() {
        let _serial = crate::device::device_test_lock();
        for (name, device) in test_devices() {
            eprintln!("linear on {name}");
            check_linear(&device, [6, 7], true);
            check_linear(&device, [2, 3, 7], true);
            check_linear(&device, [4, 7], false);
        }
    }

    #[test]
    fn tracked_feedback_receives_the_weight_gradient() {
        let _serial = crate::device::device_test_lock();
        for (_, device) in test_devices() {
            let ad = device.clone().autodiff();
            let x = rand([8, 6], &ad);
            let w = rand([6, 3], &ad).require_grad();
            let fb = rand([6, 3], &ad).require_grad();
            let y = feedback_linear(x, w.clone(), fb.clone(), None);
            let g = y.powi_scalar(2).sum().backward();
            close("dB = dW", fb.grad(&g).unwrap(), w.grad(&g).unwrap());
        }
    }

    /// Sign form `k` of [`Feedback`]: uSF, brSF, frSF (with `magnitudes`).
    fn sign_form<const D: usize>(k: usize, magnitudes: &Tensor<D>) -> Feedback<D> {
        match k {
            0 => Feedback::ScaledSign { scale: 0.0371 },
            1 => Feedback::SignedUniform { bound: 0.0643 },
            _ => Feedback::SignedMagnitudes(magnitudes.clone()),
        }
    }

    /// The sign forms (`B` formed in the backward pass) give the gradients that their
    /// materialised [`Feedback::matrix`] gives, bit for bit (brSF: after the same seed), for
    /// linear and conv, with and without an input gradient.
    #[test]
    fn sign_forms_give_their_matrices_gradients_bit_for_bit() {
        let _serial = crate::device::device_test_lock();
        let bits = |t: Tensor<2>| t.into_data().to_vec::<f32>().unwrap();
        let bits4 = |t: Tensor<4>| t.into_data().to_vec::<f32>().unwrap();
        for (name, device) in test_devices() {
            let ad = device.clone().autodiff();
            let x = rand([9, 6], &device);
            let w = rand([6, 4], &device);
            let mags = Tensor::<2>::from_data(rand([6, 4], &device).abs().to_data(), &ad);
            let up = Tensor::<2>::from_data(rand([9, 4], &device).to_data(), &ad);
            for (k, x_tracked) in (0..3).flat_map(|k| [(k, true), (k, false)]) {
                let run = |lazy: bool| {
                    device.seed(5);
                    let xt = Tensor::<2>::from_data(x.to_data(), &ad);
                    let xt = if x_tracked { xt.require_grad() } else { xt };
                    let wt = Tensor::<2>::from_data(w.to_data(), &ad).require_grad();
                    let fb = sign_form(k, &mags);
                    let fb = if lazy {
                        fb
                    } else {
                        Feedback::Matrix(fb.matrix(&wt))
                    };
                    let y = feedback_linear_with(xt.clone(), wt.clone(), fb, None);
                    let g = (y * up.clone()).sum().backward();
                    (xt.grad(&g).map(bits), bits(wt.grad(&g).unwrap()))
                };
                let (lazy, eager) = (run(true), run(false));
                assert_eq!(
                    lazy, eager,
                    "linear form {k} on {name}, x tracked: {x_tracked}"
                );
                assert_eq!(lazy.0.is_some(), x_tracked);
            }

            let x = rand([2, 3, 7, 7], &device);
            let w = rand([4, 3, 3, 3], &device);
            let mags = Tensor::<4>::from_data(rand([4, 3, 3, 3], &device).abs().to_data(), &ad);
            let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
            let up = Tensor::<4>::from_data(rand([2, 4, 4, 4], &device).to_data(), &ad);
            for (k, x_tracked) in (0..3).flat_map(|k| [(k, true), (k, false)]) {
                let run = |lazy: bool| {
                    device.seed(6);
                    let xt = Tensor::<4>::from_data(x.to_data(), &ad);
                    let xt = if x_tracked { xt.require_grad() } else { xt };
                    let wt = Tensor::<4>::from_data(w.to_data(), &ad).require_grad();
                    let fb = sign_form(k, &mags);
                    let fb = if lazy {
                        fb
                    } else {
                        Feedback::Matrix(fb.matrix(&wt))
                    };
                    let y = feedback_conv2d_with(xt.clone(), wt.clone(), fb, None, options.clone());
                    let g = (y * up.clone()).sum().backward();
                    (xt.grad(&g).map(bits4), bits4(wt.grad(&g).unwrap()))
                };
                let (lazy, eager) = (run(true), run(false));
                assert_eq!(
                    lazy, eager,
                    "conv form {k} on {name}, x tracked: {x_tracked}"
                );
                assert_eq!(lazy.0.is_some(), x_tracked);
            }
        }
    }

    /// Each sign form's `B` against Burn's ops: `s·sign(W)` and `|R0|·sign(W)` bit for bit;
    /// brSF's has W's signs, magnitudes in `[0, bound)` and is redrawn each time. And the lazy
    /// input gradient is `g·Bᵀ` with that `B`, not `g·Wᵀ`.
    #[test]
    fn sign_forms_matrices_are_the_rules_b() {
        let _serial = crate::device::device_test_lock();
        let bits = |t: Tensor<2>| t.into_data().to_vec::<f32>().unwrap();
        for (name, device) in test_devices() {
            let w = rand([40, 30], &device);
            let mags = rand([40, 30], &device).abs();
            let usf = sign_form(0, &mags).matrix(&w);
            assert_eq!(
                bits(usf.clone()),
                bits(w.clone().sign().mul_scalar(0.0371)),
                "uSF on {name}"
            );
            let frsf = sign_form(2, &mags).matrix(&w);
            assert_eq!(
                bits(frsf),
                bits(mags.clone() * w.clone().sign()),
                "frSF on {name}"
            );
            let brsf = sign_form(1, &mags).matrix(&w);
            let same_sign = (brsf.clone() * w.clone()).greater_elem(0.0).int().sum();
            assert_eq!(
                same_sign.into_scalar::<i64>(),
                40 * 30,
                "brSF signs on {name}"
            );
            let max = brsf.clone().abs().max().into_scalar::<f64>();
            assert!(max < 0.0643 && max > 0.05, "brSF max |B| {max} on {name}");
            let again = sign_form(1, &mags).matrix(&w);
            assert_ne!(bits(again), bits(brsf), "brSF redraws on {name}");

            let ad = device.clone().autodiff();
            let x = Tensor::<2>::from_data(rand([9, 40], &device).to_data(), &ad).require_grad();
            let up = rand([9, 30], &device);
            let wt = Tensor::<2>::from_data(w.to_data(), &ad);
            let y = feedback_linear_with(x.clone(), wt, sign_form(0, &mags), None);
            let g = (y * Tensor::from_data(up.to_data(), &ad)).sum().backward();
            close("uSF dx", x.grad(&g).unwrap(), up.matmul(usf.transpose()));
        }
    }

    struct ConvCase {
        channels: [usize; 2],
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
        size: usize,
    }

    fn check_conv(device: &Device, c: &ConvCase) {
        let [c_in, c_out] = c.channels;
        let k = 3;
        let x = rand([2, c_in, c.size, c.size], device);
        let w = rand([c_out, c_in / c.groups, k, k], device);
        let fb = rand([c_out, c_in / c.groups, k, k], device);
        let bias = rand([c_out], device);
        let options = ConvOptions::new([c.stride; 2], [c.padding; 2], [c.dilation; 2], c.groups);
        let ad = device.clone().autodiff();
        let t4 = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad).require_grad();
        let t1 = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), &ad).require_grad();

        let (x1, w1, b1) = (t4(&x), t4(&w), t1(&bias));
        let fb1 = Tensor::<4>::from_data(fb.to_data(), &ad);
        let y1 = feedback_conv2d(
            x1.clone(),
            w1.clone(),
            fb1,
            Some(b1.clone()),
            options.clone(),
        );
        let up = rand(y1.dims(), device);
        let up_ad = Tensor::<4>::from_data(up.to_data(), &ad);
        let g1 = (y1.clone() * up_ad.clone()).sum().backward();

        let (x2, w2, b2) = (t4(&x), t4(&w), t1(&bias));
        let y2 = conv2d(x2.clone(), w2.clone(), Some(b2.clone()), options.clone());
        let g2 = (y2.clone() * up_ad).sum().backward();

        close("conv forward", y1.inner(), y2.inner());
        // dx = conv_transpose2d(g, B) with the output padding that restores x's size.
        let [_, _, h_out, _] = up.dims();
        let span = c.dilation * (k - 1) + 1;
        let covered = (h_out - 1) * c.stride + span;
        let out_pad = c.size + 2 * c.padding - covered;
        let t_options = ConvTransposeOptions::new(
            [c.stride; 2],
            [c.padding; 2],
            [out_pad; 2],
            [c.dilation; 2],
            c.groups,
        );
        let expected_dx = conv_transpose2d(up, fb, None, t_options);
        close("conv dx", x1.grad(&g1).unwrap(), expected_dx);
        close("conv dW", w1.grad(&g1).unwrap(), w2.grad(&g2).unwrap());
        close("conv db", b1.grad(&g1).unwrap(), b2.grad(&g2).unwrap());
    }

    #[test]
    fn conv_gradients_match_explicit_math_on_every_device() {
        let _serial = crate::device::device_test_lock();
        let cases = [
            ConvCase {
                channels: [3, 4],
                stride: 1,
                padding: 1,
                dilation: 1,
                groups: 1,
                size: 7,
            },
            ConvCase {
                channels: [4, 6],
                stride: 2,
                padding: 1,
                dilation: 1,
                groups: 1,
                size: 8,
            },
            ConvCase {
                channels: [4, 4],
                stride: 2,
                padding: 0,
                dilation: 1,
                groups: 1,
                size: 9,
            },
            ConvCase {
                channels: [3, 5],
                stride: 1,
                padding: 2,
                dilation: 2,
                groups: 1,
                size: 8,
            },
            ConvCase {
                channels: [4, 6],
                stride: 1,
                padding: 1,
                dilation: 1,
                groups: 2,
                size: 6,
            },
            ConvCase {
                channels: [4, 4],
                stride: 2,
                padding: 2,
                dilation: 2,
                groups: 2,
                size: 9,
            },
        ];
        for (name, device) in test_devices() {
            for (i, case) in cases.iter().enumerate() {
                eprintln!("conv case {i} on {name}");
                check_conv(&device, case);
            }
        }
    }
}
