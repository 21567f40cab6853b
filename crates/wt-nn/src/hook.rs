//! The one hook between model-wide operations and the feedback layers.
//!
//! Burn's derived `Module::visit` / `Module::map` walk every submodule of any user's model.
//! [`FeedbackLinear`] and [`FeedbackConv2d`] implement `Module` by hand (`module_impl.rs`) so
//! that, while an operation ([`LayerOp`]) is installed for one walk by [`visit_layers`] or
//! [`map_layers`], each layer hands itself to it, with its dotted path, before walking its
//! parameters. Outside such a walk nothing is installed, so ordinary visitors, mappers,
//! optimizers and record loading see plain modules.
//!
//! Each operation is one small type beside its public function: the rules' extra gradients
//! and the mirror's updates in [`crate::step`], the per-layer report in
//! [`crate::alignment`], rule overrides in [`crate::layer_rules`].

use std::any::Any;
use std::cell::RefCell;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use wt_core::{Rule, WeightMirror};

use crate::{FeedbackConv2d, FeedbackLinear};

/// A model-wide operation over the feedback layers of a model, run by [`visit_layers`] (the
/// `visit_*` methods) or [`map_layers`] (the `map_*` methods). `path` is the layer's dotted
/// path in the model (`fc1`, `blocks.0.conv1`).
pub(crate) trait LayerOp: Any {
    fn visit_linear(&mut self, _path: &str, _layer: &FeedbackLinear) {}
    fn visit_conv2d(&mut self, _path: &str, _layer: &FeedbackConv2d) {}
    fn map_linear(&mut self, _path: &str, layer: FeedbackLinear) -> FeedbackLinear {
        layer
    }
    fn map_conv2d(&mut self, _path: &str, layer: FeedbackConv2d) -> FeedbackConv2d {
        layer
    }
}

/// What the operations read and change of a feedback layer, for either rank: the rule, `W`,
/// what the rule stores, and the layer's own mirror correlation.
pub(crate) trait FeedbackLayer<const D: usize>: Sized {
    /// `linear` or `conv2d`.
    const KIND: &'static str;
    fn rule(&self) -> &Rule;
    fn weight(&self) -> &Param<Tensor<D>>;
    /// What the rule stores (`B`, `|R0|`, a direct matrix), if anything.
    fn stored(&self) -> Option<&Param<Tensor<D>>>;
    /// The sign-symmetry scale `s`.
    fn sign_scale(&self) -> f64;
    /// One weight-mirror correlation `ξᵀ(ξW)/n` for `weight` (outside autodiff).
    fn mirror_correlation(&self, weight: Tensor<D>, wm: &WeightMirror) -> Tensor<D>;
    /// `steps` mirror correlations for the layer's current `W`, each with fresh noise.
    fn mirror_correlations(&self, wm: &WeightMirror, steps: usize) -> Vec<Tensor<D>> {
        let w = self.weight().val().inner();
        (0..steps)
            .map(|_| self.mirror_correlation(w.clone(), wm))
            .collect()
    }
    /// The layer with what the rule stores replaced.
    fn with_stored(self, stored: Option<Param<Tensor<D>>>) -> Self;
    /// The layer on another rule (`W`, `b` kept; what the rule stores drawn afresh).
    fn with_rule(self, rule: Rule) -> Self;
}

/// A layer's side of the hook: hand itself to the installed operation.
pub(crate) trait HandOver: Sized {
    fn hand_to(&self, op: &mut dyn LayerOp, path: &str);
    fn hand_over(self, op: &mut dyn LayerOp, path: &str) -> Self;
}

impl HandOver for FeedbackLinear {
    fn hand_to(&self, op: &mut dyn LayerOp, path: &str) {
        op.visit_linear(path, self)
    }
    fn hand_over(self, op: &mut dyn LayerOp, path: &str) -> Self {
        op.map_linear(path, self)
    }
}

