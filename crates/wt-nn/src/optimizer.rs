//! [`FeedbackOptimizer`]: a Burn optimizer with the rules' per-step work around its step, so
//! that a training loop never orders [`add_feedback_gradients`] and [`mirror_update`] by hand.
//! It lives beside the layers: a user of the layers alone (no wt-train) has it.

use burn::module::Module;
use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::Bytes;

use crate::step::{add_feedback_gradients, mirror_update};

/// wt's SGD as Burn's config: PyTorch's `SGD(momentum, dampening=0, nesterov, weight_decay)`
/// (no momentum when `momentum` is 0, no decay when `weight_decay` is 0). Burn's own
/// `MomentumConfig` defaults to dampening 0.1; this is the one place wt builds SGD.
pub fn sgd_config(momentum: f64, nesterov: bool, weight_decay: f64) -> SgdConfig {
    SgdConfig::new()
        .with_momentum(momentum_config(momentum, nesterov))
        .with_weight_decay(
            (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
        )
}

/// PyTorch's momentum as Burn's config: `v ← μ·v + d` without dampening (first step `v = d`),
/// Nesterov or not; `None` when `momentum` is 0. What [`sgd_config`] and wt-train's
/// Batch-Manhattan SGD take.
pub fn momentum_config(momentum: f64, nesterov: bool) -> Option<MomentumConfig> {
    (momentum > 0.0).then(|| {
        MomentumConfig::new()
            .with_momentum(momentum)
            .with_dampening(0.0)
            .with_nesterov(nesterov)
    })
}

/// Burn's [`ModuleOptimizer`] plus the rules' work of every step: before the step, the
/// gradients of `B` that backward does not give (the weight mirror's pseudo-gradient in
/// `gradient` mode, Kolen-Pollack's decay on `B`); after it, the weight mirror's `direct`
/// update of `B` from the new `W`.
///
/// ```ignore
/// let mut optim = FeedbackOptimizer::sgd(0.9, 1e-4);
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
    /// wt's SGD: PyTorch's `SGD(momentum, dampening=0, weight_decay)` (heavy-ball momentum
    /// without dampening, not Nesterov; L2 decay on every parameter with a gradient, `B` of KP
    /// and WM included), with the rules' work around its step. The momentum is given once: it
    /// sets both Burn's SGD and the step the mirror's pseudo-gradient is scaled for.
    pub fn sgd(momentum: f64, weight_decay: f64) -> Self {
        Self::wrap(sgd_config(momentum, false, weight_decay).init(), momentum)
    }

    /// Any Burn optimizer; `momentum` must be its SGD momentum β (0 for Adam or none): it sets
    /// the step a constant gradient converges to, `lr / (1 − β)`, which the weight mirror's
    /// `gradient` mode is scaled for. [`sgd`](Self::sgd) builds both from one value.
    pub fn wrap(inner: impl Into<ModuleOptimizer>, momentum: f64) -> Self {
        Self {
            inner: inner.into(),
            momentum,
        }
    }

    /// One training step at learning rate `lr`: `B`'s extra gradients, the optimizer's step,
    /// the mirror's update. `grads` are the gradients of the backward pass.
    ///
    /// # Panics
    /// When that backward pass reached DFA layers without an output error
    /// ([`MissingOutputError`](wt_core::MissingOutputError)), with its message; use
    /// [`try_step`](Self::try_step) for the error as a value.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        Self::step_with(&mut self.inner, lr, self.momentum, model, grads)
    }

    /// [`step`](Self::step), or the [`MissingOutputError`](wt_core::MissingOutputError) of the
    /// backward pass, before anything is updated.
    pub fn try_step<M: Module>(
        &mut self,
        lr: f64,
        model: M,
        grads: GradientsParams,
    ) -> Result<M, wt_core::MissingOutputError> {
        wt_core::take_missing_output_error()?;
        Ok(self.step(lr, model, grads))
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
    /// pseudo-gradient is scaled by the base learning rate of `lr`. Panics as [`step`](Self::step)
    /// does.
    pub fn step_with<M: Module>(
        optim: &mut ModuleOptimizer,
        lr: impl Into<ModuleLearningRate>,
        momentum: f64,
        model: M,
        mut grads: GradientsParams,
    ) -> M {
        if let Err(missing) = wt_core::take_missing_output_error() {
            panic!("{missing}");
        }
        let lr = lr.into();
        add_feedback_gradients(&model, &mut grads, lr.base() / (1.0 - momentum));
        let model = optim.step(lr, model, grads);
        mirror_update(model)
    }

    /// The optimizer's state as bytes (momentum buffers, Adam moments), for checkpoints.
    pub fn to_bytes(&self) -> Result<Bytes, String> {
        (self.inner.into_bytes()).map_err(|e| format!("serialising the optimizer: {e}"))
    }

    /// The optimizer with the state of [`to_bytes`](Self::to_bytes).
    pub fn with_bytes(self, bytes: Bytes) -> Result<Self, String> {
        let inner = self.inner.from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(Self { inner, ..self })
    }
}
