//! [`ResNet`]: ResNet-18 and ResNet-50 (torchvision's v1.5 layout), ImageNet or CIFAR stem.

use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wt_nn::wt_core::{Named, named_str};
use wt_nn::{
    BatchNorm, BatchNormConfig, FeedbackConv2d, FeedbackLinear, Rule, direct_error,
    probe_block_input,
};

use crate::resnet_cifar::{BasicBlock, Projection, Shortcut, classifier, conv, conv3x3};
use crate::{ImageClassifier, global_avg_pool};

/// Depth of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResNetDepth {
    /// Basic blocks `[2, 2, 2, 2]`, 11.7M parameters at 1000 classes.
    R18,
    /// Basic blocks `[3, 4, 6, 3]`, 21.8M parameters at 1000 classes.
    R34,
    /// Bottleneck blocks `[3, 4, 6, 3]`, 25.6M parameters at 1000 classes.
    R50,
    /// Bottleneck blocks `[3, 4, 23, 3]`, 44.5M parameters at 1000 classes.
    R101,
    /// Bottleneck blocks `[3, 8, 36, 3]`, 60.2M parameters at 1000 classes.
    R152,
}

impl ResNetDepth {
    /// Blocks in each of the four stages (torchvision's layouts).
    pub fn blocks(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R34 | ResNetDepth::R50 => [3, 4, 6, 3],
            ResNetDepth::R101 => [3, 4, 23, 3],
            ResNetDepth::R152 => [3, 8, 36, 3],
        }
    }

    /// Whether the blocks are bottlenecks (1×1, 3×3, 1×1 with 4× expansion; 50 layers and
    /// deeper) rather than basic blocks (two 3×3).
    pub fn bottleneck(self) -> bool {
        matches!(
            self,
            ResNetDepth::R50 | ResNetDepth::R101 | ResNetDepth::R152
        )
    }
}

/// First layers of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// 7×7 stride-2 convolution and 3×3 stride-2 max pooling (224×224 images).
    #[default]
    #[serde(rename = "imagenet", alias = "image_net")]
    ImageNet,
    /// 3×3 stride-1 convolution, no pooling (32×32 images), as in most CIFAR ports.
    Cifar,
}

impl Named for Stem {
    const WHAT: &'static str = "stem";

    fn all() -> Vec<Self> {
        vec![Stem::ImageNet, Stem::Cifar]
    }

    fn name(&self) -> &'static str {
        match self {
            Stem::ImageNet => "imagenet",
            Stem::Cifar => "cifar",
        }
    }
}

named_str!(Stem);

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// ResNet-18 or ResNet-50.
    pub depth: ResNetDepth,
    /// Number of classes.
    pub num_classes: usize,
    /// Input stem.
    #[config(default = "Stem::ImageNet")]
    pub stem: Stem,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Rule of every convolution and linear layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Initialiser of the feedback layers (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
    /// Initialiser of the convolutions alone, where it differs from `initializer`:
    /// torchvision's (and willwx/sign-symmetry's) ResNets draw their convolutions from
    /// [`ResNetConfig::TORCHVISION_CONV_INIT`] and keep PyTorch's default for the classifier.
    #[config(default = "None")]
    pub conv_initializer: Option<Initializer>,
}

impl ResNetConfig {
    /// torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: `N(0, 2/fan_out)`,
    /// `fan_out = c_out·kh·kw`.
    pub const TORCHVISION_CONV_INIT: Initializer = Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    };
}

/// 1×1 → 3×3 (strided) → 1×1 with 4× expansion, batch norm after each, projection shortcut
/// where the shape changes (torchvision's ResNet v1.5 bottleneck).
///
/// # Shapes
/// - input: `[n, in, h, w]`, output: `[n, 4·width, h / stride, w / stride]`
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 reduction `in → width`.
    pub conv1: FeedbackConv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3 `width → width`, strided.
    pub conv2: FeedbackConv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// 1×1 expansion `width → 4·width`.
    pub conv3: FeedbackConv2d,
    /// Batch norm after `conv3`.
    pub bn3: BatchNorm,
    /// Projection shortcut, where the shape changes.
    pub projection: Option<Projection>,
}

