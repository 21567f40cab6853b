//! Direct feedback alignment (Nøkland 2016): the network's output error `e = ∂L/∂ŷ` sent
//! straight to each layer's input through a fixed random matrix, instead of the error from
//! the layer above.
//!
//! Two autodiff ops carry it, both identities in the forward pass:
//! - [`direct_error`] on the network's output (the logits) copies `e` into an [`ErrorCell`] as
//!   the backward pass goes through it — the first node the backward pass reaches, so `e` is
//!   there before any layer needs it;
//! - [`direct_feedback_linear`] / [`direct_feedback_conv2d`] join a layer's output `y` (computed
//!   from its input *detached*, so the layer's own input gradient is never computed) with the
//!   input `x` and the direct matrix `D`: backward passes `y`'s gradient on unchanged (the
//!   layer's `W` and `b` learn from it as usual) and gives `x` the direct signal
//!   - dense: `dx = e·Dᵀ`, `D`: `[d_input, classes]` (the weight of a linear from the layer's
//!     input to the outputs), broadcast over any middle dimensions of `x`;
//!   - conv: `dx = conv_transpose2d(ē, D)`, `D`: `[classes, c_in, kh, kw]`, where `ē` is `e`
//!     repeated at each of the layer's output positions, with the layer's stride, padding and
//!     dilation (groups 1) — BioTorch's DFA convolution: a fixed random map from `e` to the
//!     whole `[c_in, h, w]` input, shared across positions;
//!
//!   and, when `D` is tracked (direct Kolen-Pollack), gives `D` the gradient a direct
//!   connection from `x` to the outputs would get from `e`: `xᵀ·e` summed over `x`'s middle
//!   dimensions (dense), the weight gradient of a conv with `D`'s shape fed `ē` (conv).
//!
//! The cell links the DFA layers of one forward pass. Each layer's forward joins this thread's
//! pending cell under its own key (a [`ParamId`] of the layer); a layer already in it begins a
//! new forward pass, so every pass has a cell of its own even when several run before one
//! backward. `direct_error` on the output takes the pending cell, closing the pass. Without it,
//! the last DFA layer of the pass to join, when its output is `[batch, outputs]` (a network
//! that ends in a DFA dense layer), is taken to be the network's output: its backward runs
//! first (its op is the deepest of the pass) and puts its own output gradient in the cell as
//! `e`. So a model whose last layer is a DFA classifier needs no call at all; any other must
//! mark its output with `direct_error`. A backward pass that reaches DFA layers with no `e`
//! gives their inputs nothing and leaves a [`MissingOutputError`] for
//! [`take_missing_output_error`], which the optimizer step checks (a typed error in
//! `wt_train::fit`, a panic naming the call in `FeedbackOptimizer::step`).

// NdArray is deprecated in Burn 0.22 but still a supported CPU backend here.
#![allow(deprecated)]

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use burn::backend::Backend;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;
use burn::module::ParamId;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Shape, Tensor};

use crate::kernels::Kernels;

/// Where the output error `e` of one forward pass is kept for the layers' backward passes, and
/// which layers joined the pass, in forward order. Holds the inner backend's tensor,
/// type-erased; cloning shares the cell.
#[derive(Clone, Default)]
pub struct ErrorCell(Arc<Mutex<CellState>>);

#[derive(Default)]
struct CellState {
    error: Option<Box<dyn Any + Send>>,
    /// DRTP's signal, `−scale·onehot(targets)` ([`direct_targets`]).
    targets: Option<Box<dyn Any + Send>>,
    /// The outputs of the pass's DRTP layers, when one joined.
    target_outputs: Option<usize>,
    layers: Vec<ParamId>,
}

impl std::fmt::Debug for ErrorCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (filled, layers) = self
            .0
            .lock()
            .map(|c| (c.error.is_some(), c.layers.len()))
            .unwrap_or((false, 0));
        write!(f, "ErrorCell {{ filled: {filled}, layers: {layers} }}")
    }
}

impl ErrorCell {
    fn state(&self) -> std::sync::MutexGuard<'_, CellState> {
        self.0.lock().expect("error cell poisoned")
    }

    fn put<T: Any + Send>(&self, error: T) {
        self.state().error = Some(Box::new(error));
    }

    fn get<T: Any + Clone>(&self) -> Option<T> {
        slot_value(&self.state().error)
    }

    fn put_targets<T: Any + Send>(&self, signal: T) {
        self.state().targets = Some(Box::new(signal));
    }

    fn targets<T: Any + Clone>(&self) -> Option<T> {
        slot_value(&self.state().targets)
    }

    /// Whether `layer` already joined this cell.
    fn has(&self, layer: ParamId) -> bool {
        self.state().layers.contains(&layer)
    }

    /// Adds `layer` to the pass; returns its place in forward order.
    fn join(&self, layer: ParamId) -> usize {
        let mut state = self.state();
        state.layers.push(layer);
        state.layers.len() - 1
    }

    /// Whether the layer at `index` is the last that joined.
    fn is_last(&self, index: usize) -> bool {
        self.state().layers.len() == index + 1
    }
}

/// A copy of the tensor a cell's slot holds, if any.
fn slot_value<T: Any + Clone>(slot: &Option<Box<dyn Any + Send>>) -> Option<T> {
    let value = slot.as_ref()?.downcast_ref::<T>();
    Some(
        value
            .expect("a cell holds tensors of the layers' backend")
            .clone(),
    )
}

