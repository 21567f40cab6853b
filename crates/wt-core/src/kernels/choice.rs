//! [`FlexKernels`]: which kernels Flex runs, a setting in force on one thread for one call.

use std::cell::Cell;

use serde::{Deserialize, Serialize};

/// Which kernels Flex's convolutions, batch norm and sign-symmetry matrices run: a setting of
/// a run (`wt_train::TrainConfig::kernels`, the examples' `--kernels`), in force on the thread
/// that runs the model's forward and backward passes for the duration of [`FlexKernels::run`].
/// Other backends ignore it. Nothing in wt's libraries changes it process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlexKernels {
    /// wt's kernels (the default).
    #[default]
    Wt,
    /// Burn's own ops, for benchmarks that compare the two.
    Burn,
}

impl crate::Named for FlexKernels {
    const WHAT: &'static str = "kernel choice";

    fn all() -> Vec<Self> {
        vec![FlexKernels::Wt, FlexKernels::Burn]
    }

    fn name(&self) -> &'static str {
        match self {
            FlexKernels::Wt => "wt",
            FlexKernels::Burn => "burn",
        }
    }
}

crate::named_str!(FlexKernels);

thread_local! {
    static FLEX_KERNELS: Cell<FlexKernels> = const { Cell::new(FlexKernels::Wt) };
}

impl FlexKernels {
    /// Runs `f` with this choice in force on the calling thread (the one that runs the model's
    /// forward and backward passes: Flex's own worker threads only execute the kernels); the
    /// previous choice is back when `f` returns or panics.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        /// Puts the previous choice back, even on panic.
        struct Restore(FlexKernels);
        impl Drop for Restore {
            fn drop(&mut self) {
                FLEX_KERNELS.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(FLEX_KERNELS.with(|c| c.replace(self)));
        f()
    }

    /// The choice in force on this thread ([`Wt`](FlexKernels::Wt) outside any
    /// [`run`](FlexKernels::run)).
    pub fn current() -> Self {
        FLEX_KERNELS.with(Cell::get)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::feedback_conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution, Tensor};

    fn bits(t: Tensor<4>) -> Vec<u32> {
        t.into_data().iter::<f32>().map(f32::to_bits).collect()
    }

    /// Inside `FlexKernels::Burn.run` the feedback convolution is Burn's `conv2d` bit for bit;
    /// outside it (and after it, even after a panic) wt's kernels run again, whose sums are
    /// ordered differently; another thread never sees the choice.
    #[test]
    fn the_choice_holds_inside_run_on_its_thread_only() {
        let _serial = crate::device::device_test_lock();
        let device = Device::flex();
        device.seed(7);
        let x = Tensor::<4>::random([2, 16, 9, 9], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<4>::random([8, 16, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let options = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let ours = || {
            bits(feedback_conv2d(
                x.clone(),
                w.clone(),
                w.clone(),
                None,
                options(),
            ))
        };
        let burns = bits(burn::tensor::module::conv2d(
            x.clone(),
            w.clone(),
            None,
            options(),
        ));
        assert_eq!(FlexKernels::current(), FlexKernels::Wt);
        let wt = ours();
        assert_ne!(
            wt, burns,
            "wt's kernels and Burn's op sum in the same order here"
        );
        assert_eq!(FlexKernels::Burn.run(ours), burns);
        assert_eq!(ours(), wt);
        let other_thread = FlexKernels::Burn.run(|| std::thread::scope(|s| s.spawn(ours).join()));
        assert_eq!(other_thread.unwrap(), wt);
        let panicked = std::panic::catch_unwind(|| FlexKernels::Burn.run(|| panic!("inside")));
        assert!(panicked.is_err());
        assert_eq!(FlexKernels::current(), FlexKernels::Wt);
        assert_eq!(ours(), wt);
    }
}
