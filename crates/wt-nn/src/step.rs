//! Model-wide helpers: per-step work of the rules, mirror warm-up, alignment reports. Each
//! walks every [`FeedbackLinear`](crate::FeedbackLinear) and
//! [`FeedbackConv2d`](crate::FeedbackConv2d) of any Burn model, however nested, with no list
//! of layers.
//!
//! A training step with every rule:
//! ```text
//! let loss = model.forward_loss(batch);
//! let mut grads = GradientsParams::from_grads(loss.backward(), &model);
//! wt_nn::add_feedback_gradients(&model, &mut grads, lr / (1.0 - momentum)); // WM, Gradient
//! model = optim.step(lr, model, grads);
//! model = wt_nn::mirror_update(model); // WM, Direct (the default)
//! ```

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use wt_core::{Rule, WeightAlignment, angle_degrees};

use crate::pass::{self, IdentityMapper, LayerSnapshot, Pass, PathVisitor};

/// Adds the gradients of `B` that do not come out of backward: the weight mirror's
/// pseudo-gradient `−(η_B/η)·ξᵀ(ξW)/n + (λ_B/η)·B` for every weight-mirror layer whose
/// update is [`MirrorUpdate::Gradient`](wt_core::MirrorUpdate::Gradient), so the optimizer's
/// step of size `learning_rate` (η) applies the mirror update (with momentum β, pass
/// `lr / (1 − β)`, the step size momentum converges to), and Kolen-Pollack's decay on `B`
/// alone, `λ_K·B` ([`KolenPollack::feedback_decay`](wt_core::KolenPollack), when not 0), added
/// to the W gradient its `B` received in backward. Other rules need nothing here: brSF
/// redraws in forward, and [`Direct`](wt_core::MirrorUpdate::Direct) mirrors update in
/// [`mirror_update`].
pub fn add_feedback_gradients<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    learning_rate: f64,
) {
    let taken = std::mem::take(grads);
    let ((), ended) = pass::with_pass(
        Pass::Step {
            learning_rate,
            grads: taken,
        },
        || model.visit(&mut PathVisitor),
    );
    if let Pass::Step { grads: out, .. } = ended {
        *grads = out;
    }
}

/// Applies `steps` plain weight-mirror updates `B ← (1 − λ_B)·B + η_B·ξᵀ(ξW)/n` to every
/// weight-mirror layer (a warm-up before training, or mirror mode on its own). Other layers
/// are returned unchanged.
pub fn mirror_steps<M: Module>(model: M, steps: usize) -> M {
    pass::with_pass(Pass::Mirror { steps: Some(steps) }, || {
        model.map(&mut IdentityMapper)
    })
    .0
}

/// The weight mirror's per-step update: every weight-mirror layer whose update is
/// [`MirrorUpdate::Direct`](wt_core::MirrorUpdate::Direct) (the default) runs its own
/// `mirror_steps` plain updates on the current `W`. Call it after each optimizer step; other
/// layers, and mirrors fed through [`add_feedback_gradients`], are returned unchanged.
pub fn mirror_update<M: Module>(model: M) -> M {
    pass::with_pass(Pass::Mirror { steps: None }, || {
        model.map(&mut IdentityMapper)
    })
    .0
}

/// Runs a report pass: one snapshot of every feedback layer, in visiting order.
fn snapshots<M: Module>(model: &M) -> Vec<LayerSnapshot> {
    let ((), ended) = pass::with_pass(
        Pass::Report {
            path: Vec::new(),
            layers: Vec::new(),
        },
        || model.visit(&mut PathVisitor),
    );
    match ended {
        Pass::Report { layers, .. } => layers,
        _ => unreachable!("a report pass ends as a report pass"),
    }
}

/// Dotted paths of every feedback layer of `model`, in visiting order.
pub fn layer_paths<M: Module>(model: &M) -> Vec<String> {
    snapshots(model).into_iter().map(|l| l.path).collect()
}

/// Number of values the feedback layers of `model` store for their rules (`B` for FA, KP
/// and WM, `|R0|` for frSF; nothing for BP, uSF and brSF). `model.num_params()` minus this is
/// the parameter count of the same network trained with backprop.
pub fn feedback_parameter_count<M: Module>(model: &M) -> usize {
    snapshots(model).iter().map(|l| l.stored_feedback).sum()
}

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

