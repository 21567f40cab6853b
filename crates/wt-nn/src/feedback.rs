//! Rank-generic pieces of every feedback layer (wt's and yours): creating what a rule stores,
//! and replacing a stored value.

use burn::module::Param;
use burn::tensor::Tensor;
use wt_core::Rule;

/// What a layer keeps for its rule: the stored feedback tensor (a parameter: saved and loaded
/// with the module, moved between devices; it requires grad only for Kolen-Pollack, whose `B`
/// receives W's gradient) and the sign-symmetry scale `s`, the std of W's initialiser for the
/// given fans (measured from `weight` for initialisers without a closed form).
///
/// `direct` gives, for a network of `outputs` outputs, the shape and fans of DFA's direct
/// matrix, drawn Xavier-uniform as BioTorch draws it.
///
/// `shape` is `W`'s, `(fan_in, fan_out)` its initialiser's fans, `weight` its value (for the
/// rules that derive what they store from `W`, and its device).
///
/// # Panics
/// For DFA whose `outputs` is still 0 (the model did not call `Rule::with_outputs`): the
/// message says so.
pub fn init_rule_state<const D: usize>(
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
    let stored = rule
        .init_storage(draw, weight, scale)
        .map(|t| Param::from_tensor(t.detach()).set_require_grad(rule.feedback_is_trained()));
    (stored, scale)
}

/// Replaces a tensor's value by `value` (computed outside autodiff), keeping whether it was on
/// autodiff and whether it required grad.
pub fn replace_value<const D: usize>(old: Tensor<D>, value: Tensor<D>) -> Tensor<D> {
    let require_grad = old.is_require_grad();
    if old.is_autodiff() {
        Tensor::from_inner(value).set_require_grad(require_grad)
    } else {
        value
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
