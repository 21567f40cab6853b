//! [`FeedbackTransformerBlock`]: a pre-norm transformer block (attention and a two-layer
//! GELU MLP, each behind Burn's `LayerNorm` and inside a residual) built from feedback layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Bool, Device, Tensor};

use crate::{
    FeedbackLinear, FeedbackLinearConfig, FeedbackMultiHeadAttention,
    FeedbackMultiHeadAttentionConfig, Rule,
};

/// Configuration of a [`FeedbackTransformerBlock`].
#[derive(Config, Debug)]
pub struct FeedbackTransformerBlockConfig {
    /// Width of the tokens.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Hidden width of the MLP (usually 2–4 × `d_model`).
    pub d_ff: usize,
    /// Initialiser of every feedback layer's `W` (and of `B` where the rule draws it).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// Learning rule of the six feedback layers (four projections, two MLP layers).
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Layer norm's ε.
    #[config(default = 1e-5)]
    pub norm_epsilon: f64,
}

/// The block's MLP: `fc2(gelu(fc1(x)))`.
///
/// # Shapes
/// - input: `[..., d_model]`, hidden `[..., d_ff]`, output: `[..., d_model]`
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `d_model → d_ff`.
    pub fc1: FeedbackLinear,
    /// `d_ff → d_model`.
    pub fc2: FeedbackLinear,
}

impl FeedForward {
    /// `fc2(gelu(fc1(x)))`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

/// A pre-norm transformer block: `h = x + attn(norm1(x), mask)`, `y = h + mlp(norm2(h))`.
/// Layer norm, GELU and the residual adds have no weights to transport and keep their exact
/// gradients.
///
/// # Shapes
/// - input: `[batch, tokens, d_model]`, output: `[batch, tokens, d_model]`
#[derive(Module, Debug)]
pub struct FeedbackTransformerBlock {
    /// Layer norm before the attention.
    pub norm1: LayerNorm,
    /// Self-attention.
    pub attn: FeedbackMultiHeadAttention,
    /// Layer norm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: FeedForward,
}

impl FeedbackTransformerBlockConfig {
    /// Initializes the block on `device`.
    pub fn init(&self, device: &Device) -> FeedbackTransformerBlock {
        let linear = |d_in, d_out| {
            FeedbackLinearConfig::new(d_in, d_out)
                .with_initializer(self.initializer.clone())
                .with_rule(self.rule)
                .init(device)
        };
        let norm = || {
            LayerNormConfig::new(self.d_model)
                .with_epsilon(self.norm_epsilon)
                .init(device)
        };
        FeedbackTransformerBlock {
            norm1: norm(),
            attn: FeedbackMultiHeadAttentionConfig::new(self.d_model, self.n_heads)
                .with_initializer(self.initializer.clone())
                .with_rule(self.rule)
                .init(device),
            norm2: norm(),
            mlp: FeedForward {
                fc1: linear(self.d_model, self.d_ff),
                fc2: linear(self.d_ff, self.d_model),
            },
        }
    }
}

impl FeedbackTransformerBlock {
    /// The block on `x`, `[batch, tokens, d_model]`; `mask` as
    /// [`FeedbackMultiHeadAttention::forward`]'s.
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<3, Bool>>) -> Tensor<3> {
        let h = x.clone() + self.attn.forward(self.norm1.forward(x), mask);
        h.clone() + self.mlp.forward(self.norm2.forward(h))
    }
}
