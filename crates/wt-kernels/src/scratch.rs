//! Per-thread scratch buffers the convolution kernels reuse between calls, so a training step
//! does not allocate them again for every layer.

use std::cell::RefCell;

thread_local! {
    /// This thread's two buffers (the unfolded kernels: the unfolded input and the gathered
    /// gradients; the direct kernels: the input plane and the output rows).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on this thread's two scratch buffers, grown to `a` and `b` elements (their
/// contents are left over from earlier calls: `f` must write before it reads; `f` must not
/// call `with_scratch` again).
pub(crate) fn with_scratch<R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    SCRATCH.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (first, second) = &mut *bufs;
        if first.len() < a {
            first.resize(a, 0.0);
        }
        if second.len() < b {
            second.resize(b, 0.0);
        }
        f(&mut first[..a], &mut second[..b])
    })
}