/// Alignment of one feedback layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerAlignment {
    /// Dotted path of the layer in the model (`fc1`, `blocks.0.conv1`, ...).
    pub path: String,
    /// `linear` or `conv2d`.
    pub kind: &'static str,
    /// Rule name.
    pub rule: &'static str,
    /// Angle between the B the backward pass uses and W, degrees; ‖B‖/‖W‖.
    pub weight: WeightAlignment,
}

/// Angle between `B` and `W` and `‖B‖/‖W‖` for every feedback layer, in visiting order.
///
/// A direct rule's (DFA, DKP) matrix `D` maps the output error to the layer's input, so it is
/// compared with what backprop would send there in a linear net: the product `W_l·…·W_L` of
/// the layer's and the following dense layers' weights (`[d_input, classes]`), formed for the
/// dense layers at the end of the visiting order whose shapes chain (an MLP's every layer, a
/// LeNet's or ResNet's classifier tail); `‖B‖/‖W‖` is then `‖D‖/‖W_l·…·W_L‖`. Where no such
/// product is formed (convolutions) the angle is NaN and the ratio `‖D‖/‖W‖`.
pub fn weight_alignment<M: Module>(model: &M) -> Vec<LayerAlignment> {
    let layers = snapshots(model);
    let mut products: Vec<Option<Tensor<2>>> = vec![None; layers.len()];
    let mut product: Option<Tensor<2>> = None;
    for (i, l) in layers.iter().enumerate().rev() {
        let &[d_input, d_output] = l.weight_dims.as_slice() else {
            break;
        };
        if l.kind != "linear" {
            break;
        }
        let w = l.weight.clone().reshape([d_input, d_output]);
        product = match product {
            None => Some(w),
            Some(p) if p.dims()[0] == d_output => Some(w.matmul(p)),
            Some(_) => break,
        };
        products[i] = product.clone();
    }
    let norm = |t: Tensor<1>| t.powi_scalar(2).sum().into_scalar::<f64>().sqrt();
    layers
        .into_iter()
        .zip(products)
        .map(|(l, product)| {
            let direct = l.rule.parse::<Rule>().is_ok_and(|r| r.direct().is_some());
            let weight = if !direct {
                WeightAlignment::measure(l.feedback, l.weight)
            } else {
                match product.map(|p| p.flatten::<1>(0, 1)) {
                    Some(p) if p.dims() == l.feedback.dims() => {
                        WeightAlignment::measure(l.feedback, p)
                    }
                    _ => WeightAlignment {
                        angle_deg: f64::NAN,
                        norm_ratio: norm(l.feedback) / norm(l.weight),
                    },
                }
            };
            LayerAlignment {
                path: l.path,
                kind: l.kind,
                rule: l.rule,
                weight,
            }
        })
        .collect()
}

/// Marks `x` as the input of a residual block (or any subnetwork) whose first feedback layer
/// is `first`: in [`gradient_alignment`]'s probe passes the error reaching `x` is measured
/// too, and reported as a [`BlockAlignment`] named after `first`'s parent module
/// (`blocks.3.conv1` → `blocks.3`). Outside a probe pass it returns `x` untouched. The zoo's
/// ResNet blocks call it on their input, so the error angle there includes the shortcut's
/// share of the error, which the convolutions' own probes (inside the residual branch) miss.
pub fn probe_block_input<const D: usize>(x: Tensor<D>, first: &crate::FeedbackConv2d) -> Tensor<D> {
    pass::probe_block_input(x, first.weight.id)
}

/// The error angle at the input of one block marked with [`probe_block_input`].
#[derive(Debug, Clone, PartialEq)]
pub struct BlockAlignment {
    /// Dotted path of the block (the parent of its first feedback layer).
    pub path: String,
    /// Angle (degrees) between the error reaching the block's input under the rules and under
    /// backprop.
    pub error_angle_deg: f64,
}

/// Layer and block alignments of one probe batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeAlignment {
    /// Every feedback layer, in forward order.
    pub layers: Vec<GradientAlignment>,
    /// Every block marked with [`probe_block_input`], in forward order.
    pub blocks: Vec<BlockAlignment>,
}

