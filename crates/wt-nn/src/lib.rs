//! # wt-nn: Burn modules with explicit feedback weights
//!
//! [`FeedbackLinear`] and [`FeedbackConv2d`] drop in where a model would use Burn's `Linear`
//! and `Conv2d`: the same config fields plus a [`Rule`], the same forward, and a
//! backward pass that sends the error through the layer's feedback weights `B`. `B` is part of
//! the module record (saved, loaded, moved between devices). [`BatchNorm`] is Burn's batch norm
//! (same record) with one fused op each way in training.
//!
//! Model-wide helpers reach every feedback layer of any model, through one hook by which each
//! layer hands itself to the operation installed for a walk of the model: in [`step`], the
//! rules' per-step work ([`mirror_update`] after each optimizer step, [`add_feedback_gradients`]
//! before it) and mirror warm-up ([`mirror_steps`]); in [`alignment`], the alignment metrics
//! ([`weight_alignment`], [`gradient_alignment`]). [`layer_rules`] puts layers chosen by path on
//! rules of their own ([`set_layer_rules`]); [`direct_error`] marks a model's output for the
//! direct rules (DFA, DKP), which a model whose last layer is a DFA classifier can leave out.
//!
//! Transformers are built from the same layers: [`FeedbackMultiHeadAttention`] (Q, K, V and
//! output projections are feedback layers; the softmax path is exact),
//! [`FeedbackTransformerBlock`] (pre-norm, attention + GELU MLP), [`PatchEmbedding`] (a
//! feedback convolution) and [`PositionEmbedding`].
//!
//! A feedback layer of your own joins all of these by implementing [`FeedbackLayer`] and
//! [`feedback_module!`]; a model-wide operation of your own is a [`LayerVisitor`] or a
//! [`LayerMapper`] ([`hook`]).

#![warn(missing_docs)]

pub mod alignment;
mod attention;
mod batch_norm;
mod conv2d;
mod embedding;
pub mod feedback;
pub mod hook;
pub mod layer_rules;
mod linear;
mod module_impl;
mod optimizer;
mod probe;
pub mod step;
mod transformer;

pub use alignment::{
    BlockAlignment, GradientAlignment, LayerAlignment, ProbeAlignment, error_alignment,
    feedback_parameter_count, gradient_alignment, layer_paths, model_rules, probe_block_input,
    weight_alignment,
};
pub use attention::{FeedbackMultiHeadAttention, FeedbackMultiHeadAttentionConfig, causal_mask};
pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use conv2d::{FeedbackConv2d, FeedbackConv2dConfig};
pub use embedding::{
    PatchEmbedding, PatchEmbeddingConfig, PositionEmbedding, PositionEmbeddingConfig, Positions,
    sinusoids,
};
pub use feedback::init_rule_state;
pub use hook::{FeedbackLayer, LayerMapper, LayerVisitor, map_layers, visit_layers};
pub use layer_rules::{LayerRules, UnmatchedPattern, map_layer_rules, set_layer_rules};
pub use linear::{FeedbackLinear, FeedbackLinearConfig};
pub use optimizer::{FeedbackOptimizer, momentum_config, sgd_config};
pub use probe::probe_layer_input;
pub use step::{add_feedback_gradients, mirror_steps, mirror_update};
pub use transformer::{FeedForward, FeedbackTransformerBlock, FeedbackTransformerBlockConfig};
pub use wt_core::{
    self, MissingOutputError, Rule, direct_error, direct_targets, set_alignment_epoch,
    take_missing_output_error,
};

// For `feedback_module!`'s expansion in other crates.
#[doc(hidden)]
pub use burn as __burn;

#[cfg(test)]
mod tests;