thread_local! {
    static PENDING: RefCell<Option<ErrorCell>> = const { RefCell::new(None) };
    /// The cell of this thread's latest forward pass (open or closed), for [`direct_targets`].
    static LATEST: RefCell<Option<ErrorCell>> = const { RefCell::new(None) };
    /// Set by a backward pass that reached DFA layers without an output error.
    static MISSING_OUTPUT_ERROR: std::cell::Cell<Option<MissingOutputError>> =
        const { std::cell::Cell::new(None) };
}

/// What a direct rule's layers receive at their inputs, through their matrices `D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectSignal {
    /// The network's output error `e = ∂L/∂ŷ` (DFA, DKP).
    OutputError,
    /// The target, `−scale·onehot(y*)`, given by [`direct_targets`] (DRTP): the part of
    /// softmax cross-entropy's `e = scale·(softmax(ŷ) − onehot(y*))` that does not depend on
    /// the output, so no error crosses the network.
    Targets,
}

/// A backward pass on this thread reached direct-rule layers that found no signal: for DFA
/// and DKP no output error `e` (the network's last DFA layer is not a dense layer with
/// `outputs` outputs and its output was not marked with [`direct_error`]); for DRTP no
/// targets (nothing called [`direct_targets`] between the forward pass and its backward).
/// Those layers' inputs received nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingOutputError {
    /// The outputs the layers were built for.
    pub outputs: usize,
    /// The signal that was missing.
    pub signal: DirectSignal,
}

impl std::fmt::Display for MissingOutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.signal {
            DirectSignal::OutputError => write!(
                f,
                "direct feedback alignment: no output error reached the DFA layers' backward \
                 pass: the network's last DFA layer is not a dense layer with {} outputs, so pass \
                 the network's output through wt_nn::direct_error (wt_core::direct_error) before \
                 the loss",
                self.outputs
            ),
            DirectSignal::Targets => write!(
                f,
                "direct random target projection: no targets reached the DRTP layers' backward \
                 pass: call wt_nn::direct_targets(targets, 1.0 / batch) (wt_core::direct_targets) \
                 after the forward pass and before backward, with the batch's {}-class labels",
                self.outputs
            ),
        }
    }
}

impl std::error::Error for MissingOutputError {}

/// Whether a backward pass on this thread since the last call reached DFA layers without an
/// output error; clears the mark. `wt_nn::FeedbackOptimizer`'s steps call it before updating
/// anything (and `wt_train::fit` turns it into its error), so a model that needs
/// [`direct_error`] and lacks it stops at its first step with this message instead of training
/// its hidden layers on nothing.
pub fn take_missing_output_error() -> Result<(), MissingOutputError> {
    match MISSING_OUTPUT_ERROR.with(std::cell::Cell::take) {
        Some(missing) => Err(missing),
        None => Ok(()),
    }
}

/// Joins `layer` to the forward pass running on this thread: the pending cell, or a new one
/// when there is none or `layer` is already in it (a new pass). Returns the layer's link to
/// the pass: the cell, its place in it and the signal it receives.
///
/// # Panics
/// When an earlier backward pass on this thread left a [`MissingOutputError`] that nobody took
/// (a training loop without `wt_nn::FeedbackOptimizer` or its own check): training on would
/// give the hidden DFA layers no error at all.
fn join_pending_cell(layer: ParamId, signal: DirectSignal, outputs: usize) -> PassLink {
    if let Some(missing) = MISSING_OUTPUT_ERROR.with(std::cell::Cell::take) {
        panic!("{missing}");
    }
    PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        if pending.as_ref().is_none_or(|cell| cell.has(layer)) {
            let cell = ErrorCell::default();
            LATEST.with(|l| *l.borrow_mut() = Some(cell.clone()));
            *pending = Some(cell);
        }
        let cell = pending.clone().expect("a pending cell was just ensured");
        let index = cell.join(layer);
        if signal == DirectSignal::Targets {
            cell.state().target_outputs = Some(outputs);
        }
        PassLink {
            cell,
            index,
            signal,
        }
    })
}

/// Gives the DRTP layers of this thread's latest forward pass their signal,
/// `−scale·onehot(targets)`: call it after the forward pass and before its backward, with the
/// batch's labels `targets` (`[batch]`, class indices; a language model's `[batch, tokens]`,
/// one a position, reaching each position's rows of the dense layers) and `scale` the factor
/// the loss puts on each prediction's output error (Burn's `CrossEntropyLoss`, a mean:
/// `1 / batch`, or `1 / (batch·tokens)`, times any weight the loss is multiplied by), so that
/// DRTP's steps are the size of DFA's. Does nothing when the pass has no DRTP layer (any other
/// rule, evaluation), so a training loop may call it always; `wt_train::fit` does.
pub fn direct_targets<const D: usize>(targets: Tensor<D, Int>, scale: f64) {
    let Some(cell) = LATEST.with(|l| l.borrow().clone()) else {
        return;
    };
    let Some(outputs) = cell.state().target_outputs else {
        return;
    };
    let signal = targets
        .flatten::<1>(0, D - 1)
        .one_hot::<2>(outputs)
        .float()
        .mul_scalar(-scale)
        .autodiff();
    let _ = <Ext as DirectFeedbackBackend>::direct_targets(signal.into_dispatch(), cell);
}

/// Takes the cell of this thread's forward pass (`None` when no DFA layer ran since the last
/// call), so that the next forward pass opens a new one.
pub fn take_pending_cell() -> Option<ErrorCell> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// How a direct-rule layer's op is linked to its forward pass: the pass's cell, the layer's
/// place in it and the signal the layer receives.
#[derive(Debug, Clone)]
pub struct PassLink {
    /// The cell of the layer's forward pass.
    pub cell: ErrorCell,
    /// The layer's place in the pass (forward order).
    pub index: usize,
    /// What the layer's input receives.
    pub signal: DirectSignal,
}

