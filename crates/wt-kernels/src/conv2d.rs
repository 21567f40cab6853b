//! The three convolutions of a training step on f32 NCHW buffers. [`conv2d_forward`],
//! [`conv2d_input_gradient`] and [`conv2d_weight_gradient`] run each on the kernel
//! [`KernelChoice::of`] picks: [`crate::direct`]'s, [`crate::winograd`]'s, or the products over
//! unfolded inputs defined here (im2col + the `gemm` crate's micro-kernels, runtime-dispatched
//! to the CPU's AVX-512 / AVX2 / SSE or portable code), run on rayon's threads:
//!
//! | unfolded kernel | per task (images `i0..i1`, one group) |
//! |---|---|
//! | [`unfolded_forward`] | `Y[c_out_g, n·P] = W_g[c_out_g, K] · U[K, n·P]` |
//! | [`unfolded_input_gradient`] | `dU[K, n·P] = B_gᵀ[K, c_out_g] · G[c_out_g, n·P]`, folded back onto `dx` |
//! | [`unfolded_weight_gradient`] | `dW_g[c_out_g, K] += G[c_out_g, n·P] · U[K, n·P]ᵀ` |
//!
//! `U` is the unfolded input ([`crate::im2col`]), `K = c_in/groups·kh·kw`, `P = h_out·w_out`,
//! `n` images side by side ([`ConvGeometry::images_per_task`]). A 1×1 stride-1 unpadded
//! convolution of one image skips the unfolding (`U` is the image).
//!
//! Determinism: tasks split the batch by a rule that depends on the shapes only; the forward
//! and the input gradient write disjoint images; the weight gradient sums each fixed part of the
//! batch in order on one thread, then adds the parts in order. So the bits are the same on every
//! run and for any number of threads.

use rayon::prelude::*;

use crate::direct;
use crate::geometry::ConvGeometry;
use crate::im2col::{col2im_add, im2col};
use crate::scratch::with_scratch;
use crate::winograd;

/// The most partial sums the weight gradient splits the batch into.
const MAX_WEIGHT_PARTS: usize = 16;

/// A matrix view's strides, in elements.
#[derive(Debug, Clone, Copy)]
struct Strides {
    row: usize,
    col: usize,
}

const fn row_major(row_len: usize) -> Strides {
    Strides {
        row: row_len,
        col: 1,
    }
}

fn extent(rows: usize, cols: usize, s: Strides) -> usize {
    (rows - 1) * s.row + (cols - 1) * s.col + 1
}

/// `dst[m×n] = lhs[m×k]·rhs[k×n]`, or `dst += lhs·rhs` when `accumulate`, single-threaded.
#[allow(clippy::too_many_arguments)]
fn product(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    d: Strides,
    accumulate: bool,
    lhs: &[f32],
    l: Strides,
    rhs: &[f32],
    r: Strides,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        extent(m, n, d) <= dst.len(),
        "product: destination too small"
    );
    if k > 0 {
        assert!(
            extent(m, k, l) <= lhs.len(),
            "product: left operand too small"
        );
        assert!(
            extent(k, n, r) <= rhs.len(),
            "product: right operand too small"
        );
    }
    // SAFETY: the three views were checked to lie inside their slices, and `dst` is borrowed
    // mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d.col as isize,
            d.row as isize,
            accumulate,
            lhs.as_ptr(),
            l.col as isize,
            l.row as isize,
            rhs.as_ptr(),
            r.col as isize,
            r.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The scratch a task of `n` images needs: the unfolded input `[K, n·P]` (none when it is the
/// image itself, a pointwise convolution of one image) and the output-shaped rows gathered
/// side by side `[c_out_g, n·P]` (none for one image).
fn scratch_lens(g: &ConvGeometry, n: usize) -> (usize, usize) {
    let np = n * g.positions();
    let cols = if g.is_pointwise() && n == 1 {
        0
    } else {
        g.patch_len() * np
    };
    let rows = if n == 1 { 0 } else { g.c_out_group() * np };
    (cols, rows)
}

/// `U[K, n·P]` of images `i0..i0 + n`, group `group`: the image itself for a pointwise
/// convolution of one image, otherwise unfolded into `cols`.
fn unfolded<'a>(
    x: &'a [f32],
    g: &ConvGeometry,
    (i0, n): (usize, usize),
    group: usize,
    cols: &'a mut [f32],
) -> &'a [f32] {
    let p = g.positions();
    let group_len = g.c_in_group() * g.input[0] * g.input[1];
    if g.is_pointwise() && n == 1 {
        return &x[i0 * g.image_len() + group * group_len..][..group_len];
    }
    for i in 0..n {
        let image = &x[(i0 + i) * g.image_len() + group * group_len..][..group_len];
        im2col(image, g, cols, n * p, i * p);
    }
    cols
}

