//! Stride-1 convolutions computed directly, without the unfolded copy: the forward, the input
//! gradient (the same kernel on the output gradient with the feedback flipped) and the weight
//! gradient, register-blocked, on rayon's threads.
//!
//! **Layout.** A task's `n` images are copied, channel by channel, into one zero-padded plane
//! whose rows are `W + s_c` wide and whose images are stacked `H + s_r` rows apart
//! (`s_r = max(pad_top, pad_bottom)`, `s_c = max(pad_left, pad_right)`): neighbouring rows and
//! images share their zero padding. In that plane every output position is a flat index `q`
//! and tap `(i, j)` of the kernel reads `plane[q + i·d_h·(W + s_c) + j·d_w]`, so the whole task
//! is one long run of positions that vectors step through, with no edge cases; the few
//! positions that fall on padding are computed and thrown away (for a 3×3 kernel with padding
//! 1: 6 % of them at 32×32, 21 % at 8×8).
//!
//! | kernel | per task | register block |
//! |---|---|---|
//! | [`forward`] | `Y[o, q] = b[o] + Σ_{c, i, j} W[o, c, i, j]·X[c, q + off(i, j)]` | `CO` output channels × `V` vectors of positions |
//! | [`input_gradient`] | the forward on `G` with `Bᵀ` flipped, padding `d·(k − 1) − p` | as the forward |
//! | [`weight_gradient`] | `dW[o, c, i, j] = Σ_q G[o, q]·X[c, q + off(i, j)]` over the output positions (padding skipped), the plane transposed to `[position, channel]` | 3 output channels (AVX2: 1) × 9 taps of one vector of input channels |
//!
//! Every sum runs in an order fixed by the shapes (the channels, then the taps, in order; the
//! weight gradient's positions in order and the batch in fixed parts, added in order), so the
//! bits are the same on every run and for any number of threads. The micro-kernels are one
//! generic body (the `Simd` trait) compiled twice: AVX-512 (16 lanes, 8 channels × 3 vectors)
//! and AVX2 + FMA (8 lanes, 4 × 3), the better one the CPU reports chosen at run time; a CPU
//! with neither takes the unfolded kernels ([`takes`] says no). The two differ in the last
//! bits (different lane counts), never between runs on one machine.

use rayon::prelude::*;

use crate::geometry::ConvGeometry;
use crate::scratch::with_scratch;

/// The most partial sums the weight gradient splits the batch into (as the unfolded kernel).
const MAX_WEIGHT_PARTS: usize = 16;

/// Whether the direct kernels take this convolution: stride 1 (any kernel size, padding,
/// dilation and groups), not a pointwise convolution (that one needs no unfolding already),
/// and padding below the kernel's span (so the input gradient's padding is not negative), on
/// a CPU with AVX-512 or AVX2 + FMA (elsewhere the unfolded kernels on `gemm` run).
pub fn takes(g: &ConvGeometry) -> bool {
    if Isa::best().is_none() {
        return false;
    }
    if g.stride != [1, 1] || g.is_pointwise() || g.batch == 0 || g.c_out == 0 || g.c_in == 0 {
        return false;
    }
    let p = Pads::of(g);
    (0..2).all(|d| {
        let span = g.dilation[d] * (g.kernel[d] - 1);
        p.begin[d] <= span && p.end[d] <= span
    })
}

/// Padding before and after along height and width of a stride-1 convolution.
#[derive(Debug, Clone, Copy)]
struct Pads {
    begin: [usize; 2],
    end: [usize; 2],
}

impl Pads {
    fn of(g: &ConvGeometry) -> Self {
        // Stride 1: output = input + begin + end − span + 1.
        let end = std::array::from_fn(|d| {
            g.output[d] + g.dilation[d] * (g.kernel[d] - 1) - g.input[d] - g.pad_begin[d]
        });
        Self {
            begin: g.pad_begin,
            end,
        }
    }
}

/// Where a task's images and outputs lie in its shared-padding plane (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Plane {
    /// Images in the task.
    images: usize,
    /// Input height and width.
    input: [usize; 2],
    /// Output height and width.
    output: [usize; 2],
    /// Zero rows between images and zero columns between rows.
    sep: [usize; 2],
    /// Padding before the image (top, left).
    pad_begin: [usize; 2],
    /// Offsets of the kernel's taps, row by row.
    taps: [usize; MAX_TAPS],
    n_taps: usize,
    /// Output positions computed (a multiple of `block`).
    positions: usize,
    /// Elements of one channel's plane.
    len: usize,
}

