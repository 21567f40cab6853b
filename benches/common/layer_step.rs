//! One layer's training-step work as both layer benchmarks time it (`benches/feedback_layers.rs`
//! and `examples/bench_rules.rs` include this file): forward, a squared-output loss, backward
//! (both feed a tracked input, so it includes the input gradient, `g·B` for a feedback layer),
//! gradients collected per parameter, the rules' per-step work (a gradient-mode mirror's
//! pseudo-gradient, the default mirror's direct update), device sync.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

pub fn step<M: Module, const D: usize>(
    model: &M,
    forward: &impl Fn(&M) -> Tensor<D>,
    device: &Device,
) {
    let loss = forward(model).powi_scalar(2).mean();
    let mut grads = GradientsParams::from_grads(loss.backward(), model);
    wt::add_feedback_gradients(model, &mut grads, 0.1);
    drop(grads);
    // The weight mirror's per-step update (a no-op for other rules), on a clone of the handles.
    drop(wt::mirror_update(model.clone()));
    device.sync().expect("device sync");
}
