//! The command line shared by the `mnist`, `cifar10` and `imagenet` examples.
//!
//! A run's config is resolved in this order: the example's [`Preset`], then `--config FILE`
//! (or, with `--resume`, the run folder's `config.toml`), then the flags given. The resolved
//! config is written to the run folder, so `--config <out>/config.toml` repeats the run.
//!
//! Its parts: the examples' recipes ([`Preset`]), the flags ([`TrainArgs`], and the shared
//! value parsers [`one_of`] and [`positive`]), the flags applied onto a config
//! ([`TrainArgs::apply`]), running an example ([`main`], [`run`]), and the options of a
//! hand-written MNIST loop ([`MnistLoopArgs`]).

mod args;
mod loop_args;
mod overlay;
mod preset;
mod run;

pub use args::{
    DataArgs, ModelArgs, OptimArgs, RunArgs, RunningArgs, TrainArgs, one_of, positive,
    rule_override,
};
pub use loop_args::MnistLoopArgs;
pub use preset::Preset;
pub use run::{main, run};