/// The largest kernel (`kh·kw`) the direct kernels take.
const MAX_TAPS: usize = 64;

impl Plane {
    fn new(g: &ConvGeometry, images: usize, block: usize) -> Self {
        let p = Pads::of(g);
        let sep = [p.begin[0].max(p.end[0]), p.begin[1].max(p.end[1])];
        let pitch = g.input[1] + sep[1];
        let mut taps = [0; MAX_TAPS];
        let n_taps = g.kernel[0] * g.kernel[1];
        for i in 0..g.kernel[0] {
            for j in 0..g.kernel[1] {
                taps[i * g.kernel[1] + j] = i * g.dilation[0] * pitch + j * g.dilation[1];
            }
        }
        let image_rows = g.input[0] + sep[0];
        // The last output row of the last image, plus one.
        let rows = (images - 1) * image_rows + sep[0] - p.begin[0] + g.output[0];
        let positions = (rows * pitch).div_ceil(block) * block;
        let read_end = positions + taps[n_taps - 1];
        let data_end = (images * image_rows + sep[0]) * pitch;
        Self {
            images,
            input: g.input,
            output: g.output,
            sep,
            pad_begin: p.begin,
            taps,
            n_taps,
            positions,
            len: read_end.max(data_end),
        }
    }

    fn pitch(&self) -> usize {
        self.input[1] + self.sep[1]
    }

    /// Index of the input's row `h` of image `i` (its first column).
    fn input_row(&self, i: usize, h: usize) -> usize {
        (self.sep[0] + i * (self.input[0] + self.sep[0]) + h) * self.pitch() + self.sep[1]
    }

    /// Index of the output's row `oh` of image `i` (its first column).
    fn output_row(&self, i: usize, oh: usize) -> usize {
        (self.sep[0] - self.pad_begin[0] + i * (self.input[0] + self.sep[0]) + oh) * self.pitch()
            + self.sep[1]
            - self.pad_begin[1]
    }

    /// Copies channels `channels` of images `i0..i0 + images` of `src` (`[batch, c, h, w]`,
    /// `c` channels an image) into `dst` (`[channels.len(), len]`), padding zeroed.
    fn fill(&self, src: &[f32], c: usize, i0: usize, channels: (usize, usize), dst: &mut [f32]) {
        let [h, w] = self.input;
        let (c0, nc) = channels;
        for (k, plane) in dst.chunks_exact_mut(self.len).take(nc).enumerate() {
            plane.fill(0.0);
            for i in 0..self.images {
                let image = &src[((i0 + i) * c + c0 + k) * h * w..][..h * w];
                for (r, row) in image.chunks_exact(w).enumerate() {
                    plane[self.input_row(i, r)..][..w].copy_from_slice(row);
                }
            }
        }
    }
}

impl Plane {
    /// As [`Plane::fill`], transposed: `dst[q·padded + k]` is channel `c0 + k`'s element at
    /// plane position `q` (`[len, padded]`; channels past `nc` and the padding are zeros).
    fn fill_transposed(
        &self,
        src: &[f32],
        c: usize,
        i0: usize,
        (c0, nc): (usize, usize),
        padded: usize,
        dst: &mut [f32],
    ) {
        let [h, w] = self.input;
        let dst = &mut dst[..self.len * padded];
        dst.fill(0.0);
        for i in 0..self.images {
            for k in 0..nc {
                let image = &src[((i0 + i) * c + c0 + k) * h * w..][..h * w];
                for (r, row) in image.chunks_exact(w).enumerate() {
                    let start = self.input_row(i, r);
                    for (j, &v) in row.iter().enumerate() {
                        dst[(start + j) * padded + k] = v;
                    }
                }
            }
        }
    }
}