impl Bottleneck {
    fn new(
        c_in: usize,
        width: usize,
        stride: usize,
        rule: Rule,
        init: &Option<Initializer>,
        device: &Device,
    ) -> Self {
        let c_out = 4 * width;
        let projection = (stride != 1 || c_in != c_out)
            .then(|| Projection::new(c_in, c_out, stride, rule, init, device));
        Self {
            conv1: conv(c_in, width, 1, 1, 0, rule, init, device),
            bn1: BatchNormConfig::new(width).init(device),
            conv2: conv3x3(width, width, stride, rule, init, device),
            bn2: BatchNormConfig::new(width).init(device),
            conv3: conv(width, c_out, 1, 1, 0, rule, init, device),
            bn3: BatchNormConfig::new(c_out).init(device),
            projection,
        }
    }

    /// `[n, in, h, w]` → `[n, 4·width, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // The error angle at the block's input, shortcut included (in probe passes only).
        let x = probe_block_input(x, &self.conv1);
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = relu(self.bn2.forward(self.conv2.forward(out)));
        let out = self.bn3.forward(self.conv3.forward(out));
        let short = match &self.projection {
            Some(p) => p.forward(x),
            None => x,
        };
        relu(out + short)
    }
}

/// A residual block of a [`ResNet`].
// Built once per model: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResNetBlock {
    /// Two 3×3 convolutions (ResNet-18).
    Basic(BasicBlock),
    /// 1×1-3×3-1×1 bottleneck (ResNet-50).
    Bottleneck(Bottleneck),
}

impl ResNetBlock {
    /// Runs the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Basic(b) => b.forward(x),
            Self::Bottleneck(b) => b.forward(x),
        }
    }
}

/// ResNet-18 / ResNet-50 with feedback layers.
///
/// # Shapes
/// - input: `[batch, in_channels, 224, 224]` (ImageNet stem; any size ≥ 32 works) or
///   `[batch, in_channels, 32, 32]` (CIFAR stem); output: `[batch, classes]`
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution, `in → 64` (7×7 stride 2, or 3×3 stride 1).
    pub conv1: FeedbackConv2d,
    /// Batch norm of the stem.
    pub bn1: BatchNorm,
    /// Max pooling of the ImageNet stem.
    pub pool: Option<MaxPool2d>,
    /// The blocks of the four stages, in order.
    pub blocks: Vec<ResNetBlock>,
    /// Linear classifier.
    pub fc: FeedbackLinear,
}

impl ResNetConfig {
    /// Initializes a [`ResNet`] on `device`.
    pub fn init(&self, device: &Device) -> ResNet {
        let rule = self.rule.with_outputs(self.num_classes);
        let init = match &self.conv_initializer {
            Some(_) => &self.conv_initializer,
            None => &self.initializer,
        };
        let (conv1, pool) = match self.stem {
            Stem::ImageNet => (
                conv(self.in_channels, 64, 7, 2, 3, rule, init, device),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
            Stem::Cifar => (conv3x3(self.in_channels, 64, 1, rule, init, device), None),
        };
        let counts = self.depth.blocks();
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, (&n, width)) in counts.iter().zip([64, 128, 256, 512]).enumerate() {
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let block = if self.depth.bottleneck() {
                    let block = Bottleneck::new(c_in, width, stride, rule, init, device);
                    c_in = 4 * width;
                    ResNetBlock::Bottleneck(block)
                } else {
                    let block =
                        BasicBlock::new(c_in, width, stride, Shortcut::B, rule, init, device);
                    c_in = width;
                    ResNetBlock::Basic(block)
                };
                blocks.push(block);
            }
        }
        ResNet {
            conv1,
            bn1: BatchNormConfig::new(64).init(device),
            pool,
            blocks,
            fc: classifier(c_in, self.num_classes, rule, &self.initializer, device),
        }
    }
}

impl ImageClassifier for ResNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(images)));
        if let Some(pool) = &self.pool {
            x = pool.forward(x);
        }
        for block in &self.blocks {
            x = block.forward(x);
        }
        direct_error(self.fc.forward(global_avg_pool(x)))
    }
}