/// Group `group`'s output-shaped rows of images `i0..i0 + n` as one `[c_out_g, n·P]` matrix:
/// in place for one image, otherwise copied side by side into `rows`.
fn output_rows<'a>(
    src: &'a [f32],
    g: &ConvGeometry,
    (i0, n): (usize, usize),
    group: usize,
    rows: &'a mut [f32],
) -> &'a [f32] {
    let p = g.positions();
    let c = g.c_out_group();
    if n == 1 {
        return &src[i0 * g.output_len() + group * c * p..][..c * p];
    }
    for i in 0..n {
        let image = &src[(i0 + i) * g.output_len() + group * c * p..][..c * p];
        for (co, row) in image.chunks_exact(p).enumerate() {
            rows[co * n * p + i * p..][..p].copy_from_slice(row);
        }
    }
    rows
}

/// The kernel one of a convolution's three products runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The unfolded input and a `gemm` product ([`unfolded_forward`] and its two gradients).
    Unfolded,
    /// [`crate::direct`]'s register-blocked stride-1 kernels.
    Direct,
    /// [`crate::winograd`]'s F(2×2, 3×3) over the whole batch.
    Winograd,
}

impl Kernel {
    /// `"unfolded"`, `"direct"` or `"winograd"`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Unfolded => "unfolded",
            Kernel::Direct => "direct",
            Kernel::Winograd => "winograd",
        }
    }
}

/// Which kernel each of a convolution's three products runs on. Chosen from the shapes by
/// measurement (`docs/architecture.md`, "Kernels", has the per-layer table): the direct
/// kernels compute the padding positions of their planes too and fill register tiles of 8
/// output channels (forward) or 16 input channels (weight gradient), so they win on feature
/// maps of 8×8 and larger with channels to fill them; on the deep layers' small maps with 256
/// channels or more the Winograd kernels' 2.25× fewer multiplications win where their
/// transforms are cheap against the products; the rest (strided, 1×1, the 3-channel stems'
/// gradients) is unfolded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelChoice {
    /// The forward's kernel.
    pub forward: Kernel,
    /// The input gradient's (its output channels are the layer's inputs).
    pub input_gradient: Kernel,
    /// The weight gradient's.
    pub weight_gradient: Kernel,
}

impl KernelChoice {
    /// The choice for `g`.
    pub fn of(g: &ConvGeometry) -> Self {
        let unfolded = Self {
            forward: Kernel::Unfolded,
            input_gradient: Kernel::Unfolded,
            weight_gradient: Kernel::Unfolded,
        };
        if !direct::takes(g) {
            return unfolded;
        }
        let positions = g.positions().min(g.input[0] * g.input[1]);
        let (cig, cog) = (g.c_in_group(), g.c_out_group());
        let map_fits = positions >= 256 || (positions >= 64 && cig.max(cog) <= 128);
        let deep = winograd::takes(g) && positions <= 64 && cig.min(cog) >= 256;
        let pick = |direct: bool, winograd: bool| {
            if direct {
                Kernel::Direct
            } else if winograd {
                Kernel::Winograd
            } else {
                Kernel::Unfolded
            }
        };
        // Winograd's input gradient and weight gradient measured slower than the unfolded ones
        // on 512 channels (its input gradient 2–3× its forward there, not explained yet), and
        // its weight gradient no faster than the direct or unfolded one anywhere.
        Self {
            forward: pick(map_fits, deep),
            input_gradient: pick(map_fits && cig >= 8, deep && cig.max(cog) <= 256),
            weight_gradient: pick(cig >= 16 && (positions >= 64 || cig.max(cog) <= 256), false),
        }
    }
}

