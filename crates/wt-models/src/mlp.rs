//! [`Mlp`]: a fully connected ReLU network on flattened images.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::Device;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use wt_nn::{FeedbackLinear, FeedbackLinearConfig, Rule, direct_error};

use crate::ImageClassifier;

/// Configuration of an [`Mlp`]: `widths` = input, hidden..., output (e.g. 784, 1000, 1000, 10).
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Layer widths, input first, classes last; at least two.
    pub widths: Vec<usize>,
    /// Rule of every layer.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
    /// Initialiser of every layer (`None`: Burn's default, PyTorch's Kaiming-uniform).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

/// A ReLU multilayer perceptron; images are flattened.
///
/// # Shapes
/// - input: `[batch, c, h, w]` with `c·h·w = widths[0]`, output: `[batch, widths.last()]`
#[derive(Module, Debug)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<FeedbackLinear>,
}

impl MlpConfig {
    /// Initializes an [`Mlp`] on `device`.
    ///
    /// # Panics
    /// If fewer than two widths are given.
    pub fn init(&self, device: &Device) -> Mlp {
        assert!(
            self.widths.len() >= 2,
            "MlpConfig: widths {:?} need an input and an output",
            self.widths
        );
        let n = self.widths.len() - 1;
        let outputs = self.widths[n];
        let layers = (0..n)
            .map(|i| {
                let rule = self.rule.with_outputs(outputs);
                let mut c =
                    FeedbackLinearConfig::new(self.widths[i], self.widths[i + 1]).with_rule(rule);
                if let Some(init) = &self.initializer {
                    c = c.with_initializer(init.clone());
                }
                c.init(device)
            })
            .collect();
        Mlp { layers }
    }
}

impl Mlp {
    /// `[batch, d_in]` → logits `[batch, d_out]` (marked with `wt_nn::direct_error` for DFA).
    pub fn forward_flat(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i < last {
                h = relu(h);
            }
        }
        direct_error(h)
    }
}

impl ImageClassifier for Mlp {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_flat(images.flatten(1, 3))
    }
}