/// An instruction set the micro-kernels run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// The instruction sets this CPU reports, best first.
    fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut found = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                found.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                found.push(Isa::Avx2);
            }
        }
        found
    }

    /// The best instruction set this CPU reports (checked once).
    fn best() -> Option<Isa> {
        static BEST: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available().first().copied())
    }

    /// `(lanes, output channels, vectors)` of the forward's register block.
    fn forward_block(self) -> (usize, usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (16, 8, 3),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (8, 4, 3),
        }
    }

    fn lanes(self) -> usize {
        self.forward_block().0
    }
}

/// The weights of each group packed for the forward's micro-kernel: for each block of `co`
/// output channels, `[c_in_g][taps][co]` (channels past the group's end are zeros).
fn pack_forward_weights(weight: &[f32], g: &ConvGeometry, co: usize) -> Vec<f32> {
    let (cig, cog, taps) = (g.c_in_group(), g.c_out_group(), g.kernel[0] * g.kernel[1]);
    let blocks = cog.div_ceil(co);
    let mut packed = vec![0.0f32; g.groups * blocks * cig * taps * co];
    for group in 0..g.groups {
        for b in 0..blocks {
            let dst = &mut packed[(group * blocks + b) * cig * taps * co..][..cig * taps * co];
            for o in 0..co.min(cog - b * co) {
                let src = &weight[(group * cog + b * co + o) * cig * taps..][..cig * taps];
                for (ct, &v) in src.iter().enumerate() {
                    dst[ct * co + o] = v;
                }
            }
        }
    }
    packed
}

/// `y = conv2d(x, weight) + bias` for a stride-1 convolution that [`takes`] accepts: `x`
/// `[batch, c_in, h, w]`, `weight` `[c_out, c_in/groups, kh, kw]`, `bias` `[c_out]`; returns
/// `[batch, c_out, h_out, w_out]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    assert!(
        takes(g),
        "direct::forward: not a convolution the direct kernels take"
    );
    forward_on(best(), x, weight, bias, g)
}

fn best() -> Isa {
    Isa::best().expect("takes() checked that the CPU has an instruction set")
}

fn forward_on(
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
) -> Vec<f32> {
    let (lanes, co, vectors) = isa.forward_block();
    let packed = pack_forward_weights(weight, g, co);
    let per_task = g.images_per_task();
    let mut y = vec![0.0f32; g.batch * g.output_len()];
    let (cig, cog) = (g.c_in_group(), g.c_out_group());
    let blocks = cog.div_ceil(co);
    y.par_chunks_mut(per_task * g.output_len())
        .enumerate()
        .for_each(|(t, y_task)| {
            let (i0, n) = (t * per_task, y_task.len() / g.output_len());
            let plane = Plane::new(g, n, lanes * vectors);
            let out_len = co * plane.positions;
            with_scratch(cig * plane.len, out_len, |xp, yp| {
                for group in 0..g.groups {
                    plane.fill(x, g.c_in, i0, (group * cig, cig), xp);
                    for b in 0..blocks {
                        let w = &packed[(group * blocks + b) * cig * plane.n_taps * co..]
                            [..cig * plane.n_taps * co];
                        forward_block_run(isa, xp, w, cig, &plane, yp);
                        // Keep the valid positions, with the bias.
                        let [oh_n, ow_n] = plane.output;
                        for o in 0..co.min(cog - b * co) {
                            let oc = group * cog + b * co + o;
                            let bias = bias.map_or(0.0, |b| b[oc]);
                            let src = &yp[o * plane.positions..][..plane.positions];
                            for i in 0..n {
                                let dst =
                                    &mut y_task[(i * g.c_out + oc) * oh_n * ow_n..][..oh_n * ow_n];
                                for (r, row) in dst.chunks_exact_mut(ow_n).enumerate() {
                                    let s = &src[plane.output_row(i, r)..][..ow_n];
                                    for (d, v) in row.iter_mut().zip(s) {
                                        *d = v + bias;
                                    }
                                }
                            }
                        }
                    }
                }
            });
        });
    y
}

/// The error a stride-1 conv2d sends to its input through `feedback`
/// (`[c_out, c_in/groups, kh, kw]`): the forward kernel run on `output_grad`
/// `[batch, c_out, h_out, w_out]` with `feedback` transposed and flipped and the complementary
/// padding. Returns `[batch, c_in, h, w]`.
pub fn input_gradient(feedback: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(
        takes(g),
        "direct::input_gradient: not a convolution the direct kernels take"
    );
    input_gradient_on(best(), feedback, output_grad, g)
}