/// `y = conv2d(x, weight) + bias`: `x` `[batch, c_in, h, w]`, `weight`
/// `[c_out, c_in/groups, kh, kw]`, `bias` `[c_out]`; returns `[batch, c_out, h_out, w_out]`,
/// on the kernel [`KernelChoice::of`] picks.
pub fn conv2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
) -> Vec<f32> {
    match KernelChoice::of(g).forward {
        Kernel::Direct => direct::forward(x, weight, bias, g),
        Kernel::Winograd => winograd::forward(x, weight, bias, g),
        Kernel::Unfolded => unfolded_forward(x, weight, bias, g),
    }
}

/// The error a conv2d sends to its input through `feedback`, as
/// [`unfolded_input_gradient`] defines it, on the kernel [`KernelChoice::of`] picks.
pub fn conv2d_input_gradient(feedback: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    match KernelChoice::of(g).input_gradient {
        Kernel::Direct => direct::input_gradient(feedback, output_grad, g),
        Kernel::Winograd => winograd::input_gradient(feedback, output_grad, g),
        Kernel::Unfolded => unfolded_input_gradient(feedback, output_grad, g),
    }
}

/// The weight gradient of a conv2d, as [`unfolded_weight_gradient`] defines it, on the kernel
/// [`KernelChoice::of`] picks.
pub fn conv2d_weight_gradient(x: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    match KernelChoice::of(g).weight_gradient {
        Kernel::Direct => direct::weight_gradient(x, output_grad, g),
        Kernel::Winograd => winograd::weight_gradient(x, output_grad, g),
        Kernel::Unfolded => unfolded_weight_gradient(x, output_grad, g),
    }
}

/// The unfolded form of [`conv2d_forward`]: `y = conv2d(x, weight) + bias`: `x` `[batch, c_in, h, w]`, `weight`
/// `[c_out, c_in/groups, kh, kw]`, `bias` `[c_out]`; returns `[batch, c_out, h_out, w_out]`.
pub fn unfolded_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
) -> Vec<f32> {
    let (p, k) = (g.positions(), g.patch_len());
    let c = g.c_out_group();
    let per_task = g.images_per_task();
    let mut y = vec![0.0f32; g.batch * g.output_len()];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(per_task * g.output_len())
        .enumerate()
        .for_each(|(t, y_task)| {
            let (i0, n) = (t * per_task, y_task.len() / g.output_len());
            let (cols_len, tmp_len) = scratch_lens(g, n);
            with_scratch(cols_len, tmp_len, |cols, tmp| {
                for group in 0..g.groups {
                    let w_g = &weight[group * c * k..][..c * k];
                    let rhs = unfolded(x, g, (i0, n), group, cols);
                    if n == 1 {
                        let dst = &mut y_task[group * c * p..][..c * p];
                        if let Some(b) = bias {
                            for (co, row) in dst.chunks_exact_mut(p).enumerate() {
                                row.fill(b[group * c + co]);
                            }
                        }
                        product(
                            (c, p, k),
                            dst,
                            row_major(p),
                            bias.is_some(),
                            w_g,
                            row_major(k),
                            rhs,
                            row_major(p),
                        );
                    } else {
                        product(
                            (c, n * p, k),
                            tmp,
                            row_major(n * p),
                            false,
                            w_g,
                            row_major(k),
                            rhs,
                            row_major(n * p),
                        );
                        for i in 0..n {
                            let out = &mut y_task[i * g.output_len() + group * c * p..][..c * p];
                            for (co, row) in out.chunks_exact_mut(p).enumerate() {
                                let src = &tmp[co * n * p + i * p..][..p];
                                let b = bias.map_or(0.0, |b| b[group * c + co]);
                                for (o, s) in row.iter_mut().zip(src) {
                                    *o = s + b;
                                }
                            }
                        }
                    }
                }
            });
        });
    y
}