/// How one feedback layer's gradients under its rule compare with backprop's on one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientAlignment {
    /// Dotted path of the layer in the model.
    pub path: String,
    /// Angle (degrees) between the error reaching the layer's input under the rules and under
    /// backprop (for the first layer, the gradient w.r.t. the data).
    pub error_angle_deg: f64,
    /// Angle (degrees) between the layer's weight gradient under the rules and backprop's
    /// (the update alignment of the sign-symmetry and feedback-alignment papers).
    pub update_angle_deg: f64,
}

/// Error and update angles of every feedback layer on one batch, in forward order, and the
/// error angle at the input of every block marked with [`probe_block_input`].
///
/// `loss` runs the model's forward on one batch and returns the scalar loss; it is called
/// twice (once with the rules, once with every `B := W`). The model must be on an autodiff
/// device, and its training-mode forwards run as in training (batch norm moves its running
/// statistics: pass a copy, e.g. `model.valid().train()`, to keep the model as it is).
pub fn gradient_alignment<M: Module>(model: &M, loss: impl Fn(&M) -> Tensor<1>) -> ProbeAlignment {
    let names: std::collections::HashMap<_, _> = snapshots(model)
        .into_iter()
        .map(|l| (l.weight_id, l.path))
        .collect();
    let run = |force_backprop: bool| {
        let (loss_value, ended) = pass::with_pass(
            Pass::Probe {
                force_backprop,
                probes: Vec::new(),
            },
            || loss(model),
        );
        let Pass::Probe { probes, .. } = ended else {
            unreachable!("probe pass")
        };
        let grads = loss_value.backward();
        let mut weight_grads = WeightGradients {
            grads: &grads,
            wanted: &names,
            found: std::collections::HashMap::new(),
        };
        model.visit(&mut weight_grads);
        let found = weight_grads.found;
        probes
            .into_iter()
            .map(|p| {
                let error = p
                    .tensor
                    .grad(&grads)
                    .unwrap_or_else(|| p.tensor.zeros_like().inner());
                let update = found.get(&p.weight_id).cloned();
                (p.weight_id, p.at_block_input, error, update)
            })
            .collect::<Vec<_>>()
    };
    let with_rule = run(false);
    let with_bp = run(true);
    let mut out = ProbeAlignment::default();
    for ((id, at_block, e_rule, u_rule), (_, _, e_bp, u_bp)) in with_rule.into_iter().zip(with_bp) {
        let path = names.get(&id).cloned().unwrap_or_default();
        let error_angle_deg = angle_degrees(e_rule, e_bp);
        if at_block {
            let path = path
                .rsplit_once('.')
                .map_or(path.clone(), |(parent, _)| parent.to_string());
            out.blocks.push(BlockAlignment {
                path,
                error_angle_deg,
            });
            continue;
        }
        // A weight without a gradient (frozen) reads 90°, as zero tensors do.
        let update_angle_deg = match (u_rule, u_bp) {
            (Some(u_rule), Some(u_bp)) => angle_degrees(u_rule, u_bp),
            _ => 90.0,
        };
        out.layers.push(GradientAlignment {
            path,
            error_angle_deg,
            update_angle_deg,
        });
    }
    out
}

/// Collects the weight gradients (flattened) of the layers named in `wanted`.
struct WeightGradients<'a> {
    grads: &'a burn::tensor::Gradients,
    wanted: &'a std::collections::HashMap<burn::module::ParamId, String>,
    found: std::collections::HashMap<burn::module::ParamId, Tensor<1>>,
}

impl burn::module::ModuleVisitor for WeightGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if self.wanted.contains_key(&param.id)
            && let Some(g) = param.val().grad(self.grads)
        {
            self.found.insert(param.id, g.flatten::<1>(0, D - 1));
        }
    }
}

/// Angle (degrees) between the error that reaches each feedback layer's input under its rule
/// and under true backprop on the same batch, in forward order, with the layer's path: the
/// error angles of [`gradient_alignment`].
pub fn error_alignment<M: Module>(model: &M, loss: impl Fn(&M) -> Tensor<1>) -> Vec<(String, f64)> {
    gradient_alignment(model, loss)
        .layers
        .into_iter()
        .map(|a| (a.path, a.error_angle_deg))
        .collect()
}
