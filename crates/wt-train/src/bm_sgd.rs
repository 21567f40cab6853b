//! Batch-Manhattan SGD (Liao, Leibo & Poggio 2016, "How Important is Weight Symmetry in
//! Backpropagation?"), as willwx/sign-symmetry's `optim/bm_sgd.py` runs it: SGD whose
//! gradient is replaced by its sign, `d = sign(g) + λ·θ`, then PyTorch's momentum
//! (`v ← β·v + (1 − dampening)·d`, the first step `v = d`; Nesterov `d + β·v`), then
//! `θ ← θ − η·d`.

use burn::optim::decay::{WeightDecay, WeightDecayConfig};
use burn::optim::momentum::{Momentum, MomentumConfig};
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, SgdState};
use burn::tensor::{Device, Tensor};

/// Configuration of [`BatchManhattanSgd`].
#[derive(Debug, Clone, Default)]
pub struct BatchManhattanSgdConfig {
    /// L2 weight decay, added to the gradient's sign (not signed itself).
    pub weight_decay: Option<WeightDecayConfig>,
    /// Momentum, applied to `sign(g) + λ·θ`.
    pub momentum: Option<MomentumConfig>,
}

impl BatchManhattanSgdConfig {
    /// The optimizer for a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(BatchManhattanSgd {
            weight_decay: self.weight_decay.as_ref().map(WeightDecay::new),
            momentum: self.momentum.as_ref().map(Momentum::new),
        })
    }
}

/// SGD on the sign of each parameter's batch gradient; see the [module](self) docs.
#[derive(Clone)]
pub struct BatchManhattanSgd {
    weight_decay: Option<WeightDecay>,
    momentum: Option<Momentum>,
}

impl Optimizer for BatchManhattanSgd {
    // SGD's state (the momentum buffer): the same record layout as Burn's `Sgd`.
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let mut direction = grad.sign();
        if let Some(decay) = &self.weight_decay {
            direction = decay.transform(direction, tensor.clone());
        }
        let mut velocity = state.and_then(|s| s.momentum);
        if let Some(momentum) = &self.momentum {
            let (d, v) = momentum.transform(direction, velocity);
            direction = d;
            velocity = Some(v);
        }
        (
            tensor - direction.mul_scalar(lr),
            Some(SgdState::new(velocity)),
        )
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.map(|m| m.to_device(device));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::GradientsParams;
    use burn::tensor::{Distribution, Tolerance};

    #[derive(Module, Debug)]
    struct Weights {
        w: Param<Tensor<2>>,
    }

    /// Two steps against the update written out: `d = sign(g) + λθ`, `v₁ = d₁`,
    /// `v₂ = β·v₁ + d₂`, `θ ← θ − η·v` (no dampening), on a gradient with mixed signs and
    /// magnitudes (a plain SGD step would differ).
    #[test]
    fn steps_by_the_sign_of_the_gradient_with_decay_and_momentum() {
        let _serial = wt_core::device::device_test_lock();
        let device = Device::flex().autodiff();
        let init = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
        let target = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 3.0), &device);
        let (lr, decay, beta) = (0.05, 0.01, 0.9);
        let mut optim = BatchManhattanSgdConfig {
            weight_decay: Some(WeightDecayConfig::new(decay as f32)),
            momentum: Some(
                MomentumConfig::new()
                    .with_momentum(beta)
                    .with_dampening(0.0),
            ),
        }
        .init();
        let mut model = Weights {
            w: Param::from_tensor(init.clone().detach().require_grad()),
        };
        // L = Σ (w − t)²: g = 2(w − t), of mixed signs and magnitudes.
        let loss = |m: &Weights| (m.w.val() - target.clone()).powi_scalar(2).sum();
        let mut theta = init.inner();
        let mut v: Option<Tensor<2>> = None;
        for _ in 0..2 {
            let g = (theta.clone() - target.clone().inner()).mul_scalar(2.0);
            let dir = g.sign() + theta.clone().mul_scalar(decay);
            let vel = match v {
                Some(prev) => prev.mul_scalar(beta) + dir,
                None => dir,
            };
            theta = theta - vel.clone().mul_scalar(lr);
            v = Some(vel);

            let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
            model = optim.step(lr, model, grads);
        }
        model
            .w
            .val()
            .inner()
            .into_data()
            .assert_approx_eq::<f32>(&theta.into_data(), Tolerance::rel_abs(1e-5, 1e-6));
    }
}
