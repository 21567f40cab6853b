//! [`CharTransformer`]: a character-level causal language model built from feedback layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm};
use burn::tensor::{Device, Int, Tensor};
use wt_nn::{
    FeedbackLinear, FeedbackTransformerBlock, PositionEmbedding, PositionEmbeddingConfig, Rule,
    causal_mask, direct_error,
};

use crate::TransformerShape;

/// Configuration of a [`CharTransformer`].
#[derive(Config, Debug)]
pub struct CharTransformerConfig {
    /// Characters in the vocabulary.
    pub vocab: usize,
    /// The longest context (tokens a position can see, itself included).
    pub context: usize,
    /// Width, depth, heads, MLP width and positions (the patch side is not used).
    #[config(
        default = "TransformerShape { d_model: 128, depth: 4, n_heads: 4, d_ff: 512, ..TransformerShape::default() }"
    )]
    pub shape: TransformerShape,
    /// Rule of every feedback layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Initialiser of every feedback layer (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

/// A GPT-style character model: token embedding (Burn's `Embedding`: its integer input takes
/// no gradient, so it has no feedback weights), positions, pre-norm causal blocks, a final
/// layer norm and a linear head over the vocabulary. The direct rules (DFA, DKP, DRTP) send
/// each position's output error (or target) to that position's rows of every layer.
///
/// Layer paths (for rule overrides): `blocks.{i}.attn.{query,key,value,output}`,
/// `blocks.{i}.mlp.{fc1,fc2}`, `head`.
///
/// # Shapes
/// - input: `[batch, tokens]` character indices, `tokens ≤ context`
/// - output: `[batch, tokens, vocab]` logits of the next character at each position
#[derive(Module, Debug)]
pub struct CharTransformer {
    /// Character vectors, `[vocab, d_model]`.
    pub tokens: Embedding,
    /// Position vectors.
    pub positions: PositionEmbedding,
    /// The causal transformer blocks.
    pub blocks: Vec<FeedbackTransformerBlock>,
    /// Layer norm after the last block.
    pub norm: LayerNorm,
    /// Next-character logits, `d_model → vocab`.
    pub head: FeedbackLinear,
}

impl CharTransformerConfig {
    /// Initializes the model on `device`.
    pub fn init(&self, device: &Device) -> CharTransformer {
        let s = self.shape;
        let rule = self.rule.with_outputs(self.vocab);
        let init = crate::vit::layer_initializer(&self.initializer);
        let (blocks, norm, head) = s.trunk(self.vocab, rule, &init, device);
        CharTransformer {
            tokens: EmbeddingConfig::new(self.vocab, s.d_model)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device),
            positions: PositionEmbeddingConfig::new(self.context, s.d_model)
                .with_kind(s.positions)
                .init(device),
            blocks,
            norm,
            head,
        }
    }
}

impl CharTransformer {
    /// Characters `[batch, tokens]` → next-character logits `[batch, tokens, vocab]` (marked
    /// with `wt_nn::direct_error` for the direct rules).
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [batch, length] = tokens.dims();
        let device = tokens.device();
        let mut x = self.positions.forward(self.tokens.forward(tokens));
        let mask = causal_mask(batch, length, &device);
        for block in &self.blocks {
            x = block.forward(x, Some(mask.clone()));
        }
        direct_error(self.head.forward(self.norm.forward(x)))
    }

    /// The longest context the model was built for.
    pub fn context(&self) -> usize {
        self.positions.max_tokens
    }
}
