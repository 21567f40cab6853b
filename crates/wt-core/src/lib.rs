//! # wt-core: training without weight transport
//!
//! The pieces every feedback layer is built from:
//! - [`ops`]: the feedback operations, a Burn backend extension whose backward sends the error
//!   through feedback weights `B` (`dx = g·Bᵀ`, `dx = conv_transpose2d(g, B)`),
//! - [`rule`]: the learning rules (BP, FA, uSF, brSF, frSF, KP, WM, DFA, DKP, DRTP, SA,
//!   AA, IA), each a type of its
//!   own,
//! - [`direct`]: direct feedback alignment's two ops, the output error and its delivery to
//!   each layer's input,
//! - [`local_alignment`]: Kunin et al.'s local alignment rules (SA, AA, IA), their coefficient
//!   schedules and the gradient of `B` their terms give,
//! - [`mirror`]: the weight-mirror correlations `ξᵀ(ξW)/n` for dense and conv layers,
//! - [`kernels`]: the convolutions of a training step and training-mode batch norm
//!   ([`Kernels`]: wt's own kernels on Flex, Burn's ops elsewhere),
//! - [`norm`]: training-mode batch norm as one autodiff op on those kernels,
//! - [`metrics`]: angles and norm ratios between `B` and `W`, or between two error signals,
//! - [`named`]: the one name table of each enum (serde and command-line names),
//! - [`device`]: backend and device names.
//!
//! The modules that use them live in `wt-nn`.

#![warn(missing_docs)]

pub mod device;
pub mod direct;
pub mod kernels;
pub mod local_alignment;
pub mod metrics;
pub mod mirror;
pub mod named;
pub mod norm;
pub mod ops;
pub mod rule;

pub use direct::{
    DirectFeedbackBackend, DirectSignal, MissingOutputError, direct_error, direct_feedback_conv2d,
    direct_feedback_conv2d_with, direct_feedback_linear, direct_feedback_linear_with,
    direct_targets, take_missing_output_error,
};
pub use kernels::Kernels;
pub use local_alignment::{
    ActivationAlignment, AlignmentTerms, Coefficient, Growth, InformationAlignment,
    SymmetricAlignment, alignment_epoch, set_alignment_epoch,
};
pub use metrics::{WeightAlignment, angle_degrees};
pub use named::{Named, UnknownName};
pub use norm::batch_norm_train;
pub use ops::{
    Feedback, FeedbackBackend, FeedbackForm, conv2d_correlation, feedback_conv2d,
    feedback_conv2d_with, feedback_linear, feedback_linear_with,
};
pub use rule::{
    Backprop, BatchRandomSignSymmetry, DirectFeedback, FeedbackAlignment, FeedbackStorage,
    FixedRandomSignSymmetry, InvalidMirror, KolenPollack, MirrorSamples, MirrorUpdate, Rule,
    UniformSignSymmetry, WeightMirror,
};
