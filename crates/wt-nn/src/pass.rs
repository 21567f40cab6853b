//! Model-wide passes over every feedback layer of any Burn model, with no list of layers.
//!
//! Burn's derived `Module::visit` / `Module::map` walk every submodule of a user's model. The
//! feedback layers implement `Module` by hand, and before walking their own parameters they
//! look at the *current pass* of this thread: a step pass (weight-mirror pseudo-gradients), a
//! mirror pass (plain mirror updates), a report pass (alignment metrics) or a rule pass (mixed
//! rules, [`crate::layer_rules`]). A pass is installed only
//! for the duration of one walk by the functions in [`crate::step`], so ordinary visitors,
//! mappers, optimizers and record loading are unaffected.

use std::cell::RefCell;

use burn::module::{ModuleMapper, ModuleVisitor, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Per-layer summary collected by a report pass.
#[derive(Debug, Clone)]
pub struct LayerSnapshot {
    /// Dotted path of the layer in the model, e.g. `encoder.fc1`.
    pub path: String,
    /// `linear` or `conv2d`.
    pub kind: &'static str,
    /// Rule name (`bp`, `fa`, ...).
    pub rule: &'static str,
    /// Id of the layer's weight parameter.
    pub weight_id: ParamId,
    /// `W`, flattened, outside autodiff.
    pub weight: Tensor<1>,
    /// `W`'s shape.
    pub weight_dims: Vec<usize>,
    /// The `B` the backward pass would use now, flattened, outside autodiff.
    pub feedback: Tensor<1>,
    /// Number of values the layer stores for its rule (`B`, `|R0|`; 0 for BP and uSF).
    pub stored_feedback: usize,
}

/// An input-gradient probe added during a probe pass.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// The layer's weight (for a block probe, the block's first layer's).
    pub weight_id: ParamId,
    /// At a layer's own input, or at the input of the block the layer opens.
    pub at_block_input: bool,
    pub tensor: Tensor<1>,
}

pub(crate) enum Pass {
    /// Add weight-mirror pseudo-gradients for a step of learning rate `learning_rate`.
    Step {
        learning_rate: f64,
        grads: GradientsParams,
    },
    /// Plain mirror updates: `Some(k)` applies `k` to every weight-mirror layer (warm-up);
    /// `None` applies each [`MirrorUpdate::Direct`](wt_core::MirrorUpdate::Direct) layer's own
    /// `mirror_steps` (the per-training-step update).
    Mirror { steps: Option<usize> },
    /// Collect a snapshot of every feedback layer.
    Report {
        path: Vec<String>,
        layers: Vec<LayerSnapshot>,
    },
    /// Put the layers at the given paths on the given rules (`path`: where the walk is).
    SetRules {
        rules: Vec<(String, wt_core::Rule)>,
        path: Vec<String>,
    },
    /// Record input-gradient probes in forward; optionally run every layer as backprop.
    Probe {
        force_backprop: bool,
        probes: Vec<Probe>,
    },
}

thread_local! {
    static PASS: RefCell<Option<Pass>> = const { RefCell::new(None) };
}

/// Runs `f` with `pass` installed and returns what `f` returned with the pass as it ended.
pub(crate) fn with_pass<R>(pass: Pass, f: impl FnOnce() -> R) -> (R, Pass) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PASS.with(|p| p.borrow_mut().take());
        }
    }
    let previous = PASS.with(|p| p.borrow_mut().replace(pass));
    assert!(
        previous.is_none(),
        "wt: a model-wide feedback pass is already running on this thread"
    );
    let reset = Reset;
    let out = f();
    let pass = PASS
        .with(|p| p.borrow_mut().take())
        .expect("wt: the feedback pass was removed while running");
    drop(reset);
    (out, pass)
}

/// Gives mutable access to the current pass, if any.
pub(crate) fn current<R>(f: impl FnOnce(Option<&mut Pass>) -> R) -> R {
    PASS.with(|p| f(p.borrow_mut().as_mut()))
}

/// Whether a probe pass runs with every layer forced to backprop.
pub(crate) fn force_backprop() -> bool {
    current(|p| {
        matches!(
            p,
            Some(Pass::Probe {
                force_backprop: true,
                ..
            })
        )
    })
}

/// In a probe pass, adds a zero probe to `x` so that its gradient is the error reaching `x`.
pub(crate) fn probe_input<const D: usize>(x: Tensor<D>, weight_id: ParamId) -> Tensor<D> {
    add_probe(x, weight_id, false)
}

/// [`probe_input`] at the input of a block whose first feedback layer has weight `weight_id`.
pub(crate) fn probe_block_input<const D: usize>(x: Tensor<D>, weight_id: ParamId) -> Tensor<D> {
    add_probe(x, weight_id, true)
}

fn add_probe<const D: usize>(x: Tensor<D>, weight_id: ParamId, at_block_input: bool) -> Tensor<D> {
    let active = current(|p| matches!(p, Some(Pass::Probe { .. })));
    if !active || !x.is_autodiff() {
        return x;
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let probe = Tensor::<1>::zeros([n], &x.device()).require_grad();
    current(|p| {
        if let Some(Pass::Probe { probes, .. }) = p {
            probes.push(Probe {
                weight_id,
                at_block_input,
                tensor: probe.clone(),
            })
        }
    });
    x + probe.reshape(dims)
}

/// The path component a module contributes: its field name or index; an enum's variant
/// (Burn's container type `Enum:…`) is a choice between models, not a place in one, so it
/// contributes nothing (a zoo `Model::CifarResNet`'s stem is `conv1`, not
/// `CifarResNet.conv1`).
pub(crate) fn path_component(name: &str, container_type: &str) -> String {
    if container_type.starts_with("Enum:") {
        String::new()
    } else {
        name.to_string()
    }
}

/// Joins path components, skipping the empty ones of enum variants.
pub(crate) fn join_path(path: &[String]) -> String {
    let parts: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    parts.join(".")
}

/// A visitor that only tracks the module path for report passes.
pub(crate) struct PathVisitor;

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        current(|p| {
            if let Some(Pass::Report { path, .. }) = p {
                path.push(path_component(name, container_type))
            }
        })
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        current(|p| {
            if let Some(Pass::Report { path, .. }) = p {
                path.pop();
            }
        })
    }
}

/// A mapper that changes nothing: the layers do the work of step and mirror passes.
pub(crate) struct IdentityMapper;

impl ModuleMapper for IdentityMapper {}

/// In a rule pass, the rule for the layer being walked, if it gets one.
pub(crate) fn rule_to_set() -> Option<wt_core::Rule> {
    current(|p| match p {
        Some(Pass::SetRules { rules, path }) => {
            let here = join_path(path);
            rules.iter().find(|(p, _)| *p == here).map(|(_, r)| *r)
        }
        _ => None,
    })
}

/// Current dotted path in a report pass.
pub(crate) fn report_path() -> String {
    current(|p| match p {
        Some(Pass::Report { path, .. }) => join_path(path),
        _ => String::new(),
    })
}
