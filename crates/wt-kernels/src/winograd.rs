//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3), for the deep layers'
//! small maps with many channels: each 2×2 tile of outputs from a 4×4 tile of inputs with 16
//! multiplications instead of 36, the channel sums as 16 matrix products on the `gemm` crate,
//! one per element `ξ` of the transformed tile, each over the whole batch's tiles.
//!
//! With `g` the 3×3 filter, `d` the 4×4 input tile and `y` the 2×2 output tile:
//! `U = G·g·Gᵀ`, `V = Bᵀ·d·B`, `y = Aᵀ·(Σ_c U ⊙ V)·A`, where
//! `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`,
//! `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`,
//! `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`.
//!
//! | kernel | steps | the 16 products |
//! |---|---|---|
//! | [`forward`] | `V` of every input tile (channels in parallel), the products (`ξ` in parallel), `Aᵀ·M·A` of every tile (output channels in parallel), then NCHW | `M_ξ[o, t] = U_ξ[o, c]·V_ξ[c, t]` |
//! | [`input_gradient`] | the forward on the output gradient with `Bᵀ` flipped, padding `2 − p` | as the forward |
//! | [`weight_gradient`] | `V` as above, `Z = A·gy·Aᵀ` of every output tile, the products, `dW = Gᵀ·dU·G` | `dU_ξ[o, c] = Z_ξ[o, t]·V_ξ[c, t]` |
//!
//! Every transform coefficient is 0, ±1 or ±½, so the transforms round no more than a few
//! additions do (measured against the unfolded kernels: `docs/architecture.md`). Each product
//! is one single-threaded `gemm` call on fixed operands and each transform writes its own
//! rows, so the bits are the same on every run and for any number of threads.

use rayon::prelude::*;

use crate::geometry::ConvGeometry;

/// Lanes of the widest vectors the CPU reports (16: AVX-512, 8: AVX2, 4: baseline), checked
/// once.
fn vector_width() -> usize {
    static WIDTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WIDTH.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return 16;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return 8;
            }
        }
        4
    })
}

/// Whether the Winograd kernels take this convolution: a 3×3 kernel, stride 1, no dilation,
/// padding at most 2 on each side (so the input gradient's padding `2 − p` is not negative).
pub fn takes(g: &ConvGeometry) -> bool {
    let pads_fit = (0..2).all(|d| {
        // Stride 1: output = input + begin + end − 2.
        let end = (g.output[d] + 2).checked_sub(g.input[d] + g.pad_begin[d]);
        g.pad_begin[d] <= 2 && end.is_some_and(|e| e <= 2)
    });
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && pads_fit
        && g.batch > 0
        && g.c_in > 0
        && g.c_out > 0
}

/// The batch's 2×2 output tiles: `rows × cols` an image, `t = image·rows·cols + row·cols +
/// col`.
#[derive(Debug, Clone, Copy)]
struct Tiles {
    rows: usize,
    cols: usize,
    total: usize,
}

impl Tiles {
    fn of(g: &ConvGeometry) -> Self {
        let (rows, cols) = (g.output[0].div_ceil(2), g.output[1].div_ceil(2));
        Self {
            rows,
            cols,
            total: g.batch * rows * cols,
        }
    }

    fn per_image(&self) -> usize {
        self.rows * self.cols
    }
}

/// A `[rows, cols]` matrix view: base pointer and strides in elements.
#[derive(Debug, Clone, Copy)]
struct View {
    ptr: *mut f32,
    row: usize,
    col: usize,
}

impl View {
    /// The view starting `n` elements further on.
    ///
    /// # Safety
    /// The result must stay inside the allocation.
    unsafe fn offset(self, n: usize) -> Self {
        Self {
            ptr: unsafe { self.ptr.add(n) },
            ..self
        }
    }
}

// SAFETY: a View is only written through where its owner hands each thread a disjoint set of
// elements (the products' column blocks `ξ`), and read where no thread writes.
unsafe impl Send for View {}
unsafe impl Sync for View {}

