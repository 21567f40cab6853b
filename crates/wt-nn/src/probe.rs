//! Error probes for [`gradient_alignment`](crate::gradient_alignment): while a forward pass
//! runs under [`record`], each feedback layer adds a zero tensor to its input (and each block
//! marked with [`probe_block_input`](crate::probe_block_input) to the block's input), whose
//! gradient after backward is the error that reached that point. Outside [`record`] the
//! layers' forwards are untouched.

use std::cell::RefCell;

use burn::module::ParamId;
use burn::tensor::Tensor;

/// One input-gradient probe of a forward pass.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// The layer's weight (for a block probe, the block's first layer's).
    pub weight_id: ParamId,
    /// At a layer's own input, or at the input of the block the layer opens.
    pub at_block_input: bool,
    /// The zero tensor added, flattened.
    pub tensor: Tensor<1>,
}

thread_local! {
    static PROBES: RefCell<Option<Vec<Probe>>> = const { RefCell::new(None) };
}

/// Runs `forward` recording a probe at every feedback layer's input; returns its result and
/// the probes in forward order.
pub(crate) fn record<R>(forward: impl FnOnce() -> R) -> (R, Vec<Probe>) {
    /// Stops recording even when the forward panics.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            PROBES.with(|p| p.borrow_mut().take());
        }
    }
    let previous = PROBES.with(|p| p.borrow_mut().replace(Vec::new()));
    assert!(
        previous.is_none(),
        "wt: error probes are already being recorded on this thread"
    );
    let stop = Stop;
    let out = forward();
    let probes = PROBES.with(|p| p.borrow_mut().take()).unwrap_or_default();
    drop(stop);
    (out, probes)
}

/// While recording, adds a zero probe to `x` (a feedback layer's input, or with
/// `at_block_input` a block's) so that its gradient is the error reaching `x`.
pub(crate) fn probe<const D: usize>(
    x: Tensor<D>,
    weight_id: ParamId,
    at_block_input: bool,
) -> Tensor<D> {
    let recording = PROBES.with(|p| p.borrow().is_some());
    if !recording || !x.is_autodiff() {
        return x;
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let tensor = Tensor::<1>::zeros([n], &x.device()).require_grad();
    PROBES.with(|p| {
        if let Some(probes) = p.borrow_mut().as_mut() {
            probes.push(Probe {
                weight_id,
                at_block_input,
                tensor: tensor.clone(),
            })
        }
    });
    x + tensor.reshape(dims)
}

/// Marks `x` as the input of the feedback layer whose weight is `weight`: in
/// [`gradient_alignment`](crate::gradient_alignment)'s probe passes the error reaching `x` is
/// measured (the layer's error angle); outside them `x` is returned untouched. A feedback
/// layer's forward calls it on its input first, as [`FeedbackLinear`](crate::FeedbackLinear)
/// and [`FeedbackConv2d`](crate::FeedbackConv2d) do.
pub fn probe_layer_input<const D: usize, const W: usize>(
    x: Tensor<D>,
    weight: &burn::module::Param<Tensor<W>>,
) -> Tensor<D> {
    probe(x, weight.id, false)
}
