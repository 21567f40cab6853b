//! Per-layer reports over any Burn model: the paths of its feedback layers, what they store,
//! how `B` lines up with `W` ([`weight_alignment`]), and how the rules' errors and updates line
//! up with backprop's on a batch ([`gradient_alignment`]).

use burn::module::{Module, ParamId};
use burn::tensor::Tensor;
use wt_core::{Backprop, Rule, WeightAlignment, angle_degrees};

use crate::hook::{FeedbackLayer, LayerVisitor, visit_layers};
use crate::layer_rules::map_rules_at;
use crate::probe;

/// What a report keeps of one feedback layer.
#[derive(Debug, Clone)]
struct LayerSnapshot {
    /// Dotted path of the layer in the model, e.g. `encoder.fc1`.
    path: String,
    /// The layer's kind (`linear`, `conv2d`, ...).
    kind: &'static str,
    /// Rule name (`bp`, `fa`, ...).
    rule: &'static str,
    /// Whether the rule is a direct one (DFA, DKP), whose matrix has its own shape.
    direct: bool,
    /// Id of the layer's weight parameter.
    weight_id: ParamId,
    /// `W`, flattened, outside autodiff.
    weight: Tensor<1>,
    /// `W`'s shape.
    weight_dims: Vec<usize>,
    /// The `B` the backward pass would use now (a direct rule's matrix), flattened, outside
    /// autodiff.
    feedback: Tensor<1>,
}

/// The report as an operation: each layer adds its snapshot.
#[derive(Default)]
struct Report {
    layers: Vec<LayerSnapshot>,
}

impl LayerVisitor for Report {
    fn visit<const D: usize>(&mut self, path: &str, layer: &dyn FeedbackLayer<D>) {
        let rule = layer.rule();
        let w = layer.weight().val().inner();
        let stored = layer.stored().map(|p| p.val().inner());
        let direct = rule.direct().is_some();
        let b = match (direct, stored) {
            (true, Some(matrix)) => matrix,
            (_, stored) => rule.feedback_matrix(&w, stored, layer.sign_scale()),
        };
        self.layers.push(LayerSnapshot {
            path: path.to_string(),
            kind: layer.kind(),
            rule: rule.name(),
            direct,
            weight_id: layer.weight().id,
            weight_dims: w.dims().to_vec(),
            weight: w.flatten(0, D - 1),
            feedback: b.inner().flatten(0, D - 1),
        });
    }
}

/// One snapshot of every feedback layer, in visiting order.
fn snapshots<M: Module>(model: &M) -> Vec<LayerSnapshot> {
    visit_layers(model, Report::default()).layers
}

/// Each feedback layer's path and the number of values it stores for its rule, read from the
/// layers' fields alone: forms no `B` and draws nothing.
fn stored_counts<M: Module>(model: &M) -> Vec<(String, usize)> {
    struct Counts(Vec<(String, usize)>);
    impl LayerVisitor for Counts {
        fn visit<const D: usize>(&mut self, path: &str, layer: &dyn FeedbackLayer<D>) {
            let stored = layer.stored().map_or(0, |p| p.lazy_shape().num_elements());
            self.0.push((path.to_string(), stored));
        }
    }
    visit_layers(model, Counts(Vec::new())).0
}

/// Dotted paths of every feedback layer of `model`, in visiting order. Forms no `B` and draws
/// nothing (brSF's `B` is drawn when formed).
pub fn layer_paths<M: Module>(model: &M) -> Vec<String> {
    stored_counts(model)
        .into_iter()
        .map(|(path, _)| path)
        .collect()
}

/// The rule of every feedback layer of `model`, in visiting order. Forms no `B` and draws
/// nothing, so a training loop can ask which rules draw per step (brSF, the weight mirror).
pub fn model_rules<M: Module>(model: &M) -> Vec<Rule> {
    struct Rules(Vec<Rule>);
    impl LayerVisitor for Rules {
        fn visit<const D: usize>(&mut self, _path: &str, layer: &dyn FeedbackLayer<D>) {
            self.0.push(*layer.rule());
        }
    }
    visit_layers(model, Rules(Vec::new())).0
}

/// Number of values the feedback layers of `model` store for their rules (`B` for FA, KP
/// and WM, `|R0|` for frSF; nothing for BP, uSF and brSF). `model.num_params()` minus this is
/// the parameter count of the same network trained with backprop. Forms no `B` and draws
/// nothing.
pub fn feedback_parameter_count<M: Module>(model: &M) -> usize {
    stored_counts(model).iter().map(|(_, n)| n).sum()
}

/// Alignment of one feedback layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerAlignment {
    /// Dotted path of the layer in the model (`fc1`, `blocks.0.conv1`, ...).
    pub path: String,
    /// The layer's kind ([`FeedbackLayer::kind`]: `linear`, `conv2d`, ...).
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
            let weight = if !l.direct {
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
    probe::probe(x, first.weight().id, true)
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
/// twice: on `model` with its rules, and on a copy of it with every layer on backprop (the
/// same `W`, [`map_layer_rules`](crate::map_layer_rules)). The model must be on an autodiff
/// device, and its training-mode forwards run as in training (batch norm moves its running
/// statistics: pass a copy, e.g. `model.valid().train()`, to keep the model as it is).
pub fn gradient_alignment<M: Module>(model: &M, loss: impl Fn(&M) -> Tensor<1>) -> ProbeAlignment {
    let names: std::collections::HashMap<_, _> = snapshots(model)
        .into_iter()
        .map(|l| (l.weight_id, l.path))
        .collect();
    // Backprop's reference: a copy of the model with every layer on backprop (same W).
    let paths = names.values().cloned().collect();
    let reference = map_rules_at(model.clone(), paths, |_| Some(Rule::Backprop(Backprop)));
    let run = |model: &M| {
        let (loss_value, probes) = probe::record(|| loss(model));
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
    let with_rule = run(model);
    let with_bp = run(&reference);
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