fn input_gradient_on(
    isa: Isa,
    feedback: &[f32],
    output_grad: &[f32],
    g: &ConvGeometry,
) -> Vec<f32> {
    let t = transposed(g);
    let (cig, cog, [kh, kw]) = (g.c_in_group(), g.c_out_group(), g.kernel);
    // W'[group·cig + c, o, i, j] = B[group·cog + o, c, kh − 1 − i, kw − 1 − j]
    let mut flipped = vec![0.0f32; feedback.len()];
    for group in 0..g.groups {
        for o in 0..cog {
            for c in 0..cig {
                for i in 0..kh {
                    for j in 0..kw {
                        let src = (((group * cog + o) * cig + c) * kh + i) * kw + j;
                        let dst =
                            (((group * cig + c) * cog + o) * kh + (kh - 1 - i)) * kw + (kw - 1 - j);
                        flipped[dst] = feedback[src];
                    }
                }
            }
        }
    }
    forward_on(isa, output_grad, &flipped, None, &t)
}

/// The geometry of the input gradient as a forward convolution: the output gradient in, the
/// input's shape out, padding `d·(k − 1) − p` on each side.
fn transposed(g: &ConvGeometry) -> ConvGeometry {
    let p = Pads::of(g);
    let pad = |d: usize| {
        let span = g.dilation[d] * (g.kernel[d] - 1);
        (span - p.begin[d], span - p.end[d])
    };
    ConvGeometry::new(
        [g.batch, g.c_out, g.output[0], g.output[1]],
        [g.c_in, g.c_out_group(), g.kernel[0], g.kernel[1]],
        [1, 1],
        [pad(0), pad(1)],
        g.dilation,
        g.groups,
    )
    .expect("the transposed convolution of a valid stride-1 convolution is valid")
}

/// `dW = Σ_{batch, positions} x ⋆ output_grad` of a stride-1 convolution [`takes`] accepts:
/// `x` `[batch, c_in, h, w]`, `output_grad` `[batch, c_out, h_out, w_out]`; returns
/// `[c_out, c_in/groups, kh, kw]`.
pub fn weight_gradient(x: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(
        takes(g),
        "direct::weight_gradient: not a convolution the direct kernels take"
    );
    weight_gradient_on(best(), x, output_grad, g)
}

fn weight_gradient_on(isa: Isa, x: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let lanes = isa.lanes();
    let (cig, cog) = (g.c_in_group(), g.c_out_group());
    let taps = g.kernel[0] * g.kernel[1];
    let padded = cig.div_ceil(lanes) * lanes;
    let w_len = g.c_out * cig * taps;
    let per_task = g.images_per_task();
    let tasks = g.batch.div_ceil(per_task);
    let tasks_per_part = tasks.div_ceil(tasks.min(MAX_WEIGHT_PARTS));
    let parts = tasks.div_ceil(tasks_per_part);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            // The part's sums `[groups, cog, taps, padded]`: input channels in the lanes.
            let mut sums = vec![0.0f32; g.groups * cog * taps * padded];
            for t in part * tasks_per_part..((part + 1) * tasks_per_part).min(tasks) {
                let i0 = t * per_task;
                let n = per_task.min(g.batch - i0);
                let plane = Plane::new(g, n, 1);
                with_scratch(plane.len * padded, 0, |xt, _| {
                    for group in 0..g.groups {
                        plane.fill_transposed(x, g.c_in, i0, (group * cig, cig), padded, xt);
                        let grads = OutputRows {
                            first: (i0 * g.c_out + group * cog) * g.positions(),
                            image: g.c_out * g.positions(),
                            channel: g.positions(),
                        };
                        let dst = &mut sums[group * cog * taps * padded..][..cog * taps * padded];
                        weight_block_run(isa, xt, padded, output_grad, grads, cog, &plane, dst);
                    }
                });
            }
            // [groups·cog, taps, padded] → [groups·cog, cig, taps]
            let mut dw = vec![0.0f32; w_len];
            for (o, dst) in dw.chunks_exact_mut(cig * taps).enumerate() {
                for c in 0..cig {
                    for tap in 0..taps {
                        dst[c * taps + tap] = sums[(o * taps + tap) * padded + c];
                    }
                }
            }
            dw
        })
        .collect();
    let mut parts_iter = partials.into_iter();
    let mut dw = parts_iter.next().unwrap_or_else(|| vec![0.0; w_len]);
    for part in parts_iter {
        for (o, v) in dw.iter_mut().zip(&part) {
            *o += v;
        }
    }
    dw
}