/// Backend extension of the two direct-feedback ops; identities outside autodiff.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait DirectFeedbackBackend: Backend + Kernels {
    /// Returns `output`; its backward keeps the incoming gradient in `cell`.
    fn direct_error(output: FloatTensor<Self>, cell: ErrorCell) -> FloatTensor<Self> {
        let _ = cell;
        output
    }

    /// Keeps DRTP's signal `[batch, classes]` in `cell` (autodiff only); returns it.
    fn direct_targets(signal: FloatTensor<Self>, cell: ErrorCell) -> FloatTensor<Self> {
        let _ = cell;
        signal
    }

    /// Returns `y`; its backward gives `x` the dense direct signal `s·Dᵀ`.
    fn direct_feedback_linear(
        y: FloatTensor<Self>,
        x: FloatTensor<Self>,
        direct: FloatTensor<Self>,
        link: PassLink,
    ) -> FloatTensor<Self> {
        let _ = (x, direct, link);
        y
    }

    /// Returns `y`; its backward gives `x` the convolutional direct signal, `e·scale` at
    /// each output position.
    fn direct_feedback_conv2d(
        y: FloatTensor<Self>,
        x: FloatTensor<Self>,
        direct: FloatTensor<Self>,
        options: ConvOptions<2>,
        scale: f32,
        link: PassLink,
    ) -> FloatTensor<Self> {
        let _ = (x, direct, options, scale, link);
        y
    }
}

#[cfg(feature = "flex")]
impl DirectFeedbackBackend for burn::backend::Flex {}
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
impl DirectFeedbackBackend for burn::backend::NdArray {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl DirectFeedbackBackend for burn::backend::Cube {}

type Primitive<B> = <B as burn::backend::BackendTypes>::FloatTensorPrimitive;

#[derive(Debug)]
struct DirectErrorBackward;

impl<B: Kernels> Backward<B, 1> for DirectErrorBackward {
    type State = ErrorCell;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        ops.state.put::<Primitive<B>>(grad.clone());
        if let Some(node) = &ops.parents[0] {
            grads.register::<B>(node.id, grad);
        }
    }
}

/// The geometry of the direct signal: dense, or conv with the layer's options and the factor
/// of `e` at each output position.
#[derive(Debug, Clone)]
enum Geometry {
    Linear,
    Conv2d(ConvOptions<2>, f32),
}

#[derive(Debug)]
struct DirectFeedbackBackward;

/// State: the direct matrix, `x`'s shape (conv: `x` itself, whose shape the kernel reads), the
/// output's shape, the geometry, the cell, the layer's place in its pass and its signal.
type DirectState<B> = (Primitive<B>, Primitive<B>, Shape, Geometry, PassLink);

impl<B: Kernels> Backward<B, 3> for DirectFeedbackBackward {
    type State = DirectState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (direct, x, y_shape, geometry, link) = ops.state;
        let PassLink {
            cell,
            index,
            signal,
        } = link;
        let [y_node, x_node, direct_node] = &ops.parents;
        let error: Option<Primitive<B>> = cell.get();
        // No `direct_error`: the pass's last DFA layer, if its output has the outputs' shape, is
        // the network's output, and its output gradient is `e` (its backward runs first).
        let outputs = match geometry {
            Geometry::Linear => direct.shape()[1],
            Geometry::Conv2d(..) => direct.shape()[0],
        };
        let is_output = error.is_none()
            && cell.is_last(index)
            && y_shape.num_dims() == 2
            && y_shape[1] == outputs;
        if is_output {
            cell.put::<Primitive<B>>(grad.clone());
        }
        let error = match signal {
            DirectSignal::OutputError if is_output => Some(grad.clone()),
            DirectSignal::OutputError => error,
            DirectSignal::Targets => cell.targets(),
        };
        if let Some(node) = y_node {
            grads.register::<B>(node.id, grad);
        }
        if x_node.is_none() && direct_node.is_none() {
            return;
        }
        let Some(error) = error else {
            // No `e`: the layer's input and `D` get zeros (what came before still receives a
            // gradient, as the graph expects), and the pass is marked for
            // `take_missing_output_error` (the optimizer step's check).
            MISSING_OUTPUT_ERROR.with(|m| m.set(Some(MissingOutputError { outputs, signal })));
            let zeros = |t: &Primitive<B>| B::float_zeros(t.shape(), &t.device(), t.dtype().into());
            if let Some(node) = x_node {
                grads.register::<B>(node.id, zeros(&x));
            }
            if let Some(node) = direct_node {
                grads.register::<B>(node.id, zeros(&direct));
            }
            return;
        };
        let x_shape = x.shape();
        let rank = x_shape.num_dims();
        let error_shape = error.shape();
        let classes = error_shape[error_shape.num_dims() - 1];
        match geometry {
            Geometry::Linear => {
                let d_input = x_shape[rank - 1];
                // `e` is `[rows..., classes]` with its rows a leading part of `x`'s
                // (`[batch]`: one error an example; `[batch, tokens]`: one a position); `x`'s
                // remaining middle dimensions share their row's error.
                let rows = error_shape.num_elements() / classes;
                assert!(
                    leading_rows(&x_shape, rows),
                    "direct feedback: the signal's shape {error_shape:?} does not lead the layer \
                     input's {x_shape:?} (it must be [batch, classes] or [batch, ..., classes] \
                     with the input's leading dimensions)"
                );
                let shared = x_shape.num_elements() / d_input / rows;
                let error = B::float_reshape(error, Shape::new([rows, classes]));
                if let Some(node) = direct_node {
                    // xᵀ·e, x summed over the dimensions that share a row's error first:
                    // [d_input, classes].
                    let x = B::float_reshape(x, Shape::new([rows, shared, d_input]));
                    let x = B::float_reshape(B::float_sum_dim(x, 1), Shape::new([rows, d_input]));
                    grads.register::<B>(node.id, B::linear_weight_backward(x, error.clone()));
                }
                if let Some(node) = x_node {
                    // [rows, classes]·[classes, d_input], repeated over the shared dimensions.
                    let dx = B::linear_x_backward(direct, error);
                    let dx = B::float_reshape(dx, Shape::new([rows, 1, d_input]));
                    let dx = B::float_expand(dx, Shape::new([rows, shared, d_input]));
                    grads.register::<B>(node.id, B::float_reshape(dx, x_shape));
                }
            }
            Geometry::Conv2d(options, scale) => {
                assert_eq!(
                    error_shape.num_dims(),
                    2,
                    "direct feedback: a convolution's signal must be [batch, classes], not \
                     {error_shape:?}"
                );
                let batch = error_shape[0];
                let [_, _, h_out, w_out] = y_shape.dims::<4>();
                let error = if scale == 1.0 {
                    error
                } else {
                    B::float_mul_scalar(error, scale.into())
                };
                let e = B::float_reshape(error, Shape::new([batch, classes, 1, 1]));
                let e = B::float_expand(e, Shape::new([batch, classes, h_out, w_out]));
                let options = ConvOptions {
                    groups: 1,
                    ..options
                };
                if let Some(node) = direct_node {
                    let g = B::conv2d_weight_gradient(
                        x.clone(),
                        direct.clone(),
                        e.clone(),
                        options.clone(),
                    );
                    grads.register::<B>(node.id, g);
                }
                if let Some(node) = x_node {
                    grads.register::<B>(node.id, B::conv2d_input_gradient(x, direct, e, options));
                }
            }
        }
    }
}

