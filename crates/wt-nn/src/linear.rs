//! [`FeedbackLinear`]: Burn's `Linear` with explicit feedback weights.

use burn::config::Config;
use burn::module::Param;
use burn::nn::{Initializer, Linear};
use burn::tensor::{Device, Tensor};
use wt_core::{
    Rule, WeightMirror, direct_feedback_linear_with, feedback_linear_with,
    mirror::linear_correlation,
};

use crate::feedback::init_rule_state;
use crate::hook::FeedbackLayer;
use crate::probe;

/// Configuration of a [`FeedbackLinear`]: Burn's `LinearConfig` plus the learning rule.
///
/// `W` and `B` always use Burn's default row layout (`[d_input, d_output]`, as in records);
/// Burn's `layout: LinearLayout::Col` option is not offered, because Burn 0.22 checks a loaded
/// record against the parameter's current shape before its load mapper transposes it, so a
/// column-layout layer whose weights were already materialised cannot load its own record.
#[derive(Config, Debug)]
pub struct FeedbackLinearConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the output features.
    pub d_output: usize,
    /// If a bias should be applied during the linear transformation.
    #[config(default = true)]
    pub bias: bool,
    /// Initialiser of `W` (and of `B` for rules that draw it, with the same fans).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// How the feedback weights are set and learned.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
}

/// A linear layer whose backward pass sends the error through feedback weights `B`.
///
/// Forward is Burn's `Linear`: `y = x·W + b`. Backward: `dx = g·Bᵀ`, `dW = xᵀ·g`, `db = Σ g`,
/// where `B` is given by the layer's rule (see `docs/rules.md`).
///
/// # Shapes
/// - input: `[..., d_input]`, output: `[..., d_output]`
/// - `weight`, `feedback`: `[d_input, d_output]` (Burn's layout), `bias`: `[d_output]`
///
/// The fields are private so that the rule and what it stores always agree: read them with the
/// accessors, change the rule with [`set_rule`](Self::set_rule) or [`with_rule`](Self::with_rule).
#[derive(Debug, Clone)]
pub struct FeedbackLinear {
    /// `W`, `[d_input, d_output]`.
    weight: Param<Tensor<2>>,
    /// `b`, `[d_output]`.
    bias: Option<Param<Tensor<1>>>,
    /// What the rule stores, `[d_input, d_output]`: `B` (FA, KP, WM), `|R0|` (frSF), or
    /// nothing (BP, uSF, brSF); DFA's direct matrix, `[d_input, outputs]`. Saved with the
    /// module.
    feedback: Option<Param<Tensor<2>>>,
    /// The learning rule.
    rule: Rule,
    /// Standard deviation of W's initialiser, the scale `s` of the sign-symmetry rules.
    sign_scale: f64,
    /// W's initialiser, from which a rule's `B` is drawn ([`with_rule`](Self::with_rule)).
    initializer: Initializer,
}

crate::feedback_module!(
    FeedbackLinear,
    rank: 2,
    params: [weight, bias, feedback],
    consts: [rule, sign_scale, initializer]
);

impl FeedbackLinearConfig {
    /// Initializes a [`FeedbackLinear`] on `device`.
    pub fn init(&self, device: &Device) -> FeedbackLinear {
        let shape = [self.d_input, self.d_output];
        let fans = (Some(self.d_input), Some(self.d_output));
        let weight: Param<Tensor<2>> = self.initializer.init_with(shape, fans.0, fans.1, device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.d_output], fans.0, fans.1, device)
        });
        let (feedback, sign_scale) = init_rule_state(
            &self.rule,
            &self.initializer,
            shape,
            (self.d_input, self.d_output),
            &weight.val(),
            |outputs| direct_shape(self.d_input, outputs),
        );
        FeedbackLinear {
            weight,
            bias,
            feedback,
            rule: self.rule,
            sign_scale,
            initializer: self.initializer.clone(),
        }
    }
}

/// DFA's direct matrix for a dense layer: `[d_input, outputs]`, fans `(d_input, outputs)`.
fn direct_shape(d_input: usize, outputs: usize) -> ([usize; 2], (usize, usize)) {
    ([d_input, outputs], (d_input, outputs))
}

impl FeedbackLinear {
    /// Converts a Burn `Linear` (weights kept) into a feedback layer following `rule`. `B` (if
    /// the rule draws one) comes from Burn's default linear initialiser for the same fans.
    pub fn from_linear(linear: Linear, rule: Rule) -> Self {
        let [d_input, d_output] = linear.weight.dims();
        FeedbackLinear {
            weight: linear.weight,
            bias: linear.bias,
            feedback: None,
            rule: Rule::default(),
            sign_scale: 0.0,
            initializer: FeedbackLinearConfig::new(d_input, d_output).initializer,
        }
        .with_rule(rule)
    }

