//! One layer's training-step work as both layer benchmarks time it (`benches/feedback_layers.rs`
//! and `examples/bench_rules.rs` include this file): forward, a squared-output loss, backward
//! (both feed a tracked input, so it includes the input gradient, `g·B` for a feedback layer),
//! gradients collected per parameter (and a 10-output head marked with `direct_error`, whose
//! error DFA sends to the input, and labels for DRTP's target signal), the rules' per-step work (a gradient-mode mirror's
//! pseudo-gradient, the default mirror's direct update), device sync.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

pub fn step<M: Module, const D: usize>(
    model: &M,
    forward: &impl Fn(&M) -> Tensor<D>,
    device: &Device,
) {
    let y = forward(model);
    // A 10-output head marked as the network's output, as a classifier's logits would be: the
    // error direct feedback alignment sends to the layer's input (a no-op for other rules).
    let flat = y.clone().flatten::<2>(1, D - 1);
    let [n, features] = flat.dims();
    let head = wt::direct_error(flat.narrow(1, 0, features.min(10)));
    // Labels for DRTP's target signal (a no-op for the other rules): class i mod 10.
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &y.device());
    wt::direct_targets(labels, 1.0 / n.max(1) as f64);
    let loss = y.powi_scalar(2).mean() + head.powi_scalar(2).mean();
    let mut grads = GradientsParams::from_grads(loss.backward(), model);
    wt::add_feedback_gradients(model, &mut grads, 0.1);
    drop(grads);
    // The weight mirror's per-step update (a no-op for other rules), on a clone of the handles.
    drop(wt::mirror_update(model.clone()));
    device.sync().expect("device sync");
}