/// `dx = conv_transpose2d(output_grad, feedback)` with the convolution's stride, padding,
/// dilation and groups, cropped to the input's size: the error a conv2d sends to its input
/// through `feedback` (`[c_out, c_in/groups, kh, kw]`; `W` for backprop). `output_grad`
/// `[batch, c_out, h_out, w_out]`; returns `[batch, c_in, h, w]`.
pub fn unfolded_input_gradient(
    feedback: &[f32],
    output_grad: &[f32],
    g: &ConvGeometry,
) -> Vec<f32> {
    let (p, k) = (g.positions(), g.patch_len());
    let c = g.c_out_group();
    let group_len = g.c_in_group() * g.input[0] * g.input[1];
    let per_task = g.images_per_task();
    let mut dx = vec![0.0f32; g.batch * g.image_len()];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(per_task * g.image_len())
        .enumerate()
        .for_each(|(t, dx_task)| {
            let (i0, n) = (t * per_task, dx_task.len() / g.image_len());
            let (cols_len, tmp_len) = scratch_lens(g, n);
            with_scratch(cols_len, tmp_len, |cols, tmp| {
                for group in 0..g.groups {
                    // Bᵀ as a [K, c_out_g] view of B's [c_out_g, K] rows.
                    let b_t = &feedback[group * c * k..][..c * k];
                    let b_t_strides = Strides { row: 1, col: k };
                    let rhs = output_rows(output_grad, g, (i0, n), group, tmp);
                    // A pointwise convolution of one image has no unfolded form to fold back.
                    if g.is_pointwise() && n == 1 {
                        let dst = &mut dx_task[group * group_len..][..group_len];
                        product(
                            (k, p, c),
                            dst,
                            row_major(p),
                            false,
                            b_t,
                            b_t_strides,
                            rhs,
                            row_major(p),
                        );
                    } else {
                        product(
                            (k, n * p, c),
                            cols,
                            row_major(n * p),
                            false,
                            b_t,
                            b_t_strides,
                            rhs,
                            row_major(n * p),
                        );
                        for i in 0..n {
                            let image =
                                &mut dx_task[i * g.image_len() + group * group_len..][..group_len];
                            col2im_add(cols, g, image, n * p, i * p);
                        }
                    }
                }
            });
        });
    dx
}

