//! Training-mode batch norm as one autodiff op whose forward and backward run through
//! [`Kernels`] (wt's fused kernels on Flex, Burn's ops elsewhere).
//!
//! Burn's own `batch_norm_train` is one autodiff op too, but its Flex implementation is the
//! generic composition (swap-dims copies, reductions, a dozen element-wise passes); this
//! extension routes the same maths to kernels a backend can override.

// NdArray is deprecated in Burn 0.22 but still a supported CPU backend here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, backend_extension};
use burn::tensor::Tensor;

use crate::kernels::Kernels;

/// Backend extension with training-mode batch norm; use [`batch_norm_train`].
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait NormBackend: Backend + Kernels {
    /// `(output, mean, biased variance)` of training-mode batch norm over every axis but 1.
    fn batch_norm_training(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        Self::batch_norm_forward(x, gamma, beta, epsilon)
    }
}

#[cfg(feature = "flex")]
impl NormBackend for burn::backend::Flex {}
#[cfg(feature = "ndarray")]
impl NormBackend for burn::backend::NdArray {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl NormBackend for burn::backend::Cube {}

/// Backward of batch norm (parents: x, gamma, beta).
#[derive(Debug)]
struct BatchNormBackward;

/// The checkpointed input and gamma, the batch statistics, epsilon.
type NormState<B> = (
    NodeId,
    NodeId,
    <B as burn::backend::BackendTypes>::FloatTensorPrimitive,
    <B as burn::backend::BackendTypes>::FloatTensorPrimitive,
    f64,
);

impl<B: Kernels> Backward<B, 3> for BatchNormBackward {
    type State = NormState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, mean, variance, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma_state);
        let (dx, dgamma, dbeta) = B::batch_norm_gradients(x, gamma, mean, variance, epsilon, grad);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, dgamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

impl<B: NormBackend, C: CheckpointStrategy> NormBackend for Autodiff<B, C> {
    fn batch_norm_training(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let untracked = |t| <Self as AutodiffBackend>::from_inner(t);
        let prep = BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let forward = |x: FloatTensor<Self>, gamma: FloatTensor<Self>| {
            let (x, gamma, beta) = (
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            );
            B::batch_norm_forward(x, gamma, beta, epsilon)
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let (y, mean, var) = forward(x, gamma);
                let state = (x_state, gamma_state, mean.clone(), var.clone(), epsilon);
                (prep.finish(state, y), untracked(mean), untracked(var))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = forward(x, gamma);
                (prep.finish(y), untracked(mean), untracked(var))
            }
        }
    }
}

/// Training-mode batch norm: normalises `x` `[batch, channels, ...]` by the batch's mean and
/// biased variance per channel, then scales by `gamma` and shifts by `beta` (`[channels]`).
/// Returns `(output, mean, variance)`; only the output is differentiable. The same maths as
/// Burn's `burn::tensor::module::batch_norm_train`, one fused kernel each way on Flex.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let (y, mean, var) = <burn::backend::Dispatch as NormBackend>::batch_norm_training(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_devices;
    use burn::tensor::{Distribution, Tolerance};

    /// Output, statistics and the three gradients against Burn's `batch_norm_train` through
    /// autodiff, on every device, on random inputs with a non-zero mean.
    #[test]
    fn batch_norm_matches_burns_op_on_every_device() {
        let _serial = crate::device::device_test_lock();
        for (name, device) in test_devices() {
            let ad = device.clone().autodiff();
            let x = Tensor::<4>::random([3, 4, 5, 6], Distribution::Normal(0.5, 2.0), &device);
            let gamma = Tensor::<1>::random([4], Distribution::Normal(1.0, 0.3), &device);
            let beta = Tensor::<1>::random([4], Distribution::Normal(0.0, 0.3), &device);
            let up = Tensor::<4>::random([3, 4, 5, 6], Distribution::Normal(0.0, 1.0), &device);
            let run = |fused: bool| {
                let xt = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
                let gt = Tensor::<1>::from_data(gamma.to_data(), &ad).require_grad();
                let bt = Tensor::<1>::from_data(beta.to_data(), &ad).require_grad();
                let (y, mean, var) = if fused {
                    batch_norm_train(xt.clone(), gt.clone(), bt.clone(), 1e-5)
                } else {
                    let r = burn::tensor::module::batch_norm_train(
                        xt.clone(),
                        gt.clone(),
                        bt.clone(),
                        1e-5,
                    );
                    (r.output, r.mean, r.variance)
                };
                let g = (y.clone() * Tensor::from_data(up.to_data(), &ad))
                    .sum()
                    .backward();
                let grads = [
                    xt.grad(&g).unwrap().into_data(),
                    gt.grad(&g).unwrap().into_data(),
                    bt.grad(&g).unwrap().into_data(),
                ];
                (
                    y.inner().into_data(),
                    mean.inner().into_data(),
                    var.inner().into_data(),
                    grads,
                )
            };
            let (ours, burns) = (run(true), run(false));
            let tol = Tolerance::<f32>::rel_abs(1e-4, 1e-4);
            eprintln!("batch norm on {name}");
            ours.0.assert_approx_eq::<f32>(&burns.0, tol);
            ours.1.assert_approx_eq::<f32>(&burns.1, tol);
            ours.2.assert_approx_eq::<f32>(&burns.2, tol);
            for (a, b) in ours.3.iter().zip(&burns.3) {
                a.assert_approx_eq::<f32>(b, tol);
            }
        }
    }
}
