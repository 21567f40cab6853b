//! The hook between model-wide operations and feedback layers, open to layers and operations
//! written outside wt.
//!
//! Burn's `Module::visit` / `Module::map` walk every submodule of any model. A feedback layer
//! implements `Module` with [`feedback_module!`](crate::feedback_module), which, while an
//! operation is installed for one walk by [`visit_layers`] or [`map_layers`], hands the layer
//! to the operation (as a [`FeedbackLayer`], with its dotted path) before walking its
//! parameters. Outside such a walk nothing is installed, so ordinary visitors, mappers,
//! optimizers and record loading see plain modules.
//!
//! wt's own operations are built on it: the rules' extra gradients and the mirror's updates
//! ([`crate::step`]), the per-layer reports ([`crate::alignment`]), rule overrides
//! ([`crate::layer_rules`]). A layer of your own gets all of them by implementing
//! [`FeedbackLayer`] (every method is required, so a forgotten one does not compile) and
//! invoking [`feedback_module!`](crate::feedback_module) for its `Module`; `examples/custom_layer.rs`
//! does so for a feedback `Conv1d`. An operation of your own implements [`LayerVisitor`] or
//! [`LayerMapper`]: one method, generic over the layer's weight rank, so it cannot skip a
//! kind of layer.
//!
//! Weight ranks 2 to 5 are supported ([`SupportedRank`]): dense (`[d_input, d_output]`) and
//! 1-, 2- and 3-D convolutions (`[c_out, c_in / groups, k…]`).

use std::any::Any;
use std::cell::RefCell;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use wt_core::{Rule, WeightMirror};

/// What the model-wide operations read and change of a feedback layer whose weight `W` has
/// rank `D`: its rule, `W`, what the rule stores, and its own weight-mirror correlation.
///
/// Implement it for a layer of your own, and implement the layer's `Module` with
/// [`feedback_module!`](crate::feedback_module), and [`mirror_update`](crate::mirror_update),
/// [`add_feedback_gradients`](crate::add_feedback_gradients), the alignment reports and the
/// per-layer rules ([`set_layer_rules`](crate::set_layer_rules)) reach it. What the rule stores
/// is created by [`init_rule_state`](crate::init_rule_state); the layer's forward calls
/// [`probe_layer_input`](crate::probe_layer_input) on its input so the error-angle probes see
/// it.
pub trait FeedbackLayer<const D: usize> {
    /// What kind of layer this is, as reports name it (`linear`, `conv2d`, `conv1d`, ...).
    /// Layers of kind `linear` with rank-2 weights `[d_input, d_output]` take part in the
    /// direct rules' alignment report (the chained product of the dense tail).
    fn kind(&self) -> &'static str;
    /// The layer's rule.
    fn rule(&self) -> &Rule;
    /// `W`.
    fn weight(&self) -> &Param<Tensor<D>>;
    /// What the rule stores (`B` for FA, KP and WM, `|R0|` for frSF, a direct matrix for DFA),
    /// if anything; shaped like `W` except a direct matrix.
    fn stored(&self) -> Option<&Param<Tensor<D>>>;
    /// What the rule stores, to be changed in place (the weight mirror's update replaces its
    /// value); `None` when the rule stores nothing.
    fn stored_mut(&mut self) -> Option<&mut Param<Tensor<D>>>;
    /// The sign-symmetry scale `s` (the std of `W`'s initialiser).
    fn sign_scale(&self) -> f64;
    /// One weight-mirror correlation `ξᵀ(ξW)/n` for `weight` (outside autodiff), with noise
    /// shaped like the layer's input, as [`wt_core::mirror`] forms it for dense and conv layers.
    fn mirror_correlation(&self, weight: Tensor<D>, wm: &WeightMirror) -> Tensor<D>;
    /// Puts the layer on another rule, `W` and `b` kept and what the rule stores drawn afresh
    /// ([`init_rule_state`](crate::init_rule_state)).
    fn set_rule(&mut self, rule: Rule);
}

/// `steps` mirror correlations for the layer's current `W`, each with fresh noise.
pub fn mirror_correlations<const D: usize>(
    layer: &dyn FeedbackLayer<D>,
    wm: &WeightMirror,
    steps: usize,
) -> Vec<Tensor<D>> {
    let w = layer.weight().val().inner();
    (0..steps)
        .map(|_| layer.mirror_correlation(w.clone(), wm))
        .collect()
}

/// A model-wide operation that reads the feedback layers of a model ([`visit_layers`]).
pub trait LayerVisitor: 'static {
    /// Called for every feedback layer, in visiting order, with its dotted path in the model
    /// (`fc1`, `blocks.0.conv1`).
    fn visit<const D: usize>(&mut self, path: &str, layer: &dyn FeedbackLayer<D>);
}

/// A model-wide operation that changes the feedback layers of a model ([`map_layers`]).
pub trait LayerMapper: 'static {
    /// Called for every feedback layer, in visiting order, with its dotted path in the model.
    fn map<const D: usize>(&mut self, path: &str, layer: &mut dyn FeedbackLayer<D>);
}

/// Hands every feedback layer of `model` (by reference) to `visitor`, in visiting order;
/// returns the visitor as it ended.
pub fn visit_layers<M: Module, V: LayerVisitor>(model: &M, visitor: V) -> V {
    let (_, walker) = run(Visiting(visitor), || model.visit(&mut PathTracker));
    walker.0
}