/// Where a task's output-gradient rows lie in `[batch, c_out, h_out, w_out]`: the first
/// image's first channel of the group, and the strides between images and channels.
#[derive(Debug, Clone, Copy)]
struct OutputRows {
    first: usize,
    image: usize,
    channel: usize,
}

/// One instruction set's vectors, as the micro-kernels use them.
///
/// # Safety
/// Every method needs the CPU features of its instruction set (the callers are compiled with
/// them and run only where the CPU reports them) and pointers valid for `L` elements.
trait Simd {
    /// Lanes of a vector.
    const L: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn splat(p: *const f32) -> Self::V;
    unsafe fn fmadd(a: Self::V, b: Self::V, acc: Self::V) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
}

#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const L: usize = 16;
    type V = std::arch::x86_64::__m512;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn zero() -> Self::V {
        std::arch::x86_64::_mm512_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(p: *const f32) -> Self::V {
        std::arch::x86_64::_mm512_set1_ps(unsafe { *p })
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn fmadd(a: Self::V, b: Self::V, acc: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_fmadd_ps(a, b, acc)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm512_storeu_ps(p, v) }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const L: usize = 8;
    type V = std::arch::x86_64::__m256;
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn zero() -> Self::V {
        std::arch::x86_64::_mm256_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn splat(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_broadcast_ss(&*p) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fmadd(a: Self::V, b: Self::V, acc: Self::V) -> Self::V {
        std::arch::x86_64::_mm256_fmadd_ps(a, b, acc)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
}

/// Runs the forward micro-kernel over every position of the plane for one block of output
/// channels: `yp[o, q]` for `o < CO`.
fn forward_block_run(isa: Isa, xp: &[f32], w: &[f32], cig: usize, plane: &Plane, yp: &mut [f32]) {
    let (lanes, co, vectors) = isa.forward_block();
    assert!(xp.len() >= cig * plane.len && w.len() >= cig * plane.n_taps * co);
    assert!(yp.len() >= co * plane.positions && plane.positions.is_multiple_of(lanes * vectors));
    // SAFETY: the plane's layout keeps every read `q + tap < len` for `q < positions`
    // (Plane::new), the channel planes lie in `xp` and the weights in `w` (checked above), and
    // the block's writes stay inside `yp`'s `co` rows (checked above); `isa` is one the CPU
    // reported (Isa::available).
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => forward_avx512(xp, w, cig, plane, yp),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => forward_avx2(xp, w, cig, plane, yp),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn forward_avx512(xp: &[f32], w: &[f32], cig: usize, plane: &Plane, yp: &mut [f32]) {
    // SAFETY: as forward_block_run's.
    unsafe { forward_generic::<Avx512, 8, 3>(xp, w, cig, plane, yp) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(xp: &[f32], w: &[f32], cig: usize, plane: &Plane, yp: &mut [f32]) {
    // SAFETY: as forward_block_run's.
    unsafe { forward_generic::<Avx2, 4, 3>(xp, w, cig, plane, yp) }
}

/// `yp[o, q] = Σ_{c, t} w[c, t, o]·xp[c·len + q + taps[t]]` for `o < CO`, every `q <
/// positions`, `V` vectors of positions at a time, the `CO × V` accumulators in registers.
///
/// # Safety
/// `xp` holds `cig` planes of `plane.len`, `w` holds `cig·n_taps·CO`, `yp` holds `CO` rows of
/// `plane.positions`, a multiple of `S::L·V`; the CPU has `S`'s features.
#[inline(always)]
unsafe fn forward_generic<S: Simd, const CO: usize, const V: usize>(
    xp: &[f32],
    w: &[f32],
    cig: usize,
    plane: &Plane,
    yp: &mut [f32],
) {
    let taps = &plane.taps[..plane.n_taps];
    let (x, wp, y) = (xp.as_ptr(), w.as_ptr(), yp.as_mut_ptr());
    // Input channels a pass over the positions takes: their weights stay in the L1 cache.
    // A later pass continues from the sums the last one stored, the same operations in the
    // same order as one pass would do.
    for c0 in (0..cig).step_by(CHANNEL_BLOCK) {
        let c1 = (c0 + CHANNEL_BLOCK).min(cig);
        let mut q = 0;
        while q < plane.positions {
            // SAFETY (every pointer below): see the function's contract.
            unsafe {
                let mut acc = [[S::zero(); V]; CO];
                if c0 > 0 {
                    for (o, acc) in acc.iter_mut().enumerate() {
                        for (v, a) in acc.iter_mut().enumerate() {
                            *a = S::load(y.add(o * plane.positions + q + v * S::L));
                        }
                    }
                }
                let mut wt = wp.add(c0 * taps.len() * CO);
                for c in c0..c1 {
                    let xc = x.add(c * plane.len + q);
                    for &off in taps {
                        let mut xv = [S::zero(); V];
                        for (v, xv) in xv.iter_mut().enumerate() {
                            *xv = S::load(xc.add(off + v * S::L));
                        }
                        for (o, acc) in acc.iter_mut().enumerate() {
                            let wv = S::splat(wt.add(o));
                            for (a, xv) in acc.iter_mut().zip(&xv) {
                                *a = S::fmadd(wv, *xv, *a);
                            }
                        }
                        wt = wt.add(CO);
                    }
                }
                for (o, acc) in acc.iter().enumerate() {
                    for (v, a) in acc.iter().enumerate() {
                        S::store(y.add(o * plane.positions + q + v * S::L), *a);
                    }
                }
            }
            q += S::L * V;
        }
    }
}

/// Input channels of one pass of the forward micro-kernel (`32·9·8` weights: 9 KiB).
const CHANNEL_BLOCK: usize = 32;

/// Adds the task's weight gradient to `sums` (`[cog, taps, padded]`, input channels in the
/// lanes), reading the transposed plane `xt` (`[len, padded]`) and the output gradient `grads`
/// (rows as `rows` says).
#[allow(clippy::too_many_arguments)]
fn weight_block_run(
    isa: Isa,
    xt: &[f32],
    padded: usize,
    grads: &[f32],
    rows: OutputRows,
    cog: usize,
    plane: &Plane,
    sums: &mut [f32],
) {
    let [oh_n, ow_n] = plane.output;
    assert!(padded.is_multiple_of(isa.lanes()) && xt.len() >= plane.len * padded);
    assert!(sums.len() >= cog * plane.n_taps * padded);
    let last = rows.first
        + (plane.images - 1) * rows.image
        + (cog - 1) * rows.channel
        + (oh_n * ow_n).saturating_sub(1);
    assert!(grads.len() > last);
    // SAFETY: reads `xt[(q + tap)·padded + c]` for output positions `q` (inside the plane:
    // Plane::new) and channels below `padded`, the `cog` output rows of each image (the last
    // element checked above), and reads and writes `sums`' `cog·taps·padded` (checked above);
    // `isa` is one the CPU reported.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => weight_avx512(xt, padded, grads, rows, cog, plane, sums),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => weight_avx2(xt, padded, grads, rows, cog, plane, sums),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn weight_avx512(
    xt: &[f32],
    padded: usize,
    grads: &[f32],
    rows: OutputRows,
    cog: usize,
    plane: &Plane,
    sums: &mut [f32],
) {
    // SAFETY: as weight_block_run's.
    unsafe { weight_generic::<Avx512, 3>(xt, padded, grads, rows, cog, plane, sums) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_avx2(
    xt: &[f32],
    padded: usize,
    grads: &[f32],
    rows: OutputRows,
    cog: usize,
    plane: &Plane,
    sums: &mut [f32],
) {
    // SAFETY: as weight_block_run's.
    unsafe { weight_generic::<Avx2, 1>(xt, padded, grads, rows, cog, plane, sums) }
}

/// The weight gradient's taps held in registers at once (a 3×3 kernel).
const TAP_BLOCK: usize = 9;

/// `sums[o, t, c..c + L] += Σ_q g[o, q]·xt[q + taps[t], c..c + L]` over the task's output
/// positions `q` (image by image, row by row, padding skipped), for `CO` output channels ×
/// up to [`TAP_BLOCK`] taps of `L` input channels in registers.
///
/// # Safety
/// As [`weight_block_run`] checks; the CPU has `S`'s features.
#[inline(always)]
unsafe fn weight_generic<S: Simd, const CO: usize>(
    xt: &[f32],
    padded: usize,
    grads: &[f32],
    rows: OutputRows,
    cog: usize,
    plane: &Plane,
    sums: &mut [f32],
) {
    let n_taps = plane.n_taps;
    let [oh_n, ow_n] = plane.output;
    let (x, gr, acc_mem) = (xt.as_ptr(), grads.as_ptr(), sums.as_mut_ptr());
    for c0 in (0..padded).step_by(S::L) {
        for o0 in (0..cog).step_by(CO) {
            let block = (cog - o0).min(CO);
            for t0 in (0..n_taps).step_by(TAP_BLOCK) {
                let nt = (n_taps - t0).min(TAP_BLOCK);
                let mut offs = [0usize; TAP_BLOCK];
                for (o, tap) in offs.iter_mut().zip(&plane.taps[t0..t0 + nt]) {
                    *o = tap * padded + c0;
                }
                let slot = |k: usize, t: usize| ((o0 + k) * n_taps + t0 + t) * padded + c0;
                // SAFETY (every pointer below): see the function's contract.
                unsafe {
                    let mut acc = [[S::zero(); TAP_BLOCK]; CO];
                    for (k, acc) in acc.iter_mut().enumerate().take(block) {
                        for (t, a) in acc.iter_mut().enumerate().take(nt) {
                            *a = S::load(acc_mem.add(slot(k, t)));
                        }
                    }
                    for i in 0..plane.images {
                        // The block's output rows; a short block repeats its last channel.
                        let mut g = [gr; CO];
                        for (k, g) in g.iter_mut().enumerate() {
                            *g = gr.add(
                                rows.first
                                    + i * rows.image
                                    + (o0 + k.min(block - 1)) * rows.channel,
                            );
                        }
                        for oh in 0..oh_n {
                            let q0 = plane.output_row(i, oh);
                            for ow in 0..ow_n {
                                let xq = x.add((q0 + ow) * padded);
                                let mut gv = [S::zero(); CO];
                                for (v, g) in gv.iter_mut().zip(&g) {
                                    *v = S::splat(g.add(oh * ow_n + ow));
                                }
                                if nt == TAP_BLOCK {
                                    for (t, &off) in offs.iter().enumerate() {
                                        let xv = S::load(xq.add(off));
                                        for (acc, gv) in acc.iter_mut().zip(&gv) {
                                            acc[t] = S::fmadd(*gv, xv, acc[t]);
                                        }
                                    }
                                } else {
                                    for (t, &off) in offs[..nt].iter().enumerate() {
                                        let xv = S::load(xq.add(off));
                                        for (acc, gv) in acc.iter_mut().zip(&gv) {
                                            acc[t] = S::fmadd(*gv, xv, acc[t]);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    for (k, acc) in acc.iter().enumerate().take(block) {
                        for (t, a) in acc.iter().enumerate().take(nt) {
                            S::store(acc_mem.add(slot(k, t)), *a);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv2d;
    use crate::test_util::{assert_same_bits_on_pools, max_rel_error};
    use crate::test_values as values;

    fn geometry(
        x: [usize; 4],
        w: [usize; 4],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> ConvGeometry {
        ConvGeometry::new(x, w, [1, 1], padding, dilation, groups).unwrap()
    }

    /// The stride-1 shapes the direct kernels take: the zoo's 3×3 layers shrunk, odd sizes,
    /// uneven and no padding, dilation, groups, a 5×5 and a 7×1 kernel, one image and images
    /// batched into one task, channel counts that do not fill a register block.
    fn geometries() -> Vec<ConvGeometry> {
        vec![
            geometry([3, 16, 12, 12], [16, 16, 3, 3], [(1, 1); 2], [1, 1], 1),
            geometry([5, 8, 4, 4], [24, 8, 3, 3], [(1, 1); 2], [1, 1], 1),
            geometry([2, 3, 9, 7], [5, 3, 3, 3], [(1, 1); 2], [1, 1], 1),
            geometry([2, 4, 9, 8], [6, 4, 3, 3], [(2, 2); 2], [2, 2], 1),
            geometry([3, 6, 7, 6], [8, 3, 3, 3], [(0, 2), (1, 0)], [1, 1], 2),
            geometry([2, 6, 8, 7], [6, 1, 3, 3], [(1, 1); 2], [1, 1], 6),
            geometry([4, 5, 10, 9], [7, 5, 5, 5], [(2, 2); 2], [1, 1], 1),
            geometry([2, 4, 11, 6], [3, 4, 7, 1], [(3, 3), (0, 0)], [1, 1], 1),
            geometry([2, 3, 6, 6], [4, 3, 3, 3], [(0, 0); 2], [1, 1], 1),
            geometry([1, 17, 5, 13], [33, 17, 3, 3], [(1, 1); 2], [1, 1], 1),
        ]
    }

    /// Each direct kernel against the unfolded kernels (themselves tested against the sum
    /// written out and Burn's ops), on random inputs, to 1e-5.
    #[test]
    fn direct_kernels_match_the_unfolded_ones() {
        for (case, g) in geometries().iter().enumerate() {
            assert!(takes(g), "case {case}: {g:?} should take the direct path");
            let x = values(g.batch * g.image_len(), 10 + case as u64);
            let w = values(g.c_out * g.patch_len(), 20 + case as u64);
            let b = values(g.c_out, 30 + case as u64);
            let out = values(g.batch * g.output_len(), 40 + case as u64);
            let want = [
                conv2d::unfolded_forward(&x, &w, Some(&b), g),
                conv2d::unfolded_input_gradient(&w, &out, g),
                conv2d::unfolded_weight_gradient(&x, &out, g),
            ];
            // Every instruction set this CPU has (AVX-512 and AVX2 here), not only the best.
            for isa in Isa::available() {
                let got = [
                    forward_on(isa, &x, &w, Some(&b), g),
                    input_gradient_on(isa, &w, &out, g),
                    weight_gradient_on(isa, &x, &out, g),
                ];
                let kernels = ["forward", "input gradient", "weight gradient"];
                for (what, (got, want)) in kernels.iter().zip(got.iter().zip(&want)) {
                    let err = max_rel_error(got, want);
                    assert!(
                        err < 1e-5,
                        "case {case} {isa:?} {what}: relative error {err:e}"
                    );
                }
            }
        }
    }

    /// What the direct path leaves to the unfolded one: strides above 1, pointwise layers and
    /// padding past the kernel's span.
    #[test]
    fn other_convolutions_are_not_taken() {
        let strided =
            ConvGeometry::new([2, 4, 8, 8], [4, 4, 3, 3], [2, 2], [(1, 1); 2], [1, 1], 1).unwrap();
        let pointwise = geometry([2, 4, 8, 8], [4, 4, 1, 1], [(0, 0); 2], [1, 1], 1);
        let wide_pad = geometry([2, 4, 8, 8], [4, 4, 3, 3], [(3, 3); 2], [1, 1], 1);
        for g in [strided, pointwise, wide_pad] {
            assert!(!takes(&g), "{g:?}");
        }
    }

    /// Same inputs, same bits: on repeated runs and on pools of 1, 2 and 3 threads, with a
    /// batch that splits into several tasks and weight-gradient parts.
    #[test]
    fn direct_results_are_bit_identical_across_thread_counts() {
        let g = geometry([37, 8, 6, 6], [16, 8, 3, 3], [(1, 1); 2], [1, 1], 1);
        assert!(takes(&g));
        let x = values(g.batch * g.image_len(), 7);
        let w = values(g.c_out * g.patch_len(), 8);
        let out = values(g.batch * g.output_len(), 9);
        for isa in Isa::available() {
            assert_same_bits_on_pools(&format!("{isa:?}"), || {
                (
                    forward_on(isa, &x, &w, None, &g),
                    input_gradient_on(isa, &w, &out, &g),
                    weight_gradient_on(isa, &x, &out, &g),
                )
            });
        }
    }
}
