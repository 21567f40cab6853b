//! Token inputs for transformers: [`PatchEmbedding`] (images to patch tokens through a
//! feedback convolution) and [`PositionEmbedding`] (learned or sinusoidal positions).
//!
//! A token embedding needs no module of wt's: Burn's `Embedding` is a table lookup whose input
//! is integers, which receive no gradient, so there is no error to send back and nothing to
//! transport; its table learns from the exact gradient under every rule.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{FeedbackConv2d, FeedbackConv2dConfig, Rule};

/// Configuration of a [`PatchEmbedding`].
#[derive(Config, Debug)]
pub struct PatchEmbeddingConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Side of the square patches (the convolution's kernel and stride).
    pub patch: usize,
    /// Width of the tokens.
    pub d_model: usize,
    /// Initialiser of the convolution's `W` (and of `B` where the rule draws it).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// Learning rule of the convolution.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
}

/// ViT's patch embedding: a `patch × patch` convolution with stride `patch`, its output
/// positions read row by row as tokens.
///
/// # Shapes
/// - input: `[batch, in_channels, h, w]` with `h`, `w` multiples of `patch`
/// - output: `[batch, (h / patch)·(w / patch), d_model]`
#[derive(Module, Debug)]
pub struct PatchEmbedding {
    /// The patch projection, `[d_model, in_channels, patch, patch]`.
    pub projection: FeedbackConv2d,
}

impl PatchEmbeddingConfig {
    /// Initializes the patch embedding on `device`.
    pub fn init(&self, device: &Device) -> PatchEmbedding {
        let p = self.patch;
        PatchEmbedding {
            projection: FeedbackConv2dConfig::new([self.in_channels, self.d_model], [p, p])
                .with_stride([p, p])
                .with_initializer(self.initializer.clone())
                .with_rule(self.rule)
                .init(device),
        }
    }
}

impl PatchEmbedding {
    /// Images `[batch, c, h, w]` → tokens `[batch, patches, d_model]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        self.projection
            .forward(images)
            .flatten::<3>(2, 3)
            .swap_dims(1, 2)
    }
}

/// How a [`PositionEmbedding`] marks positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// A learned vector a position (`[max_tokens, d_model]`, normal with std 0.02, as GPT-2
    /// and ViT draw it).
    #[default]
    Learned,
    /// The fixed sinusoids of "Attention Is All You Need": `sin(t/10000^(2i/d))` in the even
    /// features, `cos` in the odd ones. Nothing to learn.
    Sinusoidal,
}

/// Configuration of a [`PositionEmbedding`].
#[derive(Config, Debug)]
pub struct PositionEmbeddingConfig {
    /// The longest sequence.
    pub max_tokens: usize,
    /// Width of the tokens.
    pub d_model: usize,
    /// Learned or sinusoidal.
    #[config(default = "Positions::Learned")]
    pub kind: Positions,
}

/// Adds a position's vector to each token.
///
/// # Shapes
/// - input: `[batch, tokens, d_model]` with `tokens ≤ max_tokens`, output: the same
#[derive(Module, Debug)]
pub struct PositionEmbedding {
    /// The learned vectors, `[max_tokens, d_model]`; `None` when sinusoidal.
    pub learned: Option<Param<Tensor<2>>>,
    /// The longest sequence.
    pub max_tokens: usize,
}

impl PositionEmbeddingConfig {
    /// Initializes the position embedding on `device`.
    pub fn init(&self, device: &Device) -> PositionEmbedding {
        let learned = (self.kind == Positions::Learned).then(|| {
            Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([self.max_tokens, self.d_model], device)
        });
        PositionEmbedding {
            learned,
            max_tokens: self.max_tokens,
        }
    }
}

impl PositionEmbedding {
    /// `x + positions[..tokens]`.
    ///
    /// # Panics
    /// If `x` has more than `max_tokens` tokens.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, tokens, d_model] = x.dims();
        assert!(
            tokens <= self.max_tokens,
            "PositionEmbedding: {tokens} tokens, at most {} were configured",
            self.max_tokens
        );
        let positions = match &self.learned {
            Some(table) => table.val().slice([0..tokens, 0..d_model]),
            None => sinusoids(tokens, d_model, &x.device()),
        };
        x + positions.unsqueeze::<3>()
    }
}

/// The sinusoidal table `[tokens, d_model]`: feature `2i` of position `t` is
/// `sin(t / 10000^(2i/d_model))`, feature `2i + 1` its `cos`.
pub fn sinusoids(tokens: usize, d_model: usize, device: &Device) -> Tensor<2> {
    let mut table = Vec::with_capacity(tokens * d_model);
    for t in 0..tokens {
        for j in 0..d_model {
            let i = (j / 2) as f64;
            let angle = t as f64 / 10000f64.powf(2.0 * i / d_model as f64);
            table.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Tensor::<1>::from_floats(table.as_slice(), device).reshape([tokens, d_model])
}
