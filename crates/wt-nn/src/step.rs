//! The rules' per-step work on every [`FeedbackLinear`](crate::FeedbackLinear) and
//! [`FeedbackConv2d`](crate::FeedbackConv2d) of any Burn model, however nested, with no list
//! of layers: the gradients of `B` that backward does not give, and the weight mirror's
//! updates. Each is one layer operation run over the model through wt-nn's layer hook.
//!
//! A training step with every rule (what [`FeedbackOptimizer::step`](crate::FeedbackOptimizer::step) does):
//! ```text
//! let loss = model.forward_loss(batch);
//! let mut grads = GradientsParams::from_grads(loss.backward(), &model);
//! wt_nn::add_feedback_gradients(&model, &mut grads, lr / (1.0 - momentum)); // WM, Gradient
//! model = optim.step(lr, model, grads);
//! model = wt_nn::mirror_update(model); // WM, Direct (the default)
//! ```

use burn::module::Module;
use burn::optim::GradientsParams;
use wt_core::{MirrorUpdate, Rule};

use crate::feedback::replace_value;
use crate::hook::{
    FeedbackLayer, LayerMapper, LayerVisitor, map_layers, mirror_correlations, visit_layers,
};

/// Adds the gradients of `B` that do not come out of backward: the weight mirror's
/// pseudo-gradient `−(η_B/η)·ξᵀ(ξW)/n + (λ_B/η)·B` for every weight-mirror layer whose
/// update is [`MirrorUpdate::Gradient`], so the optimizer's
/// step of size `learning_rate` (η) applies the mirror update (with momentum β, pass
/// `lr / (1 − β)`, the step size momentum converges to), and Kolen-Pollack's decay on `B`
/// alone, `λ_K·B` ([`KolenPollack::feedback_decay`](wt_core::KolenPollack), when not 0), added
/// to the W gradient its `B` received in backward. Other rules need nothing here: brSF
/// redraws in forward, and [`Direct`](wt_core::MirrorUpdate::Direct) mirrors update in
/// [`mirror_update`].
pub fn add_feedback_gradients<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    learning_rate: f64,
) {
    let op = FeedbackGradients {
        learning_rate,
        grads: std::mem::take(grads),
    };
    *grads = visit_layers(model, op).grads;
}

/// [`add_feedback_gradients`] as an operation: each layer adds its extra `B` gradient.
struct FeedbackGradients {
    learning_rate: f64,
    grads: GradientsParams,
}

impl LayerVisitor for FeedbackGradients {
    fn visit<const D: usize>(&mut self, _path: &str, layer: &dyn FeedbackLayer<D>) {
        let Some(stored) = layer.stored() else {
            return;
        };
        let g = match layer.rule() {
            Rule::WeightMirror(wm) if wm.update == MirrorUpdate::Gradient => {
                let corrs = mirror_correlations(layer, wm, wm.mirror_steps);
                wm.pseudo_gradient(stored.val().inner(), corrs, self.learning_rate)
            }
            // KP's decay on B alone: λ_K·B joins the W gradient B received in backward.
            Rule::KolenPollack(kp) if kp.feedback_decay != 0.0 => {
                stored.val().inner().mul_scalar(kp.feedback_decay)
            }
            _ => return,
        };
        let g = match self.grads.remove::<D>(stored.id) {
            Some(existing) => g + existing,
            None => g,
        };
        self.grads.register(stored.id, g);
    }
}

/// Applies `steps` plain weight-mirror updates `B ← (1 − λ_B)·B + η_B·ξᵀ(ξW)/n` to every
/// weight-mirror layer (a warm-up before training, or mirror mode on its own). Other layers
/// are returned unchanged.
pub fn mirror_steps<M: Module>(model: M, steps: usize) -> M {
    map_layers(model, MirrorUpdates { steps: Some(steps) }).0
}

/// The weight mirror's per-step update: every weight-mirror layer whose update is
/// [`MirrorUpdate::Direct`] (the default) runs its own
/// `mirror_steps` plain updates on the current `W`. Call it after each optimizer step; other
/// layers, and mirrors fed through [`add_feedback_gradients`], are returned unchanged.
pub fn mirror_update<M: Module>(model: M) -> M {
    map_layers(model, MirrorUpdates { steps: None }).0
}

/// Plain mirror updates of `B`: `Some(k)` runs `k` on every weight-mirror layer (warm-up);
/// `None` runs each [`MirrorUpdate::Direct`] layer's own `mirror_steps` (the per-step update).
struct MirrorUpdates {
    steps: Option<usize>,
}

impl LayerMapper for MirrorUpdates {
    fn map<const D: usize>(&mut self, _path: &str, layer: &mut dyn FeedbackLayer<D>) {
        let Rule::WeightMirror(wm) = *layer.rule() else {
            return;
        };
        let steps = match self.steps {
            Some(k) => k,
            None if wm.update == MirrorUpdate::Direct => wm.mirror_steps,
            None => return,
        };
        let corrs = mirror_correlations(layer, &wm, steps);
        if let Some(stored) = layer.stored_mut() {
            *stored = stored.clone().map(|b| {
                let updated = wm.apply(b.clone().inner(), corrs);
                replace_value(b, updated)
            });
        }
    }
}
