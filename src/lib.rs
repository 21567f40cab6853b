#![warn(missing_docs)]
#![doc = include_str!("../README.md")]
//!
//! ## Crate contents
//!
//! Re-exports [`wt_core`] (feedback ops, learning rules, metrics) and [`wt_nn`] (feedback
//! layers and model-wide helpers).

pub use wt_core;
pub use wt_core::rule::*;
#[cfg(feature = "models")]
pub use wt_models;
pub use wt_nn;
pub use wt_nn::*;
#[cfg(feature = "train")]
pub use wt_train;