/// `dW = Σ_{batch, positions} x ⋆ output_grad`: the weight gradient of a conv2d (or, with the
/// layer's response in place of the error, a weight mirror's correlation). `x`
/// `[batch, c_in, h, w]`, `output_grad` `[batch, c_out, h_out, w_out]`; returns
/// `[c_out, c_in/groups, kh, kw]`.
pub fn unfolded_weight_gradient(x: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (p, k) = (g.positions(), g.patch_len());
    let c = g.c_out_group();
    let w_len = g.c_out * k;
    let per_task = g.images_per_task();
    let tasks = g.batch.div_ceil(per_task);
    if tasks == 0 || w_len == 0 {
        return vec![0.0; w_len];
    }
    let tasks_per_part = tasks.div_ceil(tasks.min(MAX_WEIGHT_PARTS));
    let parts = tasks.div_ceil(tasks_per_part);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut dw = vec![0.0f32; w_len];
            let first = part * tasks_per_part;
            for t in first..((part + 1) * tasks_per_part).min(tasks) {
                let i0 = t * per_task;
                let n = per_task.min(g.batch - i0);
                let (cols_len, tmp_len) = scratch_lens(g, n);
                with_scratch(cols_len, tmp_len, |cols, tmp| {
                    for group in 0..g.groups {
                        let u = unfolded(x, g, (i0, n), group, cols);
                        let lhs = output_rows(output_grad, g, (i0, n), group, tmp);
                        let dst = &mut dw[group * c * k..][..c * k];
                        // Uᵀ as an [n·P, K] view of U's [K, n·P] rows.
                        let u_t = Strides { row: 1, col: n * p };
                        product(
                            (c, k, n * p),
                            dst,
                            row_major(k),
                            t != first,
                            lhs,
                            row_major(n * p),
                            u,
                            u_t,
                        );
                    }
                });
            }
            dw
        })
        .collect();
    let mut parts_iter = partials.into_iter();
    let mut dw = parts_iter.next().expect("at least one part");
    let rest: Vec<Vec<f32>> = parts_iter.collect();
    if !rest.is_empty() {
        const CHUNK: usize = 4096;
        dw.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, out)| {
            for part in &rest {
                for (o, v) in out.iter_mut().zip(&part[ci * CHUNK..]) {
                    *o += v;
                }
            }
        });
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_values as values;

    /// The convolution written as its sum, in f64: `y[n, o, oh, ow] = b[o] + Σ w·x`.
    fn direct_forward(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let [h, wd] = g.input;
        let [kh, kw] = g.kernel;
        let [oh_n, ow_n] = g.output;
        let (cig, cog) = (g.c_in_group(), g.c_out_group());
        let mut y = vec![0.0f64; g.batch * g.output_len()];
        for n in 0..g.batch {
            for o in 0..g.c_out {
                let grp = o / cog;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let mut acc = b[o] as f64;
                        for ci in 0..cig {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let ih = (oh * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.pad_begin[0] as isize;
                                    let iw = (ow * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.pad_begin[1] as isize;
                                    if ih < 0 || iw < 0 || ih as usize >= h || iw as usize >= wd {
                                        continue;
                                    }
                                    let xi = ((n * g.c_in + grp * cig + ci) * h + ih as usize) * wd
                                        + iw as usize;
                                    let wi = ((o * cig + ci) * kh + i) * kw + j;
                                    acc += x[xi] as f64 * w[wi] as f64;
                                }
                            }
                        }
                        y[((n * g.c_out + o) * oh_n + oh) * ow_n + ow] = acc;
                    }
                }
            }
        }
        y
    }

    fn max_rel_error(got: &[f32], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        got.iter()
            .zip(want)
            .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()))
            / scale
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    /// `(x, weight, stride, padding, dilation, groups)` of each case.
    type Case = (
        [usize; 4],
        [usize; 4],
        [usize; 2],
        [(usize, usize); 2],
        [usize; 2],
        usize,
    );

    fn geometries() -> Vec<ConvGeometry> {
        let cases: [Case; 7] = [
            ([3, 4, 9, 7], [6, 4, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1),
            ([5, 4, 10, 10], [6, 4, 3, 3], [2, 2], [(1, 1); 2], [1, 1], 1),
            (
                [2, 6, 7, 6],
                [4, 3, 3, 3],
                [1, 2],
                [(2, 2), (1, 1)],
                [2, 1],
                2,
            ),
            ([4, 5, 6, 6], [3, 5, 1, 1], [1, 1], [(0, 0); 2], [1, 1], 1),
            ([1, 5, 7, 7], [3, 5, 1, 1], [1, 1], [(0, 0); 2], [1, 1], 1),
            ([3, 4, 8, 9], [8, 4, 1, 1], [2, 2], [(0, 0); 2], [1, 1], 1),
            (
                [2, 3, 11, 12],
                [4, 3, 7, 5],
                [2, 3],
                [(3, 1), (2, 2)],
                [1, 1],
                1,
            ),
        ];
        cases
            .iter()
            .map(|&(x, w, stride, padding, dilation, groups)| {
                ConvGeometry::new(x, w, stride, padding, dilation, groups).unwrap()
            })
            .collect()
    }

    #[test]
    fn forward_matches_the_sum_it_stands_for() {
        for (case, g) in geometries().iter().enumerate() {
            let x = values(g.batch * g.image_len(), 1);
            let w = values(g.c_out * g.patch_len(), 2);
            let b = values(g.c_out, 3);
            let want = direct_forward(&x, &w, &b, g);
            let got = conv2d_forward(&x, &w, Some(&b), g);
            let err = max_rel_error(&got, &want);
            assert!(err < 1e-5, "case {case}: relative error {err}");
        }
    }

    /// The input and weight gradients are the forward's adjoints:
    /// `⟨G, conv(x, W)⟩ = ⟨dx(G, W), x⟩ = ⟨dW(x, G), W⟩`.
    #[test]
    fn gradients_are_the_adjoints_of_the_forward() {
        for (case, g) in geometries().iter().enumerate() {
            let x = values(g.batch * g.image_len(), 4);
            let w = values(g.c_out * g.patch_len(), 5);
            let out = values(g.batch * g.output_len(), 6);
            let y = conv2d_forward(&x, &w, None, g);
            let dx = conv2d_input_gradient(&w, &out, g);
            let dw = conv2d_weight_gradient(&x, &out, g);
            let (a, b, c) = (dot(&out, &y), dot(&dx, &x), dot(&dw, &w));
            let scale = a.abs().max(1.0);
            assert!(
                (a - b).abs() < 1e-5 * scale,
                "case {case}: dx adjoint {a} vs {b}"
            );
            assert!(
                (a - c).abs() < 1e-5 * scale,
                "case {case}: dW adjoint {a} vs {c}"
            );
        }
    }

    /// The kernels `docs/architecture.md` lists for the zoo's layers (on a CPU with AVX2 + FMA
    /// or AVX-512; elsewhere every layer is unfolded).
    #[test]
    fn zoo_layers_take_the_documented_kernels() {
        if !direct::takes(
            &ConvGeometry::new(
                [1, 16, 32, 32],
                [16, 16, 3, 3],
                [1, 1],
                [(1, 1); 2],
                [1, 1],
                1,
            )
            .unwrap(),
        ) {
            return;
        }
        let choice = |batch, c_in, c_out, side, k, stride| {
            let pad = k / 2;
            let g = ConvGeometry::new(
                [batch, c_in, side, side],
                [c_out, c_in, k, k],
                [stride; 2],
                [(pad, pad); 2],
                [1, 1],
                1,
            )
            .unwrap();
            let c = KernelChoice::of(&g);
            (c.forward, c.input_gradient, c.weight_gradient)
        };
        use Kernel::{Direct as D, Unfolded as U, Winograd as W};
        // ResNet-20: the 3×3 stride-1 layers at 32², 16² and 8² direct; the 3-channel stem's
        // gradients and the strided layers unfolded.
        assert_eq!(choice(128, 16, 16, 32, 3, 1), (D, D, D));
        assert_eq!(choice(128, 32, 32, 16, 3, 1), (D, D, D));
        assert_eq!(choice(128, 64, 64, 8, 3, 1), (D, D, D));
        assert_eq!(choice(128, 3, 16, 32, 3, 1), (D, U, U));
        assert_eq!(choice(128, 16, 32, 32, 3, 2), (U, U, U));
        // ResNet-18: 64 and 128 channels direct; 256 at 8² and 4² Winograd but the weight
        // gradient direct; 512 at 4² and 2² the forward on Winograd, the gradients unfolded;
        // the 1×1 shortcuts and the 7×7 stem unfolded.
        assert_eq!(choice(32, 64, 64, 32, 3, 1), (D, D, D));
        assert_eq!(choice(128, 128, 128, 8, 3, 1), (D, D, D));
        assert_eq!(choice(32, 256, 256, 8, 3, 1), (W, W, D));
        assert_eq!(choice(128, 256, 256, 4, 3, 1), (W, W, D));
        assert_eq!(choice(32, 512, 512, 4, 3, 1), (W, U, U));
        assert_eq!(choice(128, 512, 512, 2, 3, 1), (W, U, U));
        assert_eq!(choice(32, 64, 128, 32, 1, 2), (U, U, U));
        assert_eq!(choice(128, 3, 64, 64, 7, 2), (U, U, U));
    }

    /// Same inputs, same bits: on repeated runs and on pools of 1, 2 and 3 threads.
    #[test]
    fn results_are_bit_identical_across_runs_and_thread_counts() {
        let g = ConvGeometry::new([37, 8, 6, 6], [16, 8, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1)
            .unwrap();
        let x = values(g.batch * g.image_len(), 7);
        let w = values(g.c_out * g.patch_len(), 8);
        let out = values(g.batch * g.output_len(), 9);
        crate::test_util::assert_same_bits_on_pools("conv2d", || {
            (
                conv2d_forward(&x, &w, None, &g),
                conv2d_input_gradient(&w, &out, &g),
                conv2d_weight_gradient(&x, &out, &g),
            )
        });
    }
}
