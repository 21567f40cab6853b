//! [`LeNet`]: BioTorch's `LeNetMNIST` (conv5 6-16-120, fc 84) and `LeNetCIFAR` (conv3
//! 32-64-128, global average pooling, fc 256).

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};
use wt_nn::{
    FeedbackConv2d, FeedbackConv2dConfig, FeedbackLinear, FeedbackLinearConfig, Rule, direct_error,
};

use crate::ImageClassifier;

/// Configuration of a [`LeNet`].
///
/// The network is conv(c1)-ReLU-maxpool2, conv(c2)-ReLU-maxpool2, conv(c3)-ReLU, optionally
/// a global average pooling, then linear c3→hidden, ReLU, linear hidden→classes; the
/// convolutions are `k×k`, stride 1, unpadded. BioTorch's two LeNets (`biotorch/models/
/// le_net.py`) are [`mnist`](Self::mnist) (61,706 parameters) and [`cifar`](Self::cifar)
/// (128,842). It expects 32×32 inputs; 28×28 inputs (MNIST) are zero-padded by 2 pixels on
/// each side, as in the original LeNet-5.
#[derive(Config, Debug)]
pub struct LeNetConfig {
    /// Input channels (1 for MNIST, 3 for CIFAR).
    pub in_channels: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Output channels of the three convolutions.
    #[config(default = "[6, 16, 120]")]
    pub channels: [usize; 3],
    /// Side `k` of the three convolutions' kernels.
    #[config(default = 5)]
    pub kernel_size: usize,
    /// Width of the hidden linear layer.
    #[config(default = 84)]
    pub hidden: usize,
    /// Average the last convolution's output over its positions before the linear layers
    /// (BioTorch's CIFAR LeNet); otherwise it is flattened (a 1×1 output for MNIST).
    #[config(default = false)]
    pub global_average_pool: bool,
    /// Rule of every layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Initialiser of every layer (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl LeNetConfig {
    /// BioTorch's `LeNetMNIST`: 1 input channel, 5×5 convolutions 6-16-120, fc 120→84→classes.
    pub fn mnist(num_classes: usize) -> Self {
        Self::new(1, num_classes)
    }

    /// BioTorch's `LeNetCIFAR`: 3 input channels, 3×3 convolutions 32-64-128, global average
    /// pooling, fc 128→256→classes.
    pub fn cifar(num_classes: usize) -> Self {
        Self::new(3, num_classes)
            .with_channels([32, 64, 128])
            .with_kernel_size(3)
            .with_hidden(256)
            .with_global_average_pool(true)
    }

    /// Initializes a [`LeNet`] on `device`.
    pub fn init(&self, device: &Device) -> LeNet {
        let [c1, c2, c3] = self.channels;
        let rule = self.rule.with_outputs(self.num_classes);
        let conv = |i, o| {
            let k = self.kernel_size;
            let mut c = FeedbackConv2dConfig::new([i, o], [k, k]).with_rule(rule);
            if let Some(init) = &self.initializer {
                c = c.with_initializer(init.clone());
            }
            c.init(device)
        };
        let linear = |i, o| {
            let mut c = FeedbackLinearConfig::new(i, o).with_rule(rule);
            if let Some(init) = &self.initializer {
                c = c.with_initializer(init.clone());
            }
            c.init(device)
        };
        LeNet {
            conv1: conv(self.in_channels, c1),
            conv2: conv(c1, c2),
            conv3: conv(c2, c3),
            fc1: linear(c3, self.hidden),
            fc2: linear(self.hidden, self.num_classes),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            global_average_pool: self.global_average_pool,
        }
    }
}

/// LeNet with feedback layers.
///
/// # Shapes
/// - input: `[batch, in_channels, 32, 32]` (or `28, 28`, padded), output: `[batch, classes]`
#[derive(Module, Debug)]
pub struct LeNet {
    /// `k×k` convolution, `in_channels → c1`.
    pub conv1: FeedbackConv2d,
    /// `k×k` convolution, `c1 → c2`.
    pub conv2: FeedbackConv2d,
    /// `k×k` convolution, `c2 → c3` (1×1 output for MNIST, 4×4 for CIFAR).
    pub conv3: FeedbackConv2d,
    /// Linear `c3 → hidden`, followed by a ReLU.
    pub fc1: FeedbackLinear,
    /// Linear `hidden → classes`.
    pub fc2: FeedbackLinear,
    /// 2×2 max pooling.
    pub pool: MaxPool2d,
    /// Whether conv3's output is averaged over its positions.
    pub global_average_pool: bool,
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
        let x = if self.global_average_pool {
            x.mean_dim(3).mean_dim(2)
        } else {
            x
        };
        direct_error(
            self.fc2
                .forward(relu(self.fc1.forward(x.flatten::<2>(1, 3)))),
        )
    }
}
