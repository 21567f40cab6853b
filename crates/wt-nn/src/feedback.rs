//! Rank-generic pieces shared by [`crate::FeedbackLinear`] and [`crate::FeedbackConv2d`]:
//! creating the stored feedback tensor and taking part in the model-wide passes.

use burn::module::Param;
use burn::tensor::Tensor;
use wt_core::{MirrorUpdate, Rule, WeightMirror};

use crate::pass::{self, LayerSnapshot, Pass};

/// What a layer keeps for its rule: the stored feedback tensor (a parameter: saved and loaded
/// with the module, moved between devices; it requires grad only for Kolen-Pollack, whose `B`
/// receives W's gradient) and the sign-symmetry scale `s`, the std of W's initialiser for the
/// given fans (measured from `weight` for initialisers without a closed form).
///
/// `direct` gives, for a network of `outputs` outputs, the shape and fans of DFA's direct
/// matrix, drawn Xavier-uniform as BioTorch draws it.
///
/// # Panics
/// For DFA whose `outputs` is still 0 (the model did not call `Rule::with_outputs`).
pub(crate) fn init_rule_state<const D: usize>(
    rule: &Rule,
    initializer: &burn::nn::Initializer,
    shape: [usize; D],
    (fan_in, fan_out): (usize, usize),
    weight: &Tensor<D>,
    direct: impl FnOnce(usize) -> ([usize; D], (usize, usize)),
) -> (Option<Param<Tensor<D>>>, f64) {
    let scale = initializer_std(initializer, fan_in, fan_out).unwrap_or_else(|| rms(weight));
    if let Some(dfa) = rule.direct() {
        assert!(
            dfa.outputs > 0,
            "direct feedback alignment needs the network's number of outputs: build the \
             layer with rule.with_outputs(classes) (the zoo's models do)"
        );
        let (shape, (fan_in, fan_out)) = direct(dfa.outputs);
        let matrix = burn::nn::Initializer::XavierUniform { gain: 1.0 }.init_with::<D, _>(
            shape,
            Some(fan_in),
            Some(fan_out),
            &weight.device(),
        );
        return (
            Some(matrix.set_require_grad(rule.feedback_is_trained())),
            scale,
        );
    }
    let draw = || {
        initializer
            .init_with::<D, _>(shape, Some(fan_in), Some(fan_out), &weight.device())
            .val()
    };
    let stored = rule.init_storage(draw, weight, scale).map(|t| {
        Param::from_tensor(t.detach()).set_require_grad(rule.feedback_receives_weight_gradient())
    });
    (stored, scale)
}

/// Replaces a tensor's value by `value` (computed outside autodiff), keeping whether it was on
/// autodiff and whether it required grad.
fn replace_value<const D: usize>(old: Tensor<D>, value: Tensor<D>) -> Tensor<D> {
    let require_grad = old.is_require_grad();
    if old.is_autodiff() {
        Tensor::from_inner(value).set_require_grad(require_grad)
    } else {
        value
    }
}

/// Draws `steps` mirror correlations for a weight-mirror layer.
fn mirror_correlations<const D: usize>(
    weight: &Param<Tensor<D>>,
    wm: &WeightMirror,
    steps: usize,
    correlation: &impl Fn(Tensor<D>, &WeightMirror) -> Tensor<D>,
) -> Vec<Tensor<D>> {
    (0..steps)
        .map(|_| correlation(weight.val().inner(), wm))
        .collect()
}

/// Mirror pass: plain weight-mirror updates of `B` (as many as the pass says, or the layer's
/// own `mirror_steps` when it is a [`MirrorUpdate::Direct`] layer in a per-step pass).
/// `correlation` draws one mirror correlation `ξᵀ(ξW)/n` (outside autodiff) for the weight.
pub(crate) fn on_map<const D: usize>(
    rule: &Rule,
    weight: &Param<Tensor<D>>,
    feedback: Option<Param<Tensor<D>>>,
    correlation: impl Fn(Tensor<D>, &WeightMirror) -> Tensor<D>,
) -> Option<Param<Tensor<D>>> {
    let (Some(wm), Some(stored)) = (rule.weight_mirror(), feedback.as_ref()) else {
        return feedback;
    };
    let Some(steps) = pass::current(|p| match p {
        Some(Pass::Mirror { steps: Some(k) }) => Some(*k),
        Some(Pass::Mirror { steps: None }) if wm.update == MirrorUpdate::Direct => {
            Some(wm.mirror_steps)
        }
        _ => None,
    }) else {
        return feedback;
    };
    let corrs = mirror_correlations(weight, wm, steps, &correlation);
    Some(stored.clone().map(|b| {
        let updated = wm.apply(b.clone().inner(), corrs);
        replace_value(b, updated)
    }))
}

