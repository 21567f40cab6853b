//! [`FeedbackConv2d`]: Burn's `Conv2d` with explicit feedback weights.

use burn::config::Config;
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use wt_core::{
    Rule, WeightMirror, direct_feedback_conv2d_with, feedback_conv2d_with,
    mirror::conv2d_mirror_correlation,
};

use crate::feedback::init_rule_state;
use crate::hook::FeedbackLayer;
use crate::probe;

/// Configuration of a [`FeedbackConv2d`]: Burn's `Conv2dConfig` plus the learning rule.
#[derive(Config, Debug)]
pub struct FeedbackConv2dConfig {
    /// The number of channels, `[in, out]`.
    pub channels: [usize; 2],
    /// The size of the kernel.
    pub kernel_size: [usize; 2],
    /// The stride of the convolution.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Spacing between kernel elements.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Controls the connections between input and output channels.
    #[config(default = "1")]
    pub groups: usize,
    /// The padding configuration.
    #[config(default = "PaddingConfig2d::Valid")]
    pub padding: PaddingConfig2d,
    /// If bias should be added to the output.
    #[config(default = true)]
    pub bias: bool,
    /// Initialiser of `W` (and of `B` for rules that draw it, with the same fans).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// How the feedback weights are set and learned.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
}

/// A 2-D convolution whose backward pass sends the error through feedback weights `B`:
/// `dx = conv_transpose2d(g, B)` with the layer's stride, padding, dilation and groups.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`, output: `[batch, c_out, h_out, w_out]`
/// - `weight`, `feedback`: `[c_out, c_in / groups, kh, kw]`, `bias`: `[c_out]`
///
/// The fields are private so that the rule and what it stores always agree: read them with the
/// accessors, change the rule with [`set_rule`](Self::set_rule) or [`with_rule`](Self::with_rule).
#[derive(Debug, Clone)]
pub struct FeedbackConv2d {
    /// `W`, `[c_out, c_in / groups, kh, kw]`.
    weight: Param<Tensor<4>>,
    /// `b`, `[c_out]`.
    bias: Option<Param<Tensor<1>>>,
    /// What the rule stores (shape of `W`): `B` (FA, KP, WM), `|R0|` (frSF), or nothing; DFA's
    /// direct kernel, `[outputs, c_in, kh, kw]`.
    feedback: Option<Param<Tensor<4>>>,
    /// Stride of the convolution.
    stride: [usize; 2],
    /// Size of the kernel.
    kernel_size: [usize; 2],
    /// Spacing between kernel elements.
    dilation: [usize; 2],
    /// Controls the connections between input and output channels.
    groups: usize,
    /// The padding configuration.
    padding: PaddingConfig2d,
    /// The learning rule.
    rule: Rule,
    /// Standard deviation of W's initialiser, the scale `s` of the sign-symmetry rules.
    sign_scale: f64,
    /// W's initialiser, from which a rule's `B` is drawn ([`with_rule`](Self::with_rule)).
    initializer: Initializer,
}

crate::feedback_module!(
    FeedbackConv2d,
    rank: 4,
    params: [weight, bias, feedback],
    consts: [stride, kernel_size, dilation, groups, padding, rule, sign_scale, initializer]
);

impl FeedbackConv2dConfig {
    /// Initializes a [`FeedbackConv2d`] on `device`.
    ///
    /// # Panics
    /// If the channels are not divisible by `groups`.
    pub fn init(&self, device: &Device) -> FeedbackConv2d {
        let [c_in, c_out] = self.channels;
        assert!(
            self.groups > 0 && c_in % self.groups == 0 && c_out % self.groups == 0,
            "FeedbackConv2d: channels {:?} must both be divisible by groups = {}",
            self.channels,
            self.groups
        );
        let shape = [
            c_out,
            c_in / self.groups,
            self.kernel_size[0],
            self.kernel_size[1],
        ];
        let k = self.kernel_size[0] * self.kernel_size[1];
        let (fan_in, fan_out) = (c_in / self.groups * k, c_out / self.groups * k);
        let weight: Param<Tensor<4>> =
            self.initializer
                .init_with(shape, Some(fan_in), Some(fan_out), device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([c_out], Some(fan_in), Some(fan_out), device)
        });
        let (feedback, sign_scale) = init_rule_state(
            &self.rule,
            &self.initializer,
            shape,
            (fan_in, fan_out),
            &weight.val(),
            |outputs| direct_shape(c_in, self.kernel_size, outputs),
        );
        FeedbackConv2d {
            weight,
            bias,
            feedback,
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding.clone(),
            rule: self.rule,
            sign_scale,
            initializer: self.initializer.clone(),
        }
    }
}

