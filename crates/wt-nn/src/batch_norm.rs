//! [`BatchNorm`]: Burn's `BatchNorm` (same config, fields and record) whose training-mode
//! forward and backward are one fused op each ([`wt_core::batch_norm_train`]).

use burn::config::Config;
use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

/// Configuration of a [`BatchNorm`], the fields and defaults of Burn's `BatchNormConfig`.
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// The number of features (channels). Must be greater than zero.
    pub num_features: usize,
    /// Added to the variance for numerical stability.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the batch statistics in the running statistics' update, in `[0, 1]`.
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// Batch normalisation, `y = (x − mean)/sqrt(var + eps)·γ + β` per channel: batch statistics
/// in training (autodiff device, training flag on), running statistics otherwise. Its fields,
/// and so its record, are those of Burn's `burn::nn::BatchNorm`: checkpoints of either load
/// into the other.
///
/// # Shapes
/// - input, output: `[batch, num_features, ...]`
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// The learnable scale γ, `[num_features]`.
    pub gamma: Param<Tensor<1>>,
    /// The learnable shift β, `[num_features]`.
    pub beta: Param<Tensor<1>>,
    /// Whether training behaviour is enabled for this layer.
    pub training: Param<Flag>,
    /// The running mean, `[num_features]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// The running (biased) variance, `[num_features]`.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the batch statistics in the running statistics' update.
    pub momentum: f64,
    /// Added to the variance for numerical stability.
    pub epsilon: f64,
}

impl BatchNormConfig {
    /// A batch norm with γ = 1, β = 0, running mean 0 and running variance 1.
    ///
    /// # Panics
    /// If `num_features` is zero, `epsilon` is not finite and positive, or `momentum` is not
    /// in `[0, 1]` (as Burn's).
    pub fn init(&self, device: &Device) -> BatchNorm {
        assert!(
            self.num_features > 0,
            "num_features must be greater than zero."
        );
        assert!(
            self.epsilon.is_finite() && self.epsilon > 0.0,
            "epsilon must be finite and positive."
        );
        assert!(
            self.momentum.is_finite() && (0.0..=1.0).contains(&self.momentum),
            "momentum must be finite and within [0, 1]."
        );
        let n = self.num_features;
        BatchNorm {
            gamma: Param::from_tensor(Tensor::ones([n], device)),
            beta: Param::from_tensor(Tensor::zeros([n], device)),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([n], device)),
            running_var: RunningState::new(Tensor::ones([n], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

impl BatchNorm {
    /// Normalises `input` `[batch, num_features, ...]`; see [`BatchNorm`].
    ///
    /// # Panics
    /// If the input has rank < 2 or its second axis is not `num_features`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let [features] = self.gamma.dims();
        assert!(
            D >= 2 && input.dims()[1] == features,
            "BatchNorm: input {:?} must be [batch, {features}, ...]",
            input.dims()
        );
        if input.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(input)
        } else {
            let device = input.device();
            burn::tensor::module::batch_norm(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    fn forward_train<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        let (output, mean, var) =
            wt_core::batch_norm_train(input, self.gamma.val(), self.beta.val(), self.epsilon);
        let update = |running: &RunningState<Tensor<1>>, batch: Tensor<1>| {
            let old = running.value_sync().to_device(&device);
            let new = old
                .mul_scalar(1.0 - self.momentum)
                .add(batch.detach().mul_scalar(self.momentum));
            running.update(new.detach());
        };
        update(&self.running_mean, mean);
        update(&self.running_var, var);
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::BatchNormConfig as BurnBatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    /// The output, the three gradients and the running statistics after two training steps
    /// equal Burn's `BatchNorm`'s; then evaluation uses the running statistics alike.
    #[test]
    fn batch_norm_trains_and_evaluates_like_burns() {
        let _serial = wt_core::device::device_test_lock();
        for (name, device) in wt_core::device::test_devices() {
            let ad = device.clone().autodiff();
            let ours = BatchNormConfig::new(3).with_momentum(0.3).init(&ad);
            let burns = BurnBatchNormConfig::new(3).with_momentum(0.3).init(&ad);
            let tol = Tolerance::<f32>::rel_abs(1e-4, 1e-4);
            for step in 0..2 {
                let x = Tensor::<4>::random(
                    [4, 3, 5, 5],
                    Distribution::Normal(1.0 + step as f64, 2.0),
                    &ad,
                )
                .require_grad();
                let up = Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(0.0, 1.0), &ad);
                let (y1, y2) = (ours.forward(x.clone()), burns.forward(x.clone()));
                y1.clone()
                    .into_data()
                    .assert_approx_eq::<f32>(&y2.clone().into_data(), tol);
                let g1 = (y1 * up.clone()).sum().backward();
                let g2 = (y2 * up).sum().backward();
                x.grad(&g1)
                    .unwrap()
                    .into_data()
                    .assert_approx_eq::<f32>(&x.grad(&g2).unwrap().into_data(), tol);
                ours.gamma
                    .grad(&g1)
                    .unwrap()
                    .into_data()
                    .assert_approx_eq::<f32>(&burns.gamma.grad(&g2).unwrap().into_data(), tol);
                ours.beta
                    .grad(&g1)
                    .unwrap()
                    .into_data()
                    .assert_approx_eq::<f32>(&burns.beta.grad(&g2).unwrap().into_data(), tol);
            }
            eprintln!("batch norm module on {name}");
            ours.running_mean
                .value()
                .into_data()
                .assert_approx_eq::<f32>(&burns.running_mean.value().into_data(), tol);
            ours.running_var
                .value()
                .into_data()
                .assert_approx_eq::<f32>(&burns.running_var.value().into_data(), tol);
            let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &device);
            let (ours, burns) = (ours.valid(), burns.valid());
            ours.forward(x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&burns.forward(x).into_data(), tol);
        }
    }

    /// A file saved from Burn's `BatchNorm` loads into this one, and back, field for field.
    #[test]
    fn records_are_burns() {
        let device = Device::flex();
        let dir = std::env::temp_dir().join(format!("wt-nn-batch-norm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bn.bpk");
        let mut burns = BurnBatchNormConfig::new(4).with_momentum(0.2).init(&device);
        burns.gamma = burns.gamma.map(|g| g.add_scalar(0.5));
        burns.clone().save_file(&path).unwrap();
        let ours = BatchNormConfig::new(4).init(&device).load_file(&path);
        ours.gamma
            .val()
            .into_data()
            .assert_eq(&burns.gamma.val().into_data(), true);
        ours.save_file(&path).unwrap();
        let back = BurnBatchNormConfig::new(4).init(&device).load_file(&path);
        back.gamma
            .val()
            .into_data()
            .assert_eq(&burns.gamma.val().into_data(), true);
        std::fs::remove_dir_all(&dir).ok();
    }
}
