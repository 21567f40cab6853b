//! [`FeedbackOptimizer`]: a Burn optimizer with the rules' per-step work around its step, so
//! that a training loop never orders [`add_feedback_gradients`] and [`mirror_update`] by hand.

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::Bytes;
use wt_nn::{add_feedback_gradients, mirror_update};

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::error::TrainError;
use crate::trainer::optimizer;

/// Burn's [`ModuleOptimizer`] plus the rules' work of every step: before the step, the
/// gradients of `B` that backward does not give (the weight mirror's pseudo-gradient in
/// `gradient` mode, Kolen-Pollack's decay on `B`); after it, the weight mirror's `direct`
/// update of `B` from the new `W`.
///
/// ```ignore
/// let mut optim = FeedbackOptimizer::new(&OptimizerConfig { .. });
/// let grads = GradientsParams::from_grads(loss.backward(), &model);
/// model = optim.step(lr, model, grads);
/// ```
pub struct FeedbackOptimizer {
    inner: ModuleOptimizer,
    /// The momentum β of SGD (0 for Adam and no momentum): a constant gradient's step
    /// converges to `lr / (1 − β)`, the step the mirror's pseudo-gradient is scaled for.
    momentum: f64,
}

impl FeedbackOptimizer {
    /// The optimizer a config asks for ([`optimizer`]) with the rules' work around it.
    pub fn new(config: &OptimizerConfig) -> Self {
        let momentum = match config.kind {
            OptimizerKind::Sgd | OptimizerKind::BmSgd => config.momentum,
            OptimizerKind::Adam => 0.0,
        };
        Self::wrap(optimizer(config), momentum)
    }

    /// Any Burn optimizer; `momentum` is its SGD momentum β (0 for Adam or none), which sets
    /// the step a constant gradient converges to, `lr / (1 − β)`.
    pub fn wrap(inner: impl Into<ModuleOptimizer>, momentum: f64) -> Self {
        Self {
            inner: inner.into(),
            momentum,
        }
    }