/// DFA's direct kernel for a convolution: `[outputs, c_in, kh, kw]`, fans
/// `(c_in·kh·kw, outputs·kh·kw)` (BioTorch's, whose Xavier init reads them from that shape).
fn direct_shape(c_in: usize, [kh, kw]: [usize; 2], outputs: usize) -> ([usize; 4], (usize, usize)) {
    ([outputs, c_in, kh, kw], (c_in * kh * kw, outputs * kh * kw))
}

/// `(start, end)` padding that keeps `ceil(size / stride)` outputs, as Burn's `Same` padding.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

impl FeedbackConv2d {
    /// Converts a Burn `Conv2d` (weights kept) into a feedback layer following `rule`. `B` (if
    /// the rule draws one) comes from Burn's default conv initialiser for the same fans.
    pub fn from_conv2d(conv: Conv2d, rule: Rule) -> Self {
        let [c_out, c_in_group, kh, kw] = conv.weight.dims();
        let init = FeedbackConv2dConfig::new([c_in_group * conv.groups, c_out], [kh, kw]);
        FeedbackConv2d {
            weight: conv.weight,
            bias: conv.bias,
            feedback: None,
            stride: conv.stride,
            kernel_size: conv.kernel_size,
            dilation: conv.dilation,
            groups: conv.groups,
            padding: conv.padding,
            rule: Rule::default(),
            sign_scale: 0.0,
            initializer: init.initializer,
        }
        .with_rule(rule)
    }

    /// `W`, `[c_out, c_in / groups, kh, kw]`.
    pub fn weight(&self) -> &Param<Tensor<4>> {
        &self.weight
    }

