//! [`LeNet`]: BioTorch's LeNet shapes for MNIST (6-16-120) and CIFAR (32-64-128).

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};
use wt_nn::{FeedbackConv2d, FeedbackConv2dConfig, FeedbackLinear, FeedbackLinearConfig, Rule};

use crate::ImageClassifier;

/// Configuration of a [`LeNet`].
///
/// The network is conv5(c1)-ReLU-maxpool2, conv5(c2)-ReLU-maxpool2, conv5(c3)-ReLU, then
/// linear c3→84 and 84→classes (no activation between the two linear layers, as in BioTorch's
/// `le_net_mnist` / `le_net_cifar`). It expects 32×32 inputs; 28×28 inputs (MNIST) are
/// zero-padded by 2 pixels on each side, as in the original LeNet-5.
#[derive(Config, Debug)]
pub struct LeNetConfig {
    /// Input channels (1 for MNIST, 3 for CIFAR).
    pub in_channels: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Output channels of the three convolutions.
    #[config(default = "[6, 16, 120]")]
    pub channels: [usize; 3],
    /// Rule of every layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Keep the last layer on backprop whatever `rule` is.
    #[config(default = false)]
    pub last_layer_backprop: bool,
    /// Initialiser of every layer (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl LeNetConfig {
    /// BioTorch's MNIST shape: 1 input channel, convolutions 6-16-120.
    pub fn mnist(num_classes: usize) -> Self {
        Self::new(1, num_classes)
    }

    /// BioTorch's CIFAR shape: 3 input channels, convolutions 32-64-128.
    pub fn cifar(num_classes: usize) -> Self {
        Self::new(3, num_classes).with_channels([32, 64, 128])
    }

    /// Initializes a [`LeNet`] on `device`.
    pub fn init(&self, device: &Device) -> LeNet {
        let [c1, c2, c3] = self.channels;
        let conv = |i, o| {
            let mut c = FeedbackConv2dConfig::new([i, o], [5, 5]).with_rule(self.rule);
            if let Some(init) = &self.initializer {
                c = c.with_initializer(init.clone());
            }
            c.init(device)
        };
        let linear = |i, o, rule| {
            let mut c = FeedbackLinearConfig::new(i, o).with_rule(rule);
            if let Some(init) = &self.initializer {
                c = c.with_initializer(init.clone());
            }
            c.init(device)
        };
        let last_rule = if self.last_layer_backprop {
            Rule::Backprop(Default::default())
        } else {
            self.rule
        };
        LeNet {
            conv1: conv(self.in_channels, c1),
            conv2: conv(c1, c2),
            conv3: conv(c2, c3),
            fc1: linear(c3, 84, self.rule),
            fc2: linear(84, self.num_classes, last_rule),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }
}

/// LeNet with feedback layers.
///
/// # Shapes
/// - input: `[batch, in_channels, 32, 32]` (or `28, 28`, padded), output: `[batch, classes]`
#[derive(Module, Debug)]
pub struct LeNet {
    /// 5×5 convolution, `in_channels → c1`.
    pub conv1: FeedbackConv2d,
    /// 5×5 convolution, `c1 → c2`.
    pub conv2: FeedbackConv2d,
    /// 5×5 convolution, `c2 → c3` (1×1 output).
    pub conv3: FeedbackConv2d,
    /// Linear `c3 → 84`.
    pub fc1: FeedbackLinear,
    /// Linear `84 → classes`.
    pub fc2: FeedbackLinear,
    /// 2×2 max pooling.
    pub pool: MaxPool2d,
}

impl ImageClassifier for LeNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let [_, _, h, w] = images.dims();
        let x = if h == 28 && w == 28 {
            images.pad([(0, 0), (0, 0), (2, 2), (2, 2)], PadMode::Constant(0.0))
        } else {
            images
        };
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let x = relu(self.conv3.forward(x));
        self.fc2.forward(self.fc1.forward(x.flatten(1, 3)))
    }
}