/// `dst[m×n] = lhs[m×k]·rhs[k×n]` on views, single-threaded.
///
/// # Safety
/// The three views cover `m×n`, `m×k` and `k×n` valid elements; no other thread touches
/// `dst`'s elements or writes the operands' during the call.
unsafe fn product((m, n, k): (usize, usize, usize), dst: View, lhs: View, rhs: View) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col as isize,
            dst.row as isize,
            false,
            lhs.ptr,
            lhs.col as isize,
            lhs.row as isize,
            rhs.ptr,
            rhs.col as isize,
            rhs.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `G·g·Gᵀ` of each filter of group `group`: `[c_out_g, c_in_g, 16]` (product `ξ` reads the
/// `[c_out_g, c_in_g]` view at offset `ξ`, strides `16·c_in_g` and 16).
fn filter_transform(weight: &[f32], g: &ConvGeometry, group: usize) -> Vec<f32> {
    let (cig, cog) = (g.c_in_group(), g.c_out_group());
    let mut u = vec![0.0f32; cog * cig * 16];
    let src = &weight[group * cog * cig * 9..][..cog * cig * 9];
    for (f, uf) in src.chunks_exact(9).zip(u.chunks_exact_mut(16)) {
        // G·g: 4 rows of 3, then ·Gᵀ.
        let gg: [[f32; 3]; 4] = [
            [f[0], f[1], f[2]],
            std::array::from_fn(|j| 0.5 * (f[j] + f[3 + j] + f[6 + j])),
            std::array::from_fn(|j| 0.5 * (f[j] - f[3 + j] + f[6 + j])),
            [f[6], f[7], f[8]],
        ];
        for (i, [a, b, e]) in gg.into_iter().enumerate() {
            uf[i * 4..][..4].copy_from_slice(&[a, 0.5 * (a + b + e), 0.5 * (a - b + e), e]);
        }
    }
    u
}

/// `Bᵀ·d·B` of every input tile of channel `c` of group `group`, over the batch, into `v`
/// (`[16, tiles]`: row `ξ`); `d` is read with the convolution's zero padding. One row of
/// tiles at a time: its four input rows copied (with the padding) into `rows`, then the tiles
/// across, each `ξ` written to consecutive tiles (a loop the compiler vectorises).
fn input_transform(
    x: &[f32],
    g: &ConvGeometry,
    tiles: &Tiles,
    (group, c): (usize, usize),
    v: &mut [f32],
) {
    let [h, w] = g.input;
    let (pt, pl) = (g.pad_begin[0] as isize, g.pad_begin[1] as isize);
    let channel = group * g.c_in_group() + c;
    let width = 2 * tiles.cols + 2;
    let mut rows = vec![0.0f32; 4 * width];
    for i in 0..g.batch {
        let image = &x[(i * g.c_in + channel) * h * w..][..h * w];
        for a in 0..tiles.rows {
            for (k, row) in rows.chunks_exact_mut(width).enumerate() {
                row.fill(0.0);
                let r = 2 * a as isize - pt + k as isize;
                if r < 0 || r >= h as isize {
                    continue;
                }
                let src = &image[r as usize * w..][..w];
                // Row element j is input column j − pl.
                let first = pl.max(0) as usize;
                let last = (w as isize + pl).min(width as isize).max(0) as usize;
                if first < last {
                    row[first..last].copy_from_slice(&src[first - pl as usize..last - pl as usize]);
                }
            }
            let t0 = i * tiles.per_image() + a * tiles.cols;
            transform_tile_row(&rows, width, tiles.cols, tiles.total, &mut v[t0..]);
        }
    }
}

/// [`transform_tile_row_body`] compiled for the best vector instructions the CPU reports.
fn transform_tile_row(rows: &[f32], width: usize, cols: usize, stride: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(rows: &[f32], width: usize, cols: usize, stride: usize, out: &mut [f32]) {
            transform_tile_row_body(rows, width, cols, stride, out)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(rows: &[f32], width: usize, cols: usize, stride: usize, out: &mut [f32]) {
            transform_tile_row_body(rows, width, cols, stride, out)
        }
        match vector_width() {
            // SAFETY: the CPU reported the feature.
            16 => return unsafe { avx512(rows, width, cols, stride, out) },
            8 => return unsafe { avx2(rows, width, cols, stride, out) },
            _ => {}
        }
    }
    transform_tile_row_body(rows, width, cols, stride, out)
}

/// The tiles of one tile row: `d[k][l] = rows[k][2b + l]`, `out[ξ·stride + b] = (Bᵀ·d·B)[ξ]`.
#[inline(always)]
fn transform_tile_row_body(
    rows: &[f32],
    width: usize,
    cols: usize,
    stride: usize,
    out: &mut [f32],
) {
    let (r0, r1, r2, r3) = (
        &rows[..width],
        &rows[width..2 * width],
        &rows[2 * width..3 * width],
        &rows[3 * width..],
    );
    for b in 0..cols {
        let d = |r: &[f32], l: usize| r[2 * b + l];
        // Bᵀ·d: rows r0 − r2, r1 + r2, r2 − r1, r1 − r3 (each 4 wide), then ·B on each.
        let rowk = |k: usize, l: usize| match k {
            0 => d(r0, l) - d(r2, l),
            1 => d(r1, l) + d(r2, l),
            2 => d(r2, l) - d(r1, l),
            _ => d(r1, l) - d(r3, l),
        };
        for k in 0..4 {
            let (e0, e1, e2, e3) = (rowk(k, 0), rowk(k, 1), rowk(k, 2), rowk(k, 3));
            out[(k * 4) * stride + b] = e0 - e2;
            out[(k * 4 + 1) * stride + b] = e1 + e2;
            out[(k * 4 + 2) * stride + b] = e2 - e1;
            out[(k * 4 + 3) * stride + b] = e1 - e3;
        }
    }
}

/// [`untransform_tile_row_body`] compiled for the best vector instructions the CPU reports.
fn untransform_tile_row(m: &[f32], stride: usize, cols: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(m: &[f32], stride: usize, cols: usize, out: &mut [f32]) {
            untransform_tile_row_body(m, stride, cols, out)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(m: &[f32], stride: usize, cols: usize, out: &mut [f32]) {
            untransform_tile_row_body(m, stride, cols, out)
        }
        match vector_width() {
            // SAFETY: the CPU reported the feature.
            16 => return unsafe { avx512(m, stride, cols, out) },
            8 => return unsafe { avx2(m, stride, cols, out) },
            _ => {}
        }
    }
    untransform_tile_row_body(m, stride, cols, out)
}

/// `Aᵀ·M·A` of one tile row: `m[ξ·stride + b]` in, the two output rows of the tiles side by
/// side out (`out`: `[2, 2·cols]`).
#[inline(always)]
fn untransform_tile_row_body(m: &[f32], stride: usize, cols: usize, out: &mut [f32]) {
    let (top, bottom) = out.split_at_mut(2 * cols);
    for b in 0..cols {
        let e = |k: usize, l: usize| m[(k * 4 + l) * stride + b];
        // Aᵀ·M: rows m0 + m1 + m2 and m1 − m2 − m3 (4 wide), then ·A.
        let r0: [f32; 4] = std::array::from_fn(|l| e(0, l) + e(1, l) + e(2, l));
        let r1: [f32; 4] = std::array::from_fn(|l| e(1, l) - e(2, l) - e(3, l));
        top[2 * b] = r0[0] + r0[1] + r0[2];
        top[2 * b + 1] = r0[1] - r0[2] - r0[3];
        bottom[2 * b] = r1[0] + r1[1] + r1[2];
        bottom[2 * b + 1] = r1[1] - r1[2] - r1[3];
    }
}

/// [`gradient_tile_row_body`] compiled for the best vector instructions the CPU reports.
fn gradient_tile_row(rows: &[f32], cols: usize, stride: usize, z: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(rows: &[f32], cols: usize, stride: usize, z: &mut [f32]) {
            gradient_tile_row_body(rows, cols, stride, z)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(rows: &[f32], cols: usize, stride: usize, z: &mut [f32]) {
            gradient_tile_row_body(rows, cols, stride, z)
        }
        match vector_width() {
            // SAFETY: the CPU reported the feature.
            16 => return unsafe { avx512(rows, cols, stride, z) },
            8 => return unsafe { avx2(rows, cols, stride, z) },
            _ => {}
        }
    }
    gradient_tile_row_body(rows, cols, stride, z)
}

/// `A·gy·Aᵀ` of one tile row of the output gradient: `rows` its two rows (`[2, 2·cols]`,
/// zeros past the output's edge), `z[ξ·stride + b]` out.
#[inline(always)]
fn gradient_tile_row_body(rows: &[f32], cols: usize, stride: usize, z: &mut [f32]) {
    let (top, bottom) = rows.split_at(2 * cols);
    for b in 0..cols {
        let (g00, g01, g10, g11) = (top[2 * b], top[2 * b + 1], bottom[2 * b], bottom[2 * b + 1]);
        // A·gy: rows gy0, gy0 + gy1, gy0 − gy1, −gy1 (2 wide), then ·Aᵀ.
        let ag = [
            [g00, g01],
            [g00 + g10, g01 + g11],
            [g00 - g10, g01 - g11],
            [-g10, -g11],
        ];
        for (k, [p, q]) in ag.into_iter().enumerate() {
            z[(k * 4) * stride + b] = p;
            z[(k * 4 + 1) * stride + b] = p + q;
            z[(k * 4 + 2) * stride + b] = p - q;
            z[(k * 4 + 3) * stride + b] = -q;
        }
    }
}

/// `V` of group `group`: `[c_in_g, 16, tiles]`, channels in parallel.
fn transformed_inputs(x: &[f32], g: &ConvGeometry, tiles: &Tiles, group: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; g.c_in_group() * 16 * tiles.total];
    v.par_chunks_mut(16 * tiles.total)
        .enumerate()
        .for_each(|(c, vc)| input_transform(x, g, tiles, (group, c), vc));
    v
}