    /// `b`, `[c_out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Param<Tensor<1>>> {
        self.bias.as_ref()
    }

    /// What the rule stores (shaped like `W`): `B` (FA, KP, WM), `|R0|` (frSF); DFA's direct
    /// kernel, `[outputs, c_in, kh, kw]`; `None` for BP, uSF and brSF.
    pub fn feedback(&self) -> Option<&Param<Tensor<4>>> {
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

    /// The stride, `[height, width]`.
    pub fn stride(&self) -> [usize; 2] {
        self.stride
    }

    /// The kernel size, `[height, width]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        self.kernel_size
    }

    /// The dilation, `[height, width]`.
    pub fn dilation(&self) -> [usize; 2] {
        self.dilation
    }

    /// The number of groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The padding configuration.
    pub fn padding(&self) -> &PaddingConfig2d {
        &self.padding
    }

    /// Puts the layer on `rule` in place (see [`with_rule`](Self::with_rule)).
    pub fn set_rule(&mut self, rule: Rule) {
        *self = self.clone().with_rule(rule);
    }

    /// The same layer (`W`, `b` and geometry kept) on another rule: what the rule stores is
    /// drawn afresh from the layer's initialiser, as [`FeedbackConv2dConfig::init`] would.
    pub fn with_rule(self, rule: Rule) -> Self {
        let [c_out, c_in_group, kh, kw] = self.weight.dims();
        let fans = (c_in_group * kh * kw, c_out / self.groups * kh * kw);
        let c_in = c_in_group * self.groups;
        let (feedback, sign_scale) = init_rule_state(
            &rule,
            &self.initializer,
            [c_out, c_in_group, kh, kw],
            fans,
            &self.weight.val(),
            |outputs| direct_shape(c_in, [kh, kw], outputs),
        );
        FeedbackConv2d {
            feedback,
            rule,
            sign_scale,
            ..self
        }
    }

    /// The convolution options for an input of `height × width`.
    pub fn options(&self, height: usize, width: usize) -> ConvOptions<2> {
        let padding = match &self.padding {
            PaddingConfig2d::Valid => [(0, 0), (0, 0)],
            PaddingConfig2d::Same => [
                same_padding(self.kernel_size[0], self.stride[0], height),
                same_padding(self.kernel_size[1], self.stride[1], width),
            ],
            PaddingConfig2d::Explicit(top, left, bottom, right) => {
                [(*top, *bottom), (*left, *right)]
            }
        };
        ConvOptions::new_with_padding(self.stride, padding, self.dilation, self.groups)
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// - input: `[batch, c_in, h, w]`; output: `[batch, c_out, h_out, w_out]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let [_, _, height, width] = input.dims();
        let options = self.options(height, width);
        let weight = self.weight.val();
        let input = probe::probe_layer_input(input, &self.weight);
        let fb = self.rule.feedback(
            &weight,
            self.feedback.as_ref().map(|p| p.val()),
            self.sign_scale,
        );
        let bias = self.bias.as_ref().map(|b| b.val());
        match (
            self.rule.direct().zip(self.rule.direct_signal()),
            &self.feedback,
        ) {
            // DFA on autodiff: the op never sends an error to its input; the direct signal does.
            (Some((dfa, signal)), Some(direct)) if input.is_autodiff() => {
                let y =
                    feedback_conv2d_with(input.clone().detach(), weight, fb, bias, options.clone());
                let [_, _, h_out, w_out] = y.dims();
                let scale = dfa.conv_error_scale(h_out * w_out);
                direct_feedback_conv2d_with(
                    y,
                    input,
                    direct.val(),
                    options,
                    scale,
                    direct.id,
                    signal,
                )
            }
            _ => feedback_conv2d_with(input, weight, fb, bias, options),
        }
    }

    /// The `B` the backward pass uses now, shaped like `W` (a fresh draw for brSF).
    pub fn feedback_matrix(&self) -> Tensor<4> {
        self.rule.feedback_matrix(
            &self.weight.val(),
            self.feedback.as_ref().map(|p| p.val()),
            self.sign_scale,
        )
    }
}

impl FeedbackLayer<4> for FeedbackConv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }
    fn rule(&self) -> &Rule {
        &self.rule
    }
    fn weight(&self) -> &Param<Tensor<4>> {
        &self.weight
    }
    fn stored(&self) -> Option<&Param<Tensor<4>>> {
        self.feedback.as_ref()
    }
    fn stored_mut(&mut self) -> Option<&mut Param<Tensor<4>>> {
        self.feedback.as_mut()
    }
    fn sign_scale(&self) -> f64 {
        self.sign_scale
    }
    /// One weight-mirror correlation for `weight` with this layer's stride, dilation, groups,
    /// over the response map [`WeightMirror::conv_output_side`] gives this layer's fan-in.
    fn mirror_correlation(&self, weight: Tensor<4>, wm: &WeightMirror) -> Tensor<4> {
        let [_, c_in_group, kh, kw] = weight.dims();
        conv2d_mirror_correlation(
            weight,
            self.stride,
            self.dilation,
            self.groups,
            wm.sigma,
            wm.mirror_batch,
            wm.conv_output_side(c_in_group * kh * kw),
        )
    }
    fn set_rule(&mut self, rule: Rule) {
        FeedbackConv2d::set_rule(self, rule)
    }
}

impl From<Conv2d> for FeedbackConv2d {
    /// A backprop feedback layer with the same weights; use [`FeedbackConv2d::from_conv2d`] to
    /// pick another rule.
    fn from(conv: Conv2d) -> Self {
        Self::from_conv2d(conv, Rule::default())
    }
}