/// Whether `rows` is the product of some leading dimensions of `x_shape` (its last left out).
fn leading_rows(x_shape: &Shape, rows: usize) -> bool {
    (0..x_shape.num_dims()).any(|k| (0..k).map(|i| x_shape[i]).product::<usize>() == rows)
}

fn autodiff_direct<B: Kernels, C: CheckpointStrategy>(
    y: FloatTensor<Autodiff<B, C>>,
    x: FloatTensor<Autodiff<B, C>>,
    direct: FloatTensor<Autodiff<B, C>>,
    geometry: Geometry,
    link: PassLink,
) -> FloatTensor<Autodiff<B, C>> {
    let y_shape = y.primitive().shape();
    let prep = DirectFeedbackBackward
        .prepare::<C>([y.node(), x.node(), direct.node()])
        .compute_bound()
        .stateful();
    match prep {
        OpsKind::Tracked(prep) => {
            let state = (
                direct.primitive().clone(),
                x.primitive().clone(),
                y_shape,
                geometry,
                link,
            );
            prep.finish(state, y.into_primitive())
        }
        OpsKind::UnTracked(prep) => prep.finish(y.into_primitive()),
    }
}

impl<B: DirectFeedbackBackend, C: CheckpointStrategy> DirectFeedbackBackend for Autodiff<B, C> {
    fn direct_error(output: FloatTensor<Self>, cell: ErrorCell) -> FloatTensor<Self> {
        let prep = DirectErrorBackward
            .prepare::<C>([output.node()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(prep) => prep.finish(cell, output.into_primitive()),
            OpsKind::UnTracked(prep) => prep.finish(output.into_primitive()),
        }
    }

    fn direct_targets(signal: FloatTensor<Self>, cell: ErrorCell) -> FloatTensor<Self> {
        cell.put_targets::<Primitive<B>>(signal.primitive().clone());
        signal
    }

    fn direct_feedback_linear(
        y: FloatTensor<Self>,
        x: FloatTensor<Self>,
        direct: FloatTensor<Self>,
        link: PassLink,
    ) -> FloatTensor<Self> {
        autodiff_direct::<B, C>(y, x, direct, Geometry::Linear, link)
    }

    fn direct_feedback_conv2d(
        y: FloatTensor<Self>,
        x: FloatTensor<Self>,
        direct: FloatTensor<Self>,
        options: ConvOptions<2>,
        scale: f32,
        link: PassLink,
    ) -> FloatTensor<Self> {
        autodiff_direct::<B, C>(y, x, direct, Geometry::Conv2d(options, scale), link)
    }
}

type Ext = burn::backend::Dispatch;

/// Marks the network's output (`[batch, classes]`, the logits the loss reads; or
/// `[batch, tokens, classes]`, one prediction a position) for direct feedback alignment: the
/// gradient the loss sends back to it is the error `e` that every DFA layer of the same forward
/// pass receives — a dense layer's input `[batch, tokens, ..., d]` each position's own row of
/// `e`, an input with more middle dimensions than `e` the row of its leading ones. Returns
/// `output` itself when no DFA layer ran in this forward pass, so it costs nothing under the
/// other rules. Needed unless the network's last DFA layer produces the output (see the module
/// docs).
pub fn direct_error<const D: usize>(output: Tensor<D>) -> Tensor<D> {
    match take_pending_cell() {
        Some(cell) => Tensor::from_dispatch(<Ext as DirectFeedbackBackend>::direct_error(
            output.into_dispatch(),
            cell,
        )),
        None => output,
    }
}

/// A dense layer's output `y` (computed from its input detached) joined with its input `x`
/// (`[batch, ..., d_input]`): `x` receives `e·directᵀ`, `direct`: `[d_input, classes]`; a
/// tracked `direct` (DKP) receives `xᵀ·e`. `layer` identifies the layer in its forward pass
/// (the id of one of its parameters; see the module docs).
pub fn direct_feedback_linear<const D: usize>(
    y: Tensor<D>,
    x: Tensor<D>,
    direct: Tensor<2>,
    layer: ParamId,
) -> Tensor<D> {
    direct_feedback_linear_with(y, x, direct, layer, DirectSignal::OutputError)
}

/// [`direct_feedback_linear`] with either signal: the output error `e` (DFA, DKP) or the
/// target [`direct_targets`] gives (DRTP).
pub fn direct_feedback_linear_with<const D: usize>(
    y: Tensor<D>,
    x: Tensor<D>,
    direct: Tensor<2>,
    layer: ParamId,
    signal: DirectSignal,
) -> Tensor<D> {
    assert_eq!(
        direct.dims()[0],
        x.dims()[D - 1],
        "direct_feedback_linear: the direct matrix must be [d_input, classes]"
    );
    let outputs = direct.dims()[1];
    let link = join_pending_cell(layer, signal, outputs);
    Tensor::from_dispatch(<Ext as DirectFeedbackBackend>::direct_feedback_linear(
        y.into_dispatch(),
        x.into_dispatch(),
        direct.into_dispatch(),
        link,
    ))
}

/// A conv layer's output `y` (`[batch, c_out, h_out, w_out]`, computed from its input
/// detached) joined with its input `x` (`[batch, c_in, h, w]`): `x` receives
/// `conv_transpose2d(ē, direct)`, `direct`: `[classes, c_in, kh, kw]`, `ē` the error at every
/// output position (times `scale`: 1 for BioTorch's DFA, `1/(h_out·w_out)` for the mean over
/// positions, [`DirectFeedback::conv_error_scale`](crate::DirectFeedback::conv_error_scale)),
/// with `options`' stride, padding and dilation; a tracked `direct` (DKP) receives the weight
/// gradient of a conv of `x` with `direct`'s shape fed `ē`. `layer` identifies the layer in
/// its forward pass (the id of one of its parameters).
pub fn direct_feedback_conv2d(
    y: Tensor<4>,
    x: Tensor<4>,
    direct: Tensor<4>,
    options: ConvOptions<2>,
    scale: f64,
    layer: ParamId,
) -> Tensor<4> {
    direct_feedback_conv2d_with(
        y,
        x,
        direct,
        options,
        scale,
        layer,
        DirectSignal::OutputError,
    )
}

/// [`direct_feedback_conv2d`] with either signal: the output error `e` (DFA, DKP) or the
/// target [`direct_targets`] gives (DRTP), repeated at every output position alike.
pub fn direct_feedback_conv2d_with(
    y: Tensor<4>,
    x: Tensor<4>,
    direct: Tensor<4>,
    options: ConvOptions<2>,
    scale: f64,
    layer: ParamId,
    signal: DirectSignal,
) -> Tensor<4> {
    assert_eq!(
        direct.dims()[1],
        x.dims()[1],
        "direct_feedback_conv2d: the direct kernel must be [classes, c_in, kh, kw]"
    );
    let outputs = direct.dims()[0];
    let link = join_pending_cell(layer, signal, outputs);
    Tensor::from_dispatch(<Ext as DirectFeedbackBackend>::direct_feedback_conv2d(
        y.into_dispatch(),
        x.into_dispatch(),
        direct.into_dispatch(),
        options,
        scale as f32,
        link,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_devices;
    use crate::ops::tests::{close, rand};
    use crate::ops::{feedback_conv2d, feedback_linear};
    use burn::tensor::activation::relu;
    use burn::tensor::module::{conv_transpose2d, conv2d};
    use burn::tensor::ops::ConvTransposeOptions;

    /// A dense DFA layer as `wt_nn::FeedbackLinear` runs it: the op on the detached input,
    /// then the join under the layer's key.
    fn dense(x: Tensor<2>, w: &Tensor<2>, direct: &Tensor<2>, key: ParamId) -> Tensor<2> {
        let y = feedback_linear(x.clone().detach(), w.clone(), w.clone().detach(), None);
        direct_feedback_linear(y, x, direct.clone(), key)
    }

    /// 5 → 8 → 6 → 3 with ReLUs and loss `Σ ŷ ⊙ u`, so `e = u`: each hidden layer's output
    /// gradient is `(e·Dᵀ of the layer above) ⊙ relu'`, the last layer's is `e`, and the input
    /// receives `e·D1ᵀ`. Checked against that math, and against backprop's differing gradients.
    /// The `D`s are tracked, as DKP's are: each receives `(its layer's input)ᵀ·e`. The same
    /// with the output marked by `direct_error` and without (the last DFA layer, a dense one
    /// with 3 outputs, is then the output).
    #[test]
    fn dense_dfa_gradients_are_the_direct_signals_through_each_layers_derivative() {
        let _serial = crate::device::device_test_lock();
        let runs = test_devices()
            .into_iter()
            .flat_map(|(name, device)| [(name, device.clone(), true), (name, device, false)]);
        for (name, device, marked) in runs {
            let name = format!("{name}, output marked: {marked}");
            let keys = [ParamId::new(), ParamId::new(), ParamId::new()];
            let ad = device.clone().autodiff();
            let leaf = |t: Tensor<2>| Tensor::<2>::from_data(t.to_data(), &ad).require_grad();
            let (x, u) = (rand([4, 5], &device), rand([4, 3], &device));
            let w: Vec<Tensor<2>> = [[5, 8], [8, 6], [6, 3]]
                .into_iter()
                .map(|s| rand(s, &device))
                .collect();
            let d: Vec<Tensor<2>> = [[5, 3], [8, 3], [6, 3]]
                .into_iter()
                .map(|s| Tensor::from_data(rand(s, &device).to_data(), &ad).require_grad())
                .collect();
            let (xt, wt) = (
                leaf(x.clone()),
                w.iter().cloned().map(leaf).collect::<Vec<_>>(),
            );
            let h1 = relu(dense(xt.clone(), &wt[0], &d[0], keys[0]));
            let h2 = relu(dense(h1.clone(), &wt[1], &d[1], keys[1]));
            let out = dense(h2.clone(), &wt[2], &d[2], keys[2]);
            let out = if marked { direct_error(out) } else { out };
            let u_ad = Tensor::<2>::from_data(u.to_data(), &ad);
            let grads = (out * u_ad).sum().backward();

            let dd: Vec<Tensor<2>> = d.iter().map(|t| t.grad(&grads).unwrap()).collect();
            let d: Vec<Tensor<2>> = d.into_iter().map(|t| t.inner()).collect();
            let (h1, h2) = (h1.inner(), h2.inner());
            let relu_grad = |h: &Tensor<2>| h.clone().greater_elem(0.0).float();
            let delta2 = u.clone().matmul(d[2].clone().transpose()) * relu_grad(&h2);
            let delta1 = u.clone().matmul(d[1].clone().transpose()) * relu_grad(&h1);
            let what = |t: &str| format!("{name}: {t}");
            close(
                &what("dW3 = h2ᵀ·e"),
                wt[2].grad(&grads).unwrap(),
                h2.clone().transpose().matmul(u.clone()),
            );
            close(
                &what("dW2"),
                wt[1].grad(&grads).unwrap(),
                h1.clone().transpose().matmul(delta2.clone()),
            );
            close(
                &what("dW1"),
                wt[0].grad(&grads).unwrap(),
                x.clone().transpose().matmul(delta1),
            );
            close(
                &what("dx = e·D1ᵀ"),
                xt.grad(&grads).unwrap(),
                u.clone().matmul(d[0].clone().transpose()),
            );
            close(
                &what("dD1 = xᵀ·e"),
                dd[0].clone(),
                x.clone().transpose().matmul(u.clone()),
            );
            close(
                &what("dD2 = h1ᵀ·e"),
                dd[1].clone(),
                h1.clone().transpose().matmul(u.clone()),
            );
            close(
                &what("dD3 = h2ᵀ·e"),
                dd[2].clone(),
                h2.clone().transpose().matmul(u.clone()),
            );
            // Backprop's dW2 differs: DFA really replaced the error from above.
            let bp_delta2 = u.matmul(w[2].clone().transpose()) * relu_grad(&h2);
            let bp = h1.transpose().matmul(bp_delta2);
            let gap = (wt[1].grad(&grads).unwrap() - bp)
                .abs()
                .max()
                .into_scalar::<f64>();
            assert!(gap > 1e-2, "{name}: DFA's dW2 equals backprop's");
        }
    }

    /// A conv DFA net: x `[2, 2, 6, 6]` → conv 3×3 pad 1 (2→3) → ReLU → conv 3×3 stride 2
    /// pad 1 (3→4) → ReLU → flatten (36) → dense (36→5) → `direct_error`. Each conv's input
    /// receives `conv_transpose2d(ē, D)`, `ē` the error at each of its output positions (or
    /// `e / P`, P positions, with the mean over positions); each tracked `D` (DKP) the weight
    /// gradient of a conv of the layer's input fed `ē`.
    #[test]
    fn conv_dfa_gradients_are_the_direct_signals_through_each_layers_derivative() {
        let _serial = crate::device::device_test_lock();
        // BioTorch's repeated `e`, and wt's mean over positions (`e / P` at each of P).
        for ((name, device), mean) in test_devices()
            .into_iter()
            .flat_map(|d| [(d.clone(), false), (d, true)])
        {
            let scale = |side: usize| {
                if mean {
                    1.0 / (side * side) as f64
                } else {
                    1.0
                }
            };
            let ad = device.clone().autodiff();
            let on_ad = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad);
            let (x, u) = (rand([2, 2, 6, 6], &device), rand([2, 5], &device));
            let (w1, w2, w3) = (
                rand([3, 2, 3, 3], &device),
                rand([4, 3, 3, 3], &device),
                rand([36, 5], &device),
            );
            let (d1, d2, d3) = (
                rand([5, 2, 3, 3], &device),
                rand([5, 3, 3, 3], &device),
                rand([36, 5], &device),
            );
            let o1 = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
            let o2 = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
            let conv = |x: Tensor<4>, w: &Tensor<4>, d: &Tensor<4>, o: &ConvOptions<2>, side| {
                let (w, d) = (on_ad(w).require_grad(), on_ad(d).require_grad());
                let y = feedback_conv2d(
                    x.clone().detach(),
                    w.clone(),
                    w.clone().detach(),
                    None,
                    o.clone(),
                );
                let z =
                    direct_feedback_conv2d(y, x, d.clone(), o.clone(), scale(side), ParamId::new());
                (z, w, d)
            };
            let xt = on_ad(&x).require_grad();
            let (z1, w1t, d1t) = conv(xt.clone(), &w1, &d1, &o1, 6);
            let h1 = relu(z1);
            let (z2, w2t, d2t) = conv(h1.clone(), &w2, &d2, &o2, 3);
            let h2 = relu(z2);
            let w3t = Tensor::<2>::from_data(w3.to_data(), &ad).require_grad();
            let d3t = Tensor::<2>::from_data(d3.to_data(), &ad).require_grad();
            let flat: Tensor<2> = h2.clone().flatten(1, 3);
            let y3 = feedback_linear(
                flat.clone().detach(),
                w3t.clone(),
                w3t.clone().detach(),
                None,
            );
            let out = direct_error(direct_feedback_linear(
                y3,
                flat.clone(),
                d3t.clone(),
                ParamId::new(),
            ));
            let grads = (out * Tensor::<2>::from_data(u.to_data(), &ad))
                .sum()
                .backward();

            let (h1, h2) = (h1.inner(), h2.inner());
            let spread = |hw: usize| {
                (u.clone().reshape([2, 5, 1, 1]).expand([2, 5, hw, hw])).mul_scalar(scale(hw))
            };
            let step = |stride: usize, out_pad: usize| {
                ConvTransposeOptions::new([stride; 2], [1, 1], [out_pad; 2], [1, 1], 1)
            };
            // conv2's output gradient: the dense layer's direct signal, through ReLU.
            let delta2 = u
                .clone()
                .matmul(d3.clone().transpose())
                .reshape([2, 4, 3, 3])
                * h2.greater_elem(0.0).float();
            // conv1's output gradient: conv2's direct signal (3×3 outputs back to 6×6).
            let delta1 = conv_transpose2d(spread(3), d2.clone(), None, step(2, 1))
                * h1.clone().greater_elem(0.0).float();
            // Weight gradients of a plain conv with those output gradients (Burn's autodiff).
            let weight_grad =
                |input: Tensor<4>, w: &Tensor<4>, delta: Tensor<4>, o: &ConvOptions<2>| {
                    let w = on_ad(w).require_grad();
                    let g = (conv2d(on_ad(&input), w.clone(), None, o.clone()) * on_ad(&delta))
                        .sum()
                        .backward();
                    w.grad(&g).unwrap()
                };
            let what = |t: &str| format!("{name}, position mean {mean}: {t}");
            close(
                &what("conv2 dW"),
                w2t.grad(&grads).unwrap(),
                weight_grad(h1.clone(), &w2, delta2, &o2),
            );
            close(
                &what("conv1 dW"),
                w1t.grad(&grads).unwrap(),
                weight_grad(x.clone(), &w1, delta1, &o1),
            );
            close(
                &what("dx"),
                xt.grad(&grads).unwrap(),
                conv_transpose2d(spread(6), d1.clone(), None, step(1, 0)),
            );
            close(
                &what("conv2 dD"),
                d2t.grad(&grads).unwrap(),
                weight_grad(h1, &d2, spread(3), &o2),
            );
            close(
                &what("conv1 dD"),
                d1t.grad(&grads).unwrap(),
                weight_grad(x, &d1, spread(6), &o1),
            );
            close(
                &what("dense dD"),
                d3t.grad(&grads).unwrap(),
                flat.inner().transpose().matmul(u.clone()),
            );
        }
    }

    #[test]
    fn outside_autodiff_and_without_dfa_layers_the_ops_are_identities() {
        let _serial = crate::device::device_test_lock();
        let device = test_devices()[0].1.clone();
        let _ = take_pending_cell();
        let logits = rand([3, 4], &device);
        let same = direct_error(logits.clone());
        close("no DFA layer ran", same, logits.clone());
        let y = direct_feedback_linear(
            logits.clone(),
            rand([3, 2], &device),
            rand([2, 4], &device),
            ParamId::new(),
        );
        close("join outside autodiff", y, logits);
        assert!(
            take_pending_cell().is_some(),
            "the join opened this forward pass's cell"
        );
    }

    /// Two forward passes of the same two DFA layers, then one backward of both losses, with no
    /// `direct_error`: each pass is its own cell (a layer joining twice opens a new one), so
    /// each pass's first layer receives its own pass's `e` (`u_a`, `u_b`): its input gradient
    /// is `e·D1ᵀ` of its own pass.
    #[test]
    fn each_forward_pass_keeps_its_own_output_error() {
        let _serial = crate::device::device_test_lock();
        let device = test_devices()[0].1.clone();
        let ad = device.clone().autodiff();
        let _ = take_pending_cell();
        let on_ad = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &ad);
        let (w1, w2) = (rand([5, 6], &device), rand([6, 3], &device));
        let (d1, d2) = (rand([5, 3], &device), rand([6, 3], &device));
        let keys = [ParamId::new(), ParamId::new()];
        let net = |x: Tensor<2>| {
            let h = relu(dense(x, &on_ad(&w1), &on_ad(&d1), keys[0]));
            dense(h, &on_ad(&w2), &on_ad(&d2), keys[1])
        };
        let (xa, xb) = (rand([4, 5], &device), rand([4, 5], &device));
        let (ua, ub) = (rand([4, 3], &device), rand([4, 3], &device));
        let (xa_t, xb_t) = (on_ad(&xa).require_grad(), on_ad(&xb).require_grad());
        let (out_a, out_b) = (net(xa_t.clone()), net(xb_t.clone()));
        let loss = (out_a * on_ad(&ua)).sum() + (out_b * on_ad(&ub)).sum();
        let grads = loss.backward();
        close(
            "pass a: dx = u_a·D1ᵀ",
            xa_t.grad(&grads).unwrap(),
            ua.matmul(d1.clone().transpose()),
        );
        close(
            "pass b: dx = u_b·D1ᵀ",
            xb_t.grad(&grads).unwrap(),
            ub.matmul(d1.transpose()),
        );
    }

    /// A network whose last DFA layer is a convolution cannot name its output error itself:
    /// without `direct_error` its layers' inputs get zeros and the backward pass leaves a
    /// `MissingOutputError` (the optimizer step's check), taken once; if nobody takes it, the
    /// next DFA forward stops with its message.
    #[test]
    fn an_unmarked_output_that_no_dfa_layer_produces_is_an_error_that_says_what_to_do() {
        let _serial = crate::device::device_test_lock();
        let device = test_devices()[0].1.clone();
        let ad = device.clone().autodiff();
        let _ = take_pending_cell();
        let on_ad = |t: Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad);
        let x = on_ad(rand([2, 2, 4, 4], &device)).require_grad();
        let (w, d) = (
            on_ad(rand([3, 2, 3, 3], &device)),
            on_ad(rand([5, 2, 3, 3], &device)),
        );
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let key = ParamId::new();
        // The logits of a BP classifier on top: the last DFA layer's output is not them.
        let pass = |x: Tensor<4>| {
            let y = feedback_conv2d(
                x.clone().detach(),
                w.clone(),
                w.clone().detach(),
                None,
                o.clone(),
            );
            let z = direct_feedback_conv2d(y, x, d.clone(), o.clone(), 1.0, key);
            z.flatten::<2>(1, 3).slice([0..2, 0..5])
        };
        let grads = pass(x.clone()).sum().backward();
        let dx = x.grad(&grads).expect("the input's gradient, zeros");
        assert_eq!(
            dx.abs().max().into_scalar::<f32>(),
            0.0,
            "the input got an error"
        );
        let missing = take_missing_output_error().unwrap_err();
        assert_eq!(missing.outputs, 5);
        assert!(
            missing
                .to_string()
                .contains("pass the network's output through wt_nn::direct_error"),
            "{missing}"
        );
        assert_eq!(take_missing_output_error(), Ok(()), "taken once");
        // Left untaken, the next DFA forward stops with the message.
        let _ = pass(x.clone()).sum().backward();
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pass(x.clone())));
        let message = next.expect_err("the next forward went on");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("wt_nn::direct_error"), "{message}");
        assert_eq!(take_missing_output_error(), Ok(()));
        let _ = take_pending_cell();
    }

    /// DRTP: each layer's input receives `−s·onehot(y*)` through its `D` (dense: `·Dᵀ`; conv:
    /// the transposed convolution of the signal repeated at every output position), whatever
    /// the output error; `W` learns from the gradient at its output as usual. Without
    /// `direct_targets` the inputs get zeros and the missing targets are an error naming the
    /// call.
    #[test]
    fn drtp_sends_the_targets_through_each_layers_direct_matrix() {
        let _serial = crate::device::device_test_lock();
        for (name, device) in test_devices() {
            eprintln!("drtp on {name}");
            let ad = device.clone().autodiff();
            let _ = take_pending_cell();
            let targets = Tensor::<1, Int>::from_data([0, 2, 1, 2], &ad);
            let signal = Tensor::<2>::from_data(
                [
                    [1.0, 0.0, 0.0],
                    [0.0, 0.0, 1.0],
                    [0.0, 1.0, 0.0],
                    [0.0, 0.0, 1.0],
                ],
                &device,
            )
            .mul_scalar(-0.25);
            // Dense, 3 classes; its own output [4, 5] is not the network's.
            let (x, w, d, up) = (
                rand([4, 6], &ad),
                rand([6, 5], &ad),
                rand([6, 3], &ad),
                rand([4, 5], &ad),
            );
            let key = ParamId::new();
            let run = |with_targets: bool| {
                let (xt, wt) = (x.clone().require_grad(), w.clone().require_grad());
                let y = feedback_linear(xt.clone().detach(), wt.clone(), wt.clone().detach(), None);
                let z = direct_feedback_linear_with(
                    y,
                    xt.clone(),
                    d.clone(),
                    key,
                    DirectSignal::Targets,
                );
                if with_targets {
                    direct_targets(targets.clone(), 0.25);
                }
                let grads = (z * up.clone()).sum().backward();
                (xt.grad(&grads).unwrap(), wt.grad(&grads).unwrap())
            };
            let (dx, dw) = run(true);
            close(
                "dense dx = −s·onehot·Dᵀ",
                dx,
                signal.clone().matmul(d.clone().inner().transpose()),
            );
            close(
                "dense dW = xᵀ·g",
                dw,
                x.clone().inner().transpose().matmul(up.clone().inner()),
            );
            assert_eq!(take_missing_output_error(), Ok(()));
            let (dx, _) = run(false);
            assert_eq!(
                dx.abs().max().into_scalar::<f32>(),
                0.0,
                "no targets, no signal"
            );
            let missing = take_missing_output_error().unwrap_err();
            assert_eq!(
                (missing.outputs, missing.signal),
                (3, DirectSignal::Targets)
            );
            assert!(
                missing.to_string().contains("wt_nn::direct_targets"),
                "{missing}"
            );

            // Conv, stride 2: the signal at each of the 2×2 output positions.
            let x = rand([4, 2, 4, 4], &ad);
            let (w, d) = (rand([3, 2, 3, 3], &ad), rand([3, 2, 3, 3], &ad));
            let o = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
            let xt = x.clone().require_grad();
            let y = feedback_conv2d(xt.clone().detach(), w.clone(), w.detach(), None, o.clone());
            let z = direct_feedback_conv2d_with(
                y,
                xt.clone(),
                d.clone(),
                o,
                1.0,
                key,
                DirectSignal::Targets,
            );
            direct_targets(targets.clone(), 0.25);
            let grads = z.sum().backward();
            let repeated = signal.clone().reshape([4, 3, 1, 1]).expand([4, 3, 2, 2]);
            let want = conv_transpose2d(
                repeated,
                d.inner(),
                None,
                ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1),
            );
            close("conv dx", xt.grad(&grads).unwrap(), want);
            assert_eq!(take_missing_output_error(), Ok(()));
        }
    }
}
