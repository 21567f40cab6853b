//! # wt-models: the networks of the weight-transport papers, built from feedback layers
//!
//! Every convolution and linear layer is a [`FeedbackConv2d`](wt_nn::FeedbackConv2d) or
//! [`FeedbackLinear`](wt_nn::FeedbackLinear) using the chosen [`Rule`]; batch norm and pooling
//! use true gradients, as in all the peers (BioTorch, willwx/sign-symmetry, the authors' code).
//! [`ModelConfig::last_layer_backprop`] keeps the classifier layer on backprop, as
//! willwx/sign-symmetry does.
//!
//! | model | input | parameters (10 / 1000 classes) |
//! |---|---|---|
//! | [`Mlp`] 784-1000-1000-10 | `[n, 1, 28, 28]` | 1,796,010 |
//! | [`LeNet`] MNIST shape (6-16-120 convs) | `[n, 1, 28 or 32, ·]` | 61,706 |
//! | [`LeNet`] CIFAR shape (3×3 32-64-128 convs, global average pool) | `[n, 3, 32, 32]` | 128,842 |
//! | [`CifarResNet`] ResNet-20 / ResNet-56, option A | `[n, 3, 32, 32]` | 269,722 / 853,018 |
//! | [`ResNet`] ResNet-18 / ResNet-50 (ImageNet stem) | `[n, 3, 224, 224]` | 11,689,512 / 25,557,032 |
//! | [`ResNet`] ResNet-18 (CIFAR stem) | `[n, 3, 32, 32]` | 11,173,962 |
//! | [`Vit`] patch 4, 6 blocks of 192, 3 heads, MLP 384 | `[n, 3, 32, 32]` | 1,806,154 |
//!
//! [`CharTransformer`] is a character-level causal language model (`[n, tokens]` characters →
//! `[n, tokens, vocab]` logits), trained by `examples/charlm.rs`.
//!
//! The [`ResNet`]s read and write torchvision's state dicts ([`torchvision`]: `.pth` and
//! safetensors, torchvision's key names, logits checked against torchvision's).
//!
//! All models implement [`ImageClassifier`] (images `[n, c, h, w]` → logits `[n, classes]`),
//! the interface the training loop uses; a user's own model implements it too. Each passes its
//! logits through [`wt_nn::direct_error`] (a no-op unless a layer runs direct feedback
//! alignment) and gives its layers `rule.with_outputs(classes)`.

#![warn(missing_docs)]

mod char_lm;
mod config;
mod lenet;
mod mlp;
mod resnet;
mod resnet_cifar;
pub mod torchvision;
mod vit;

pub use char_lm::{CharTransformer, CharTransformerConfig};
pub use config::{Architecture, InitScheme, Model, ModelConfig};
pub use lenet::{LeNet, LeNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use resnet::{Bottleneck, ResNet, ResNetBlock, ResNetConfig, ResNetDepth, Stem};
pub use resnet_cifar::{BasicBlock, CifarResNet, CifarResNetConfig, Shortcut};
pub use torchvision::{CheckpointError, PretrainedFeedback, StateDict, load_torchvision};
pub use vit::{TransformerShape, Vit, VitConfig};
pub use wt_nn::{self, Rule};

use burn::module::Module;
use burn::tensor::Tensor;

/// A classifier of images: what the training loop needs from a model.
pub trait ImageClassifier: Module + Clone + core::fmt::Debug + Send + 'static {
    /// Images `[batch, channels, height, width]` → logits `[batch, classes]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
}

/// Global average pooling: `[n, c, h, w]` → `[n, c]`.
pub(crate) fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    x.mean_dim(3).mean_dim(2).flatten(1, 3)
}

#[cfg(test)]
mod tests;
