//! [`FeedbackOptimizer`] (defined in wt-nn, beside the layers) and the optimizer an
//! [`OptimizerConfig`] asks for: Burn's ([`optimizer`]: SGD, Adam, AdamW or Batch-Manhattan SGD),
//! wrapped with the rules' work around its step by [`OptimizerConfig::init`].

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer};

use crate::bm_sgd::BatchManhattanSgdConfig;
use crate::config::{OptimizerConfig, OptimizerKind};

pub use wt_nn::FeedbackOptimizer;

/// The optimizer a config asks for. SGD momentum uses no dampening (PyTorch's convention).
pub fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.kind {
        OptimizerKind::Sgd => {
            wt_nn::sgd_config(config.momentum, config.nesterov, config.weight_decay).init()
        }
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(config.betas.0)
            .with_beta_2(config.betas.1)
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_beta_1(config.betas.0)
            .with_beta_2(config.betas.1)
            .with_weight_decay(config.weight_decay as f32)
            .init(),
        OptimizerKind::BmSgd => BatchManhattanSgdConfig {
            weight_decay: decay,
            momentum: wt_nn::momentum_config(config.momentum, config.nesterov),
        }
        .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::{FeedbackOptimizer, optimizer};
    use crate::config::{OptimizerConfig, OptimizerKind};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Tensor};
    use wt_core::{KolenPollack, MirrorUpdate, Rule, WeightMirror};
    use wt_models::{Architecture, ImageClassifier, Model, ModelConfig};
    use wt_nn::{add_feedback_gradients, mirror_update};

    /// Every parameter and buffer of `m`: its record's bytes.
    fn values(m: &Model) -> Vec<u8> {
        crate::checkpoint::record_bytes(m).unwrap().to_vec()
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
            let mut wrapped = config.init();
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
        let w0 = layer.weight().val().inner();
        let g = x.clone().inner().transpose().matmul(up.clone().inner());
        let buf1 = g.clone() + w0.clone().mul_scalar(wd);
        let w1 = w0 - buf1.clone().mul_scalar(lr);
        let buf2 = buf1.mul_scalar(mu) + g + w1.clone().mul_scalar(wd);
        let w2 = w1 - buf2.mul_scalar(lr);
        // The config's optimizer (what `fit` builds) and the layers' own constructor.
        let built = [
            (
                "OptimizerConfig::sgd",
                OptimizerConfig::sgd(lr, mu, wd).init(),
            ),
            ("FeedbackOptimizer::sgd", FeedbackOptimizer::sgd(mu, wd)),
        ];
        for (what, mut optim) in built {
            let mut layer = layer.clone();
            for _ in 0..2 {
                let loss = (layer.forward(x.clone()) * up.clone()).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &layer);
                layer = optim.step(lr, layer, grads);
            }
            let got = layer.weight().val().inner();
            let gap = (got - w2.clone()).abs().max().into_scalar::<f32>();
            let scale = w2.clone().abs().max().into_scalar::<f32>();
            assert!(
                gap <= 1e-6 * scale.max(1.0),
                "{what}: W after two steps off by {gap}"
            );
        }
    }
}