impl HandOver for FeedbackConv2d {
    fn hand_to(&self, op: &mut dyn LayerOp, path: &str) {
        op.visit_conv2d(path, self)
    }
    fn hand_over(self, op: &mut dyn LayerOp, path: &str) -> Self {
        op.map_conv2d(path, self)
    }
}

/// The operation of the walk running on this thread, and where the walk is.
struct Walk {
    op: Box<dyn LayerOp>,
    path: Vec<String>,
}

thread_local! {
    static WALK: RefCell<Option<Walk>> = const { RefCell::new(None) };
}

/// Runs `walk` with `op` installed; returns what it returned and the operation as it ended.
fn run<O: LayerOp, R>(op: O, walk: impl FnOnce() -> R) -> (R, O) {
    /// Uninstalls the operation even when the walk panics.
    struct Uninstall;
    impl Drop for Uninstall {
        fn drop(&mut self) {
            WALK.with(|w| w.borrow_mut().take());
        }
    }
    let installed = Walk {
        op: Box::new(op),
        path: Vec::new(),
    };
    let previous = WALK.with(|w| w.borrow_mut().replace(installed));
    assert!(
        previous.is_none(),
        "wt: a model-wide feedback operation is already running on this thread"
    );
    let uninstall = Uninstall;
    let out = walk();
    let walk = WALK.with(|w| w.borrow_mut().take());
    drop(uninstall);
    let op: Box<dyn Any> = walk.expect("wt: the feedback operation vanished").op;
    let op = op
        .downcast::<O>()
        .unwrap_or_else(|_| unreachable!("the installed operation keeps its type"));
    (out, *op)
}

/// Hands every feedback layer of `model` (by reference) to `op`, in visiting order.
pub(crate) fn visit_layers<M: Module, O: LayerOp>(model: &M, op: O) -> O {
    run(op, || model.visit(&mut PathTracker)).1
}

/// Hands every feedback layer of `model` (by value) to `op`, which returns it changed or not.
pub(crate) fn map_layers<M: Module, O: LayerOp>(model: M, op: O) -> (M, O) {
    run(op, || model.map(&mut PathTracker))
}

/// Called by a layer's `Module::visit` before it walks its parameters.
pub(crate) fn on_visit<L: HandOver>(layer: &L) {
    WALK.with(|w| {
        if let Some(walk) = w.borrow_mut().as_mut() {
            let path = join_path(&walk.path);
            layer.hand_to(walk.op.as_mut(), &path);
        }
    })
}

/// Called by a layer's `Module::map` before it maps its parameters.
pub(crate) fn on_map<L: HandOver>(layer: L) -> L {
    WALK.with(|w| match w.borrow_mut().as_mut() {
        Some(walk) => {
            let path = join_path(&walk.path);
            layer.hand_over(walk.op.as_mut(), &path)
        }
        None => layer,
    })
}

/// The path component a module contributes: its field name or index; an enum's variant
/// (Burn's container type `Enum:…`) is a choice between models, not a place in one, so it
/// contributes nothing (a zoo `Model::CifarResNet`'s stem is `conv1`, not
/// `CifarResNet.conv1`).
fn path_component(name: &str, container_type: &str) -> String {
    if container_type.starts_with("Enum:") {
        String::new()
    } else {
        name.to_string()
    }
}

/// Joins path components, skipping the empty ones of enum variants.
fn join_path(path: &[String]) -> String {
    let parts: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    parts.join(".")
}

/// The visitor and mapper of a walk: it only tracks the path; the layers do the work.
struct PathTracker;

impl PathTracker {
    fn enter(name: &str, container_type: &str) {
        WALK.with(|w| {
            if let Some(walk) = w.borrow_mut().as_mut() {
                walk.path.push(path_component(name, container_type))
            }
        })
    }
    fn exit() {
        WALK.with(|w| {
            if let Some(walk) = w.borrow_mut().as_mut() {
                walk.path.pop();
            }
        })
    }
}

impl ModuleVisitor for PathTracker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        Self::enter(name, container_type)
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        Self::exit()
    }
}

impl ModuleMapper for PathTracker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        Self::enter(name, container_type)
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        Self::exit()
    }
}