/// Hands every feedback layer of `model` to `mapper`, which may change it; returns the model
/// and the mapper as it ended.
pub fn map_layers<M: Module, P: LayerMapper>(model: M, mapper: P) -> (M, P) {
    let (model, walker) = run(Mapping(mapper), || model.map(&mut PathTracker));
    (model, walker.0)
}

/// Called by a feedback layer's `Module::visit` before it walks its parameters
/// ([`feedback_module!`](crate::feedback_module) does it).
pub fn on_visit<const D: usize, L: FeedbackLayer<D>>(layer: &L)
where
    Rank<D>: SupportedRank<D>,
{
    WALK.with(|w| {
        if let Some(walk) = w.borrow_mut().as_mut() {
            let path = join_path(&walk.path);
            <Rank<D> as SupportedRank<D>>::visit(walk.walker.as_mut(), &path, layer);
        }
    })
}

/// Called by a feedback layer's `Module::map` before it maps its parameters
/// ([`feedback_module!`](crate::feedback_module) does it).
pub fn on_map<const D: usize, L: FeedbackLayer<D>>(mut layer: L) -> L
where
    Rank<D>: SupportedRank<D>,
{
    WALK.with(|w| {
        if let Some(walk) = w.borrow_mut().as_mut() {
            let path = join_path(&walk.path);
            <Rank<D> as SupportedRank<D>>::map(walk.walker.as_mut(), &path, &mut layer);
        }
    });
    layer
}

/// A weight rank, for [`SupportedRank`].
pub struct Rank<const D: usize>;

mod sealed {
    pub trait Sealed {}
}

/// The weight ranks a feedback layer may have: 2 (dense), 3, 4 and 5 (1-, 2- and 3-D
/// convolutions).
pub trait SupportedRank<const D: usize>: sealed::Sealed {
    #[doc(hidden)]
    fn visit(walker: &mut dyn Walker, path: &str, layer: &dyn FeedbackLayer<D>);
    #[doc(hidden)]
    fn map(walker: &mut dyn Walker, path: &str, layer: &mut dyn FeedbackLayer<D>);
}

/// An installed operation with its rank erased (one method a supported rank).
#[doc(hidden)]
pub trait Walker: Any {
    fn visit2(&mut self, path: &str, layer: &dyn FeedbackLayer<2>);
    fn visit3(&mut self, path: &str, layer: &dyn FeedbackLayer<3>);
    fn visit4(&mut self, path: &str, layer: &dyn FeedbackLayer<4>);
    fn visit5(&mut self, path: &str, layer: &dyn FeedbackLayer<5>);
    fn map2(&mut self, path: &str, layer: &mut dyn FeedbackLayer<2>);
    fn map3(&mut self, path: &str, layer: &mut dyn FeedbackLayer<3>);
    fn map4(&mut self, path: &str, layer: &mut dyn FeedbackLayer<4>);
    fn map5(&mut self, path: &str, layer: &mut dyn FeedbackLayer<5>);
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

macro_rules! supported_ranks {
    ($($d:literal => $visit:ident, $map:ident;)*) => {
        $(
            impl sealed::Sealed for Rank<$d> {}
            impl SupportedRank<$d> for Rank<$d> {
                fn visit(walker: &mut dyn Walker, path: &str, layer: &dyn FeedbackLayer<$d>) {
                    walker.$visit(path, layer)
                }
                fn map(walker: &mut dyn Walker, path: &str, layer: &mut dyn FeedbackLayer<$d>) {
                    walker.$map(path, layer)
                }
            }
        )*

        impl<V: LayerVisitor> Walker for Visiting<V> {
            $(
                fn $visit(&mut self, path: &str, layer: &dyn FeedbackLayer<$d>) {
                    self.0.visit::<$d>(path, layer)
                }
                // A visiting walk runs `Module::visit` only; nothing is mapped.
                fn $map(&mut self, _path: &str, _layer: &mut dyn FeedbackLayer<$d>) {}
            )*
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }

        impl<P: LayerMapper> Walker for Mapping<P> {
            $(
                // A mapping walk runs `Module::map` only; nothing is visited.
                fn $visit(&mut self, _path: &str, _layer: &dyn FeedbackLayer<$d>) {}
                fn $map(&mut self, path: &str, layer: &mut dyn FeedbackLayer<$d>) {
                    self.0.map::<$d>(path, layer)
                }
            )*
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }
    };
}

/// A [`LayerVisitor`] installed for a visiting walk.
struct Visiting<V>(V);
/// A [`LayerMapper`] installed for a mapping walk.
struct Mapping<P>(P);

supported_ranks! {
    2 => visit2, map2;
    3 => visit3, map3;
    4 => visit4, map4;
    5 => visit5, map5;
}

/// The operation of the walk running on this thread, and where the walk is.
struct Walk {
    walker: Box<dyn Walker>,
    path: Vec<String>,
}

thread_local! {
    static WALK: RefCell<Option<Walk>> = const { RefCell::new(None) };
}

/// Runs `walk` with `walker` installed; returns what it returned and the walker as it ended.
fn run<W: Walker, R>(walker: W, walk: impl FnOnce() -> R) -> (R, W) {
    /// Uninstalls the operation even when the walk panics.
    struct Uninstall;
    impl Drop for Uninstall {
        fn drop(&mut self) {
            WALK.with(|w| w.borrow_mut().take());
        }
    }
    let installed = Walk {
        walker: Box::new(walker),
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
    let walker = walk
        .expect("wt: the feedback operation vanished")
        .walker
        .into_any();
    let walker = walker
        .downcast::<W>()
        .unwrap_or_else(|_| unreachable!("the installed operation keeps its type"));
    (out, *walker)
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