/// `y = conv2d(x, weight) + bias` for a convolution [`takes`] accepts: `x`
/// `[batch, c_in, h, w]`, `weight` `[c_out, c_in/groups, 3, 3]`, `bias` `[c_out]`; returns
/// `[batch, c_out, h_out, w_out]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    assert!(
        takes(g),
        "winograd::forward: not a convolution the Winograd kernels take"
    );
    let (cig, cog) = (g.c_in_group(), g.c_out_group());
    let tiles = Tiles::of(g);
    let [oh_n, ow_n] = g.output;
    let mut y = vec![0.0f32; g.batch * g.output_len()];
    for group in 0..g.groups {
        let mut u = filter_transform(weight, g, group);
        let mut v = transformed_inputs(x, g, &tiles, group);
        // M: [cog, 16, tiles]; product ξ fills the column block ξ of every row.
        let mut m = vec![0.0f32; cog * 16 * tiles.total];
        let (up, vp, mp) = (u.as_mut_ptr(), v.as_mut_ptr(), m.as_mut_ptr());
        let (uv, vv, mv) = (
            View {
                ptr: up,
                row: 16 * cig,
                col: 16,
            },
            View {
                ptr: vp,
                row: 16 * tiles.total,
                col: 1,
            },
            View {
                ptr: mp,
                row: 16 * tiles.total,
                col: 1,
            },
        );
        (0..16).into_par_iter().for_each(|xi| {
            // SAFETY: U_ξ is `[cog, cig]` at `ξ·cog·cig` of `u` (16·cog·cig elements); V_ξ is
            // `[cig, tiles]` at column `ξ·tiles` of `v`'s rows of `16·tiles`; M_ξ the same
            // in `m`'s `cog` rows. The products write disjoint column blocks of `m` and only
            // read `u` and `v`.
            unsafe {
                product(
                    (cog, tiles.total, cig),
                    mv.offset(xi * tiles.total),
                    uv.offset(xi),
                    vv.offset(xi * tiles.total),
                );
            }
        });
        // Aᵀ·M·A of each tile into [cog, batch, h_out, w_out], output channels in parallel.
        let mut yt = vec![0.0f32; cog * g.batch * oh_n * ow_n];
        yt.par_chunks_mut(g.batch * oh_n * ow_n)
            .zip(m.par_chunks(16 * tiles.total))
            .enumerate()
            .for_each(|(o, (yo, mo))| {
                let bias = bias.map_or(0.0, |b| b[group * cog + o]);
                let mut out = vec![0.0f32; 4 * tiles.cols];
                for i in 0..g.batch {
                    let image = &mut yo[i * oh_n * ow_n..][..oh_n * ow_n];
                    for a in 0..tiles.rows {
                        let t0 = i * tiles.per_image() + a * tiles.cols;
                        untransform_tile_row(&mo[t0..], tiles.total, tiles.cols, &mut out);
                        for (k, row) in out.chunks_exact(2 * tiles.cols).enumerate() {
                            let r = 2 * a + k;
                            if r < oh_n {
                                for (d, s) in image[r * ow_n..][..ow_n].iter_mut().zip(row) {
                                    *d = s + bias;
                                }
                            }
                        }
                    }
                }
            });
        // [cog, batch, …] → the group's channels of [batch, c_out, …].
        let plane = oh_n * ow_n;
        y.par_chunks_mut(g.output_len())
            .enumerate()
            .for_each(|(i, yi)| {
                for o in 0..cog {
                    yi[(group * cog + o) * plane..][..plane]
                        .copy_from_slice(&yt[(o * g.batch + i) * plane..][..plane]);
                }
            });
    }
    y
}

