//! [`CifarResNet`]: He et al. (2016)'s ResNet-20/32/44/56/110 for 32×32 images.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, s};
use serde::{Deserialize, Serialize};
use wt_nn::wt_core::{Named, named_str};
use wt_nn::{
    BatchNorm, BatchNormConfig, FeedbackConv2d, FeedbackConv2dConfig, FeedbackLinear,
    FeedbackLinearConfig, Rule, direct_error, probe_block_input,
};

use crate::{ImageClassifier, global_avg_pool};

/// How a block whose shape changes forms its shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// Option A of He et al.: subsample by 2 and zero-pad the new channels (no parameters);
    /// what the paper used on CIFAR and what the 0.27M count of ResNet-20 assumes.
    #[default]
    A,
    /// Option B: a 1×1 strided feedback convolution and batch norm.
    B,
}

impl Named for Shortcut {
    const WHAT: &'static str = "shortcut";

    fn all() -> Vec<Self> {
        vec![Shortcut::A, Shortcut::B]
    }

    fn name(&self) -> &'static str {
        match self {
            Shortcut::A => "a",
            Shortcut::B => "b",
        }
    }
}

named_str!(Shortcut);

/// Configuration of a [`CifarResNet`]: `6n + 2` layers (n = 3: ResNet-20, n = 9: ResNet-56).
#[derive(Config, Debug)]
pub struct CifarResNetConfig {
    /// Blocks per stage (`n`); depth is `6n + 2`.
    pub blocks_per_stage: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Shortcut of the blocks that change shape.
    #[config(default = "Shortcut::A")]
    pub shortcut: Shortcut,
    /// Rule of every convolution and linear layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Initialiser of the feedback layers (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

/// Two 3×3 convolutions with batch norm and a shortcut.
///
/// # Shapes
/// - input: `[n, in, h, w]`, output: `[n, out, h / stride, w / stride]`
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3 convolution (strided in the first block of a stage).
    pub conv1: FeedbackConv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3 convolution.
    pub conv2: FeedbackConv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// Option-B projection (1×1 strided conv + batch norm), if any.
    pub projection: Option<Projection>,
    /// Channels option A pads on each side (0: identity shortcut).
    #[module(skip)]
    pub pad_channels: usize,
    /// Stride of the block.
    #[module(skip)]
    pub stride: usize,
}

/// A projection shortcut: 1×1 strided feedback convolution and batch norm.
#[derive(Module, Debug)]
pub struct Projection {
    /// 1×1 convolution, `in → out`, strided.
    pub conv: FeedbackConv2d,
    /// Batch norm after `conv`.
    pub bn: BatchNorm,
}

impl Projection {
    pub(crate) fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        rule: Rule,
        init: &Option<Initializer>,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(c_in, c_out, 1, stride, 0, rule, init, device),
            bn: BatchNormConfig::new(c_out).init(device),
        }
    }

    /// `[n, in, h, w]` → `[n, out, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// A 3×3 feedback convolution without bias, padding 1.
pub(crate) fn conv3x3(
    c_in: usize,
    c_out: usize,
    stride: usize,
    rule: Rule,
    init: &Option<Initializer>,
    device: &Device,
) -> FeedbackConv2d {
    conv(c_in, c_out, 3, stride, 1, rule, init, device)
}

/// A `k`×`k` feedback convolution without bias.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
    rule: Rule,
    init: &Option<Initializer>,
    device: &Device,
) -> FeedbackConv2d {
    let mut c = FeedbackConv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .with_rule(rule);
    if let Some(init) = init {
        c = c.with_initializer(init.clone());
    }
    c.init(device)
}

/// The classifier layer.
pub(crate) fn classifier(
    d_in: usize,
    classes: usize,
    rule: Rule,
    init: &Option<Initializer>,
    device: &Device,
) -> FeedbackLinear {
    let mut c = FeedbackLinearConfig::new(d_in, classes).with_rule(rule);
    if let Some(init) = init {
        c = c.with_initializer(init.clone());
    }
    c.init(device)
}

impl BasicBlock {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        shortcut: Shortcut,
        rule: Rule,
        init: &Option<Initializer>,
        device: &Device,
    ) -> Self {
        let changes = stride != 1 || c_in != c_out;
        let (projection, pad_channels) = match (changes, shortcut) {
            (false, _) => (None, 0),
            (true, Shortcut::A) => {
                assert!(
                    c_out >= c_in && (c_out - c_in).is_multiple_of(2),
                    "option-A shortcut pads channels: {c_in} → {c_out} must grow by an even count"
                );
                (None, (c_out - c_in) / 2)
            }
            (true, Shortcut::B) => (
                Some(Projection::new(c_in, c_out, stride, rule, init, device)),
                0,
            ),
        };
        Self {
            conv1: conv3x3(c_in, c_out, stride, rule, init, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv3x3(c_out, c_out, 1, rule, init, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            projection,
            pad_channels,
            stride,
        }
    }

    /// `[n, in, h, w]` → `[n, out, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // The error angle at the block's input, shortcut included (in probe passes only).
        let x = probe_block_input(x, &self.conv1);
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = self.bn2.forward(self.conv2.forward(out));
        let short = match &self.projection {
            Some(projection) => projection.forward(x),
            None if self.pad_channels > 0 || self.stride > 1 => {
                let s = self.stride;
                let sub = x.slice(s![.., .., ..;s, ..;s]);
                let p = self.pad_channels;
                sub.pad([(0, 0), (p, p), (0, 0), (0, 0)], PadMode::Constant(0.0))
            }
            None => x,
        };
        relu(out + short)
    }
}

/// ResNet for CIFAR: 3×3 conv (16) + BN + ReLU, three stages of `n` basic blocks with
/// 16, 32, 64 channels (stride 2 at the start of stages 2 and 3), global average pooling and a
/// linear classifier.
///
/// # Shapes
/// - input: `[batch, in_channels, 32, 32]`, output: `[batch, classes]`
#[derive(Module, Debug)]
pub struct CifarResNet {
    /// Stem convolution, `in → 16`.
    pub conv1: FeedbackConv2d,
    /// Batch norm of the stem.
    pub bn1: BatchNorm,
    /// The `3n` blocks, in order.
    pub blocks: Vec<BasicBlock>,
    /// Linear classifier `64 → classes`.
    pub fc: FeedbackLinear,
}

impl CifarResNetConfig {
    /// ResNet-20 (`n = 3`, 269,722 parameters with option A).
    pub fn resnet20(num_classes: usize) -> Self {
        Self::new(3, num_classes)
    }

    /// ResNet-56 (`n = 9`, 853,018 parameters with option A).
    pub fn resnet56(num_classes: usize) -> Self {
        Self::new(9, num_classes)
    }

    /// Initializes a [`CifarResNet`] on `device`.
    pub fn init(&self, device: &Device) -> CifarResNet {
        let init = &self.initializer;
        let rule = self.rule.with_outputs(self.num_classes);
        let mut blocks = Vec::new();
        let mut c_in = 16;
        for (stage, width) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..self.blocks_per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    c_in,
                    width,
                    stride,
                    self.shortcut,
                    rule,
                    init,
                    device,
                ));
                c_in = width;
            }
        }
        CifarResNet {
            conv1: conv3x3(self.in_channels, 16, 1, rule, init, device),
            bn1: BatchNormConfig::new(16).init(device),
            blocks,
            fc: classifier(64, self.num_classes, rule, init, device),
        }
    }
}

impl ImageClassifier for CifarResNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(images)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        direct_error(self.fc.forward(global_avg_pool(x)))
    }
}