/// Step pass (weight-mirror pseudo-gradients) and report pass (W and the current B).
pub(crate) fn on_visit<const D: usize>(
    kind: &'static str,
    rule: &Rule,
    weight: &Param<Tensor<D>>,
    feedback: Option<&Param<Tensor<D>>>,
    scale: f64,
    correlation: impl Fn(Tensor<D>, &WeightMirror) -> Tensor<D>,
) {
    enum Todo {
        Nothing,
        Step(f64),
        Report,
    }
    let todo = pass::current(|p| match p {
        Some(Pass::Step { learning_rate, .. }) => Todo::Step(*learning_rate),
        Some(Pass::Report { .. }) => Todo::Report,
        _ => Todo::Nothing,
    });
    match todo {
        Todo::Nothing => {}
        Todo::Step(learning_rate) => {
            let Some(stored) = feedback else {
                return;
            };
            let g = match rule {
                Rule::WeightMirror(wm) if wm.update == MirrorUpdate::Gradient => {
                    let corrs = mirror_correlations(weight, wm, wm.mirror_steps, &correlation);
                    wm.pseudo_gradient(stored.val().inner(), corrs, learning_rate)
                }
                // KP's decay on B alone: λ_K·B joins the W gradient B received in backward.
                Rule::KolenPollack(kp) if kp.feedback_decay != 0.0 => {
                    stored.val().inner().mul_scalar(kp.feedback_decay)
                }
                _ => return,
            };
            pass::current(|p| {
                if let Some(Pass::Step { grads, .. }) = p {
                    let g = match grads.remove::<D>(stored.id) {
                        Some(existing) => g + existing,
                        None => g,
                    };
                    grads.register(stored.id, g);
                }
            });
        }
        Todo::Report => {
            let w = weight.val().inner();
            let stored = feedback.map(|p| p.val().inner());
            // DFA reports its direct matrix, of its own shape (no angle to W).
            let b = match (rule.direct(), stored) {
                (Some(_), Some(direct)) => direct,
                (_, stored) => rule.feedback_matrix(&w, stored, scale),
            };
            let snapshot = LayerSnapshot {
                path: pass::report_path(),
                kind,
                rule: rule.name(),
                weight_id: weight.id,
                weight_dims: w.dims().to_vec(),
                weight: w.flatten(0, D - 1),
                feedback: b.inner().flatten(0, D - 1),
                stored_feedback: feedback.map_or(0, |p| p.shape().num_elements()),
            };
            pass::current(|p| {
                if let Some(Pass::Report { layers, .. }) = p {
                    layers.push(snapshot)
                }
            });
        }
    }
}

/// The rule a layer runs with now: its own, or backprop during the reference half of an
/// error-alignment measurement.
pub(crate) fn effective_rule(rule: &Rule) -> Rule {
    if pass::force_backprop() {
        Rule::Backprop(wt_core::Backprop)
    } else {
        *rule
    }
}

/// Standard deviation of a Burn initialiser for the given fans; `None` when it has none that
/// depends only on the fans (orthogonal), in which case the caller measures W.
fn initializer_std(init: &burn::nn::Initializer, fan_in: usize, fan_out: usize) -> Option<f64> {
    use burn::nn::Initializer as I;
    let fan = |fan_out_only: bool| if fan_out_only { fan_out } else { fan_in } as f64;
    Some(match init {
        I::Constant { value } => value.abs(),
        I::Ones => 1.0,
        I::Zeros => 0.0,
        I::Uniform { min, max } => (max - min) / 12f64.sqrt(),
        I::Normal { std, .. } => *std,
        I::KaimingUniform { gain, fan_out_only } | I::KaimingNormal { gain, fan_out_only } => {
            gain / fan(*fan_out_only).sqrt()
        }
        I::XavierUniform { gain } | I::XavierNormal { gain } => {
            gain * (2.0 / (fan_in + fan_out) as f64).sqrt()
        }
        _ => return None,
    })
}

/// Root mean square of a tensor (the std of a zero-mean initialiser, measured).
fn rms<const D: usize>(t: &Tensor<D>) -> f64 {
    let n = t.shape().num_elements().max(1) as f64;
    let ss: f64 = t.clone().inner().powi_scalar(2).sum().into_scalar::<f64>();
    (ss / n).sqrt()
}