/// The error a convolution [`takes`] accepts sends to its input through `feedback`
/// (`[c_out, c_in/groups, 3, 3]`): the forward on `output_grad` with `feedback` transposed and
/// flipped, padding `2 − p`. Returns `[batch, c_in, h, w]`.
pub fn input_gradient(feedback: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(
        takes(g),
        "winograd::input_gradient: not a convolution the Winograd kernels take"
    );
    let (cig, cog) = (g.c_in_group(), g.c_out_group());
    let mut flipped = vec![0.0f32; feedback.len()];
    for group in 0..g.groups {
        for o in 0..cog {
            for c in 0..cig {
                let src = &feedback[((group * cog + o) * cig + c) * 9..][..9];
                let dst = &mut flipped[((group * cig + c) * cog + o) * 9..][..9];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    let pad = |d: usize| {
        let end = g.output[d] + 2 - g.input[d] - g.pad_begin[d];
        (2 - g.pad_begin[d], 2 - end)
    };
    let t = ConvGeometry::new(
        [g.batch, g.c_out, g.output[0], g.output[1]],
        [g.c_in, cog, 3, 3],
        [1, 1],
        [pad(0), pad(1)],
        [1, 1],
        g.groups,
    )
    .expect("the transposed convolution of a valid stride-1 convolution is valid");
    forward(output_grad, &flipped, None, &t)
}

/// `dW = Σ_{batch, positions} x ⋆ output_grad` of a convolution [`takes`] accepts: `x`
/// `[batch, c_in, h, w]`, `output_grad` `[batch, c_out, h_out, w_out]`; returns
/// `[c_out, c_in/groups, 3, 3]`.
pub fn weight_gradient(x: &[f32], output_grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(
        takes(g),
        "winograd::weight_gradient: not a convolution the Winograd kernels take"
    );
    let (cig, cog) = (g.c_in_group(), g.c_out_group());
    let tiles = Tiles::of(g);
    let [oh_n, ow_n] = g.output;
    let mut dw = vec![0.0f32; g.c_out * cig * 9];
    for group in 0..g.groups {
        let mut v = transformed_inputs(x, g, &tiles, group);
        // Z = A·gy·Aᵀ of every output tile (zeros past the output's edge): [cog, 16, tiles].
        let mut z = vec![0.0f32; cog * 16 * tiles.total];
        z.par_chunks_mut(16 * tiles.total)
            .enumerate()
            .for_each(|(o, zo)| {
                let mut rows = vec![0.0f32; 4 * tiles.cols];
                for i in 0..g.batch {
                    let image = &output_grad[(i * g.c_out + group * cog + o) * oh_n * ow_n..]
                        [..oh_n * ow_n];
                    for a in 0..tiles.rows {
                        for (k, row) in rows.chunks_exact_mut(2 * tiles.cols).enumerate() {
                            let r = 2 * a + k;
                            row.fill(0.0);
                            if r < oh_n {
                                row[..ow_n].copy_from_slice(&image[r * ow_n..][..ow_n]);
                            }
                        }
                        let t0 = i * tiles.per_image() + a * tiles.cols;
                        gradient_tile_row(&rows, tiles.cols, tiles.total, &mut zo[t0..]);
                    }
                }
            });
        // dU: [16, cog, cig], product ξ writing its own block.
        let mut du = vec![0.0f32; 16 * cog * cig];
        let duv = View {
            ptr: du.as_mut_ptr(),
            row: cig,
            col: 1,
        };
        let (zv, vv) = (
            View {
                ptr: z.as_mut_ptr(),
                row: 16 * tiles.total,
                col: 1,
            },
            // Vᵀ: a [tiles, cig] view of V's [cig, 16·tiles] rows.
            View {
                ptr: v.as_mut_ptr(),
                row: 1,
                col: 16 * tiles.total,
            },
        );
        (0..16).into_par_iter().for_each(|xi| {
            // SAFETY: Z_ξ is `[cog, tiles]` at column `ξ·tiles` of `z`'s rows, Vᵀ_ξ `[tiles,
            // cig]` at column `ξ·tiles` of `v`'s rows, both only read; dU_ξ is block ξ of
            // `du` (`[cog, cig]` at `ξ·cog·cig`): the products write disjoint blocks.
            unsafe {
                product(
                    (cog, cig, tiles.total),
                    duv.offset(xi * cog * cig),
                    zv.offset(xi * tiles.total),
                    vv.offset(xi * tiles.total),
                );
            }
        });
        // dW = Gᵀ·dU·G for each filter, filters in runs of 64 so that the 16 planes of dU
        // are read in short sequential runs.
        let dst = &mut dw[group * cog * cig * 9..][..cog * cig * 9];
        let n = cog * cig;
        for f0 in (0..n).step_by(64) {
            let len = 64.min(n - f0);
            let mut at = [[0.0f32; 16]; 64];
            for (xi, plane) in du.chunks_exact(n).enumerate() {
                for (k, v) in plane[f0..f0 + len].iter().enumerate() {
                    at[k][xi] = *v;
                }
            }
            for (k, at) in at.iter().take(len).enumerate() {
                // Gᵀ·dU: 3 rows of 4, then ·G.
                let gd: [[f32; 4]; 3] = [
                    std::array::from_fn(|l| at[l] + 0.5 * (at[4 + l] + at[8 + l])),
                    std::array::from_fn(|l| 0.5 * (at[4 + l] - at[8 + l])),
                    std::array::from_fn(|l| 0.5 * (at[4 + l] + at[8 + l]) + at[12 + l]),
                ];
                let d = &mut dst[(f0 + k) * 9..][..9];
                for (r, [a, b, e, f]) in gd.into_iter().enumerate() {
                    d[r * 3] = a + 0.5 * (b + e);
                    d[r * 3 + 1] = 0.5 * (b - e);
                    d[r * 3 + 2] = 0.5 * (b + e) + f;
                }
            }
        }
    }
    dw
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
        groups: usize,
    ) -> ConvGeometry {
        ConvGeometry::new(x, w, [1, 1], padding, [1, 1], groups).unwrap()
    }

    /// The zoo's 3×3 layers shrunk, odd sizes (half tiles at the edges), no padding, padding 2,
    /// uneven padding, groups, one image and several images a task.
    fn geometries() -> Vec<ConvGeometry> {
        vec![
            geometry([3, 16, 12, 12], [16, 16, 3, 3], [(1, 1); 2], 1),
            geometry([9, 8, 4, 4], [24, 8, 3, 3], [(1, 1); 2], 1),
            geometry([2, 3, 9, 7], [5, 3, 3, 3], [(1, 1); 2], 1),
            geometry([2, 4, 7, 8], [6, 4, 3, 3], [(0, 0); 2], 1),
            geometry([2, 4, 5, 6], [6, 4, 3, 3], [(2, 2); 2], 1),
            geometry([3, 6, 7, 6], [8, 3, 3, 3], [(0, 2), (1, 0)], 2),
            geometry([1, 17, 5, 13], [33, 17, 3, 3], [(1, 1); 2], 1),
            geometry([40, 4, 2, 2], [8, 4, 3, 3], [(1, 1); 2], 1),
        ]
    }

    /// Each Winograd kernel against the unfolded kernels (tested against the sum written out and
    /// Burn's ops), on random inputs: relative error at most 1e-5 of the largest output.
    #[test]
    fn winograd_kernels_match_the_unfolded_ones() {
        for (case, g) in geometries().iter().enumerate() {
            assert!(takes(g), "case {case}: {g:?} should take the Winograd path");
            let x = values(g.batch * g.image_len(), 50 + case as u64);
            let w = values(g.c_out * g.patch_len(), 60 + case as u64);
            let b = values(g.c_out, 70 + case as u64);
            let out = values(g.batch * g.output_len(), 80 + case as u64);
            let pairs = [
                (
                    "forward",
                    forward(&x, &w, Some(&b), g),
                    conv2d::unfolded_forward(&x, &w, Some(&b), g),
                ),
                (
                    "input gradient",
                    input_gradient(&w, &out, g),
                    conv2d::unfolded_input_gradient(&w, &out, g),
                ),
                (
                    "weight gradient",
                    weight_gradient(&x, &out, g),
                    conv2d::unfolded_weight_gradient(&x, &out, g),
                ),
            ];
            for (what, got, want) in pairs {
                let err = max_rel_error(&got, &want);
                assert!(err < 1e-5, "case {case} {what}: relative error {err:e}");
            }
        }
    }

    /// What the Winograd path leaves to the others: other kernel sizes, strides, dilations and
    /// padding past 2.
    #[test]
    fn other_convolutions_are_not_taken() {
        let strided =
            ConvGeometry::new([2, 4, 8, 8], [4, 4, 3, 3], [2, 2], [(1, 1); 2], [1, 1], 1).unwrap();
        let dilated =
            ConvGeometry::new([2, 4, 8, 8], [4, 4, 3, 3], [1, 1], [(2, 2); 2], [2, 2], 1).unwrap();
        let five = geometry([2, 4, 8, 8], [4, 4, 5, 5], [(2, 2); 2], 1);
        let wide_pad = geometry([2, 4, 8, 8], [4, 4, 3, 3], [(3, 3); 2], 1);
        for g in [strided, dilated, five, wide_pad] {
            assert!(!takes(&g), "{g:?}");
        }
    }

    /// Same inputs, same bits: on repeated runs and on pools of 1, 2 and 3 threads.
    #[test]
    fn winograd_results_are_bit_identical_across_thread_counts() {
        let g = geometry([37, 8, 6, 6], [16, 8, 3, 3], [(1, 1); 2], 1);
        let x = values(g.batch * g.image_len(), 7);
        let w = values(g.c_out * g.patch_len(), 8);
        let out = values(g.batch * g.output_len(), 9);
        assert_same_bits_on_pools("winograd", || {
            (
                forward(&x, &w, None, &g),
                input_gradient(&w, &out, &g),
                weight_gradient(&x, &out, &g),
            )
        });
    }
}
