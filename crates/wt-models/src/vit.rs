//! [`Vit`]: a vision transformer for small images, built from feedback layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wt_nn::{
    FeedbackLinear, FeedbackLinearConfig, FeedbackTransformerBlock, FeedbackTransformerBlockConfig,
    PatchEmbedding, PatchEmbeddingConfig, PositionEmbedding, PositionEmbeddingConfig, Positions,
    Rule, direct_error,
};

use crate::ImageClassifier;

/// The shape of a transformer: width, depth, heads, MLP width, positions (and, for a [`Vit`],
/// the patch side). The zoo's default is the CIFAR ViT: patch 4, 6 blocks of width 192,
/// 3 heads, MLP 384, learned positions (1,806,154 parameters with 10 classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransformerShape {
    /// Side of the square patches (ViT only).
    pub patch: usize,
    /// Width of the tokens.
    pub d_model: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads of each block.
    pub n_heads: usize,
    /// Hidden width of each block's MLP.
    pub d_ff: usize,
    /// Learned or sinusoidal positions.
    pub positions: Positions,
}

impl Default for TransformerShape {
    fn default() -> Self {
        Self {
            patch: 4,
            d_model: 192,
            depth: 6,
            n_heads: 3,
            d_ff: 384,
            positions: Positions::Learned,
        }
    }
}

impl TransformerShape {
    /// The part a ViT and a language model share: `depth` blocks, the final layer norm and a
    /// linear head to `outputs`, every feedback layer on `rule` from `init`.
    pub(crate) fn trunk(
        &self,
        outputs: usize,
        rule: Rule,
        init: &Initializer,
        device: &Device,
    ) -> (Vec<FeedbackTransformerBlock>, LayerNorm, FeedbackLinear) {
        let blocks = (0..self.depth)
            .map(|_| {
                FeedbackTransformerBlockConfig::new(self.d_model, self.n_heads, self.d_ff)
                    .with_initializer(init.clone())
                    .with_rule(rule)
                    .init(device)
            })
            .collect();
        let head = FeedbackLinearConfig::new(self.d_model, outputs)
            .with_initializer(init.clone())
            .with_rule(rule)
            .init(device);
        (
            blocks,
            LayerNormConfig::new(self.d_model).init(device),
            head,
        )
    }
}

/// The initialiser of a model's feedback layers: the given one, else the layers' default
/// (Burn's, PyTorch's Kaiming-uniform).
pub(crate) fn layer_initializer(given: &Option<Initializer>) -> Initializer {
    given
        .clone()
        .unwrap_or_else(|| FeedbackLinearConfig::new(1, 1).initializer)
}

/// Configuration of a [`Vit`].
#[derive(Config, Debug)]
pub struct VitConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Side of the (square) images; a multiple of the patch side.
    pub image_side: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Width, depth, heads, MLP width, patch and positions.
    #[config(default = "TransformerShape::default()")]
    pub shape: TransformerShape,
    /// Rule of every feedback layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Initialiser of every feedback layer (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

/// A vision transformer (Dosovitskiy et al. 2021) without a class token: patch embedding,
/// positions, pre-norm blocks, a final layer norm, the mean over the tokens and a linear
/// classifier. Every projection is a feedback layer; layer norm, softmax, GELU and the
/// pooling keep their exact gradients.
///
/// Layer paths (for `--rule-for`): `patches.projection`, `blocks.{i}.attn.{query,key,value,
/// output}`, `blocks.{i}.mlp.{fc1,fc2}`, `head`.
///
/// # Shapes
/// - input: `[batch, in_channels, image_side, image_side]`, output: `[batch, num_classes]`
#[derive(Module, Debug)]
pub struct Vit {
    /// Images to patch tokens.
    pub patches: PatchEmbedding,
    /// Position of each patch.
    pub positions: PositionEmbedding,
    /// The transformer blocks.
    pub blocks: Vec<FeedbackTransformerBlock>,
    /// Layer norm after the last block.
    pub norm: LayerNorm,
    /// The classifier, `d_model → num_classes`.
    pub head: FeedbackLinear,
}

impl VitConfig {
    /// Initializes the ViT on `device`.
    ///
    /// # Panics
    /// If the image side is not a multiple of the patch side.
    pub fn init(&self, device: &Device) -> Vit {
        let s = self.shape;
        assert!(
            s.patch > 0 && self.image_side.is_multiple_of(s.patch),
            "VitConfig: image side {} is not a multiple of the patch side {}",
            self.image_side,
            s.patch
        );
        let rule = self.rule.with_outputs(self.num_classes);
        let init = layer_initializer(&self.initializer);
        let tokens = (self.image_side / s.patch).pow(2);
        let (blocks, norm, head) = s.trunk(self.num_classes, rule, &init, device);
        Vit {
            patches: PatchEmbeddingConfig::new(self.in_channels, s.patch, s.d_model)
                .with_initializer(init)
                .with_rule(rule)
                .init(device),
            positions: PositionEmbeddingConfig::new(tokens, s.d_model)
                .with_kind(s.positions)
                .init(device),
            blocks,
            norm,
            head,
        }
    }
}

impl ImageClassifier for Vit {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.positions.forward(self.patches.forward(images));
        for block in &self.blocks {
            x = block.forward(x, None);
        }
        let pooled = self.norm.forward(x).mean_dim(1).squeeze_dim::<2>(1);
        direct_error(self.head.forward(pooled))
    }
}