    /// One training step at learning rate `lr`: `B`'s extra gradients, the optimizer's step,
    /// the mirror's update. `grads` are the gradients of the backward pass.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        Self::step_with(&mut self.inner, lr, self.momentum, model, grads)
    }

    /// [`step`](Self::step) with the gradients of several data-parallel shards, each on its
    /// device: they are moved to the first shard's device and summed there in shard order,
    /// then one [`step`](Self::step) runs on that device. The model (which must be on that
    /// device) and the optimizer's state stay there. (Burn's own `step_multi` updates each
    /// parameter on a device of its choosing and leaves it there, so a model would end a step
    /// spread over the devices and the rules' `B` updates would join tensors of two devices.)
    pub fn step_multi<M: Module>(&mut self, lr: f64, model: M, grads: MultiGradientsParams) -> M {
        let mut shards = grads.grads.into_iter();
        let Some((first, device)) = shards.next() else {
            return model;
        };
        let mut total = GradientsAccumulator::<M>::new();
        total.accumulate(&model, first);
        for (grads, _) in shards {
            total.accumulate(&model, grads.to_device(&device, &model));
        }
        self.step(lr, model, total.grads())
    }

    /// [`step`](Self::step) around a Burn optimizer held elsewhere, e.g. by burn-train's
    /// `Learner`, whose `TrainStep::optimize` hook hands it over (`examples/burn_train.rs`).
    /// `momentum` is the optimizer's SGD momentum β (0 for Adam); the weight mirror's
    /// pseudo-gradient is scaled by the base learning rate of `lr`.
    pub fn step_with<M: Module>(
        optim: &mut ModuleOptimizer,
        lr: impl Into<ModuleLearningRate>,
        momentum: f64,
        model: M,
        mut grads: GradientsParams,
    ) -> M {
        let lr = lr.into();
        add_feedback_gradients(&model, &mut grads, lr.base() / (1.0 - momentum));
        let model = optim.step(lr, model, grads);
        mirror_update(model)
    }

    /// The optimizer's state as bytes (momentum buffers, Adam moments), for checkpoints.
    pub fn to_bytes(&self) -> Result<Bytes, TrainError> {
        (self.inner.into_bytes())
            .map_err(|e| TrainError::Checkpoint(format!("serialising the optimizer: {e}")))
    }

    /// The optimizer with the state of [`to_bytes`](Self::to_bytes).
    pub fn with_bytes(self, bytes: Bytes) -> Result<Self, String> {
        let inner = self.inner.from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(Self { inner, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tensor};
    use wt_core::{KolenPollack, MirrorUpdate, Rule, WeightMirror};
    use wt_models::{Architecture, ImageClassifier, Model, ModelConfig};

    /// Every parameter and buffer of `m`: its record's bytes.
    fn values(m: &Model) -> Vec<u8> {
        crate::trainer::record_bytes(m).unwrap().to_vec()
    }

    /// Two steps of the wrapper equal the three calls in their order (B's extra gradients,
    /// the optimizer's step, the mirror's update), for the rules that need each: KP with its
    /// decay on B (before the step), WM in `gradient` mode (before) and in `direct` mode
    /// (after).
    #[test]
    fn steps_as_the_rules_work_in_order_around_burns_step() {
        let _serial = wt_core::device::device_test_lock();
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let config = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-3,
            betas: (0.9, 0.999),
        };
        let wm = |update| {
            Rule::WeightMirror(WeightMirror {
                update,
                ..WeightMirror::default()
            })
        };
        let rules = [
            Rule::KolenPollack(KolenPollack {
                feedback_decay: 0.05,
            }),
            wm(MirrorUpdate::Gradient),
            wm(MirrorUpdate::Direct),
        ];
        for rule in rules {
            let mut cfg = ModelConfig::new(Architecture::Mlp, 10, 1, 8, rule);
            cfg.hidden = vec![16];
            device.seed(3);
            let x = Tensor::<4>::random([4, 1, 8, 8], Distribution::Normal(0.0, 1.0), &ad);
            let init = cfg.init(&ad);
            // Burn initialises parameters lazily, once for all clones: draw them now, so that
            // both copies' noise comes from the same point of the device's stream.
            values(&init);
            let grads_of = |m: &Model| {
                let loss = m.forward(x.clone()).powi_scalar(2).mean();
                GradientsParams::from_grads(loss.backward(), m)
            };
            let (mut ours, mut theirs) = (init.clone(), init);
            let mut wrapped = FeedbackOptimizer::new(&config);
            let mut plain = optimizer(&config);
            for step in 0..2 {
                device.seed(100 + step);
                let grads = grads_of(&ours);
                ours = wrapped.step(config.lr, ours, grads);
                device.seed(100 + step);
                let mut grads = grads_of(&theirs);
                add_feedback_gradients(&theirs, &mut grads, config.lr / (1.0 - config.momentum));
                theirs = mirror_update(plain.step(config.lr, theirs, grads));
            }
            let (a, b) = (values(&ours), values(&theirs));
            assert!(a == b, "{rule:?}: the wrapper's step differs");
        }
    }

    /// wt's SGD recipe is PyTorch's `SGD(lr, momentum=μ, dampening=0, weight_decay=λ)`, written
    /// out over two steps for a backprop layer whose loss `Σ (x·W + b) ∘ U` has the constant
    /// gradient `G = xᵀ·U`: `d₁ = G + λW₀`, `buf₁ = d₁`, `W₁ = W₀ − lr·buf₁`; `d₂ = G + λW₁`,
    /// `buf₂ = μ·buf₁ + d₂`, `W₂ = W₁ − lr·buf₂` (Burn's default dampening, 0.1, would give
    /// `buf₂ = μ·buf₁ + 0.9·d₂`).
    #[test]
    fn sgd_is_pytorchs_sgd_without_dampening() {
        let _serial = wt_core::device::device_test_lock();
        let device = Device::flex();
        let ad = device.clone().autodiff();
        device.seed(9);
        let (lr, mu, wd) = (0.1, 0.9, 0.01);
        let layer = wt_nn::FeedbackLinearConfig::new(5, 4).init(&ad);
        let x = Tensor::<2>::random([3, 5], Distribution::Normal(0.0, 1.0), &ad);
        let up = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &ad);
        let w0 = layer.weight.val().inner();
        let g = x.clone().inner().transpose().matmul(up.clone().inner());
        let mut optim = FeedbackOptimizer::new(&OptimizerConfig::sgd(lr, mu, wd));
        let mut layer = layer;
        for _ in 0..2 {
            let loss = (layer.forward(x.clone()) * up.clone()).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = optim.step(lr, layer, grads);
        }
        let buf1 = g.clone() + w0.clone().mul_scalar(wd);
        let w1 = w0 - buf1.clone().mul_scalar(lr);
        let buf2 = buf1.mul_scalar(mu) + g + w1.clone().mul_scalar(wd);
        let w2 = w1 - buf2.mul_scalar(lr);
        let got = layer.weight.val().inner();
        let gap = (got - w2.clone()).abs().max().into_scalar::<f32>();
        let scale = w2.abs().max().into_scalar::<f32>();
        assert!(
            gap <= 1e-6 * scale.max(1.0),
            "W after two steps off by {gap}"
        );
    }
}
