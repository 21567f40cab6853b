//! How many values a model holds, split as papers count them ([`parameter_count`]).

use burn::module::Module;
use burn::tensor::Tensor;
use wt_nn::feedback_parameter_count;

/// How a model's values split: what backprop would train, what the rules store, and buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterCount {
    /// Weights, biases and normalisation scales/shifts: the count papers publish.
    pub forward: usize,
    /// Values the feedback layers store for their rules ([`feedback_parameter_count`]).
    pub feedback: usize,
    /// Running statistics (batch norm's `running_mean` / `running_var`).
    pub buffers: usize,
}

/// Splits `model.num_params()` into [`ParameterCount`]'s three parts. Buffers are recognised
/// by their field names `running_mean` and `running_var` (Burn's batch norm).
pub fn parameter_count<M: Module>(model: &M) -> ParameterCount {
    struct Buffers {
        path: Vec<String>,
        numel: usize,
    }
    impl burn::module::ModuleVisitor for Buffers {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            ) {
                self.numel += param.shape().num_elements();
            }
        }
    }
    let mut buffers = Buffers {
        path: Vec::new(),
        numel: 0,
    };
    model.visit(&mut buffers);
    let feedback = feedback_parameter_count(model);
    ParameterCount {
        forward: model.num_params() - feedback - buffers.numel,
        feedback,
        buffers: buffers.numel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use wt_core::Rule;
    use wt_models::{Architecture, ModelConfig};

    #[test]
    fn parameter_counts_match_the_published_ones() {
        let _serial = wt_core::device::device_test_lock();
        let device = Device::flex();
        // (architecture, classes, channels, side, published or reference count)
        let cases = [
            (Architecture::Mlp, 10, 1, 28, 1_796_010),
            // BioTorch's LeNetMNIST and LeNetCIFAR (biotorch/models/le_net.py).
            (Architecture::Lenet, 10, 1, 28, 61_706),
            (Architecture::Lenet, 10, 3, 32, 128_842),
            // He et al. 2016: ResNet-20 0.27M, ResNet-56 0.85M (option A; counted as PyTorch's
            // `parameters()`, i.e. without batch norm's running statistics).
            (Architecture::Resnet20, 10, 3, 32, 269_722),
            (Architecture::Resnet56, 10, 3, 32, 853_018),
            // torchvision: resnet18 11,689,512, resnet34 21,797,672, resnet50 25,557,032,
            // resnet101 44,549,160, resnet152 60,192,808.
            (Architecture::Resnet18, 1000, 3, 224, 11_689_512),
            (Architecture::Resnet34, 1000, 3, 224, 21_797_672),
            (Architecture::Resnet50, 1000, 3, 224, 25_557_032),
            (Architecture::Resnet101, 1000, 3, 224, 44_549_160),
            (Architecture::Resnet152, 1000, 3, 224, 60_192_808),
            (Architecture::Resnet18, 10, 3, 32, 11_173_962),
        ];
        for (arch, classes, channels, side, expected) in cases {
            let model = ModelConfig::new(arch, classes, channels, side, "fa".parse().unwrap())
                .init(&device);
            let count = parameter_count(&model).forward;
            assert_eq!(count, expected, "{arch} ({classes} classes, {side}px)");
            // FA stores a B for every W; backprop stores nothing.
            assert!(feedback_parameter_count(&model) > 0);
        }
        let mut bp = ModelConfig::new(Architecture::Resnet20, 10, 3, 32, "fa".parse().unwrap());
        bp.rule = Rule::Backprop(Default::default());
        let bp = bp.init(&device);
        assert_eq!(feedback_parameter_count(&bp), 0);
        let count = parameter_count(&bp);
        // Running mean and variance of the 19 batch norms: 2 × (16 + 6·16 + 6·32 + 6·64).
        assert_eq!(count.buffers, 2 * 688);
        assert_eq!(bp.num_params(), 269_722 + 2 * 688);
    }
}