    /// `W`, `[d_input, d_output]`.
    pub fn weight(&self) -> &Param<Tensor<2>> {
        &self.weight
    }

    /// `b`, `[d_output]`, if the layer has one.
    pub fn bias(&self) -> Option<&Param<Tensor<1>>> {
        self.bias.as_ref()
    }

    /// What the rule stores, `[d_input, d_output]`: `B` (FA, KP, WM), `|R0|` (frSF); DFA's
    /// direct matrix, `[d_input, outputs]`; `None` for BP, uSF and brSF.
    pub fn feedback(&self) -> Option<&Param<Tensor<2>>> {
        self.feedback.as_ref()
    }

    /// The layer's rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The scale `s` of the sign-symmetry rules: the std of `W`'s initialiser.
    pub fn sign_scale(&self) -> f64 {
        self.sign_scale
    }

    /// `W`'s initialiser, from which a rule's `B` is drawn.
    pub fn initializer(&self) -> &Initializer {
        &self.initializer
    }

    /// Puts the layer on `rule` in place (see [`with_rule`](Self::with_rule)).
    pub fn set_rule(&mut self, rule: Rule) {
        *self = self.clone().with_rule(rule);
    }

    /// The same layer (`W`, `b` kept) on another rule: what the rule stores is drawn afresh
    /// from the layer's initialiser, as [`FeedbackLinearConfig::init`] would draw it.
    pub fn with_rule(self, rule: Rule) -> Self {
        let [d_input, d_output] = self.weight.dims();
        let (feedback, sign_scale) = init_rule_state(
            &rule,
            &self.initializer,
            [d_input, d_output],
            (d_input, d_output),
            &self.weight.val(),
            |outputs| direct_shape(d_input, outputs),
        );
        FeedbackLinear {
            feedback,
            rule,
            sign_scale,
            ..self
        }
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// - input: `[..., d_input]`; output: `[..., d_output]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let weight = self.weight.val();
        let input = probe::probe_layer_input(input, &self.weight);
        let fb = self.rule.feedback(
            &weight,
            self.feedback.as_ref().map(|p| p.val()),
            self.sign_scale,
        );
        let bias = self.bias.as_ref().map(|b| b.val());
        match (self.rule.direct_signal(), &self.feedback) {
            // DFA on autodiff: the op never sends an error to its input; the direct signal does.
            (Some(signal), Some(direct)) if input.is_autodiff() => {
                let y = feedback_linear_with(input.clone().detach(), weight, fb, bias);
                direct_feedback_linear_with(y, input, direct.val(), direct.id, signal)
            }
            _ => feedback_linear_with(input, weight, fb, bias),
        }
    }

    /// The `B` the backward pass uses now, `[d_input, d_output]` (a fresh draw for brSF).
    pub fn feedback_matrix(&self) -> Tensor<2> {
        self.rule.feedback_matrix(
            &self.weight.val(),
            self.feedback.as_ref().map(|p| p.val()),
            self.sign_scale,
        )
    }
}

impl FeedbackLayer<2> for FeedbackLinear {
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn rule(&self) -> &Rule {
        &self.rule
    }
    fn weight(&self) -> &Param<Tensor<2>> {
        &self.weight
    }
    fn stored(&self) -> Option<&Param<Tensor<2>>> {
        self.feedback.as_ref()
    }
    fn stored_mut(&mut self) -> Option<&mut Param<Tensor<2>>> {
        self.feedback.as_mut()
    }
    fn sign_scale(&self) -> f64 {
        self.sign_scale
    }
    /// One weight-mirror correlation with [`WeightMirror::dense_samples`] noise rows.
    fn mirror_correlation(&self, weight: Tensor<2>, wm: &WeightMirror) -> Tensor<2> {
        let fan_in = weight.dims()[0];
        linear_correlation(weight, wm.sigma, wm.dense_samples(fan_in))
    }
    fn set_rule(&mut self, rule: Rule) {
        FeedbackLinear::set_rule(self, rule)
    }
}

impl From<Linear> for FeedbackLinear {
    /// A backprop feedback layer with the same weights; use [`FeedbackLinear::from_linear`] to
    /// pick another rule.
    fn from(linear: Linear) -> Self {
        Self::from_linear(linear, Rule::default())
    }
}
