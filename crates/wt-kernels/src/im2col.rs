//! Unfolding an image into the columns of a matrix product, and folding columns back.
//!
//! For one image and one channel group, the unfolded input is a `[c_in_g·kh·kw, h_out·w_out]`
//! matrix: row `(c, i, j)` holds, for every output position `(oh, ow)`, the input element
//! `x[c, oh·sh − ph + i·dh, ow·sw − pw + j·dw]`, or 0 where that falls in the padding. Several
//! images sit side by side in one matrix: each call writes its image's `h_out·w_out` columns
//! at `col_offset` of rows `row_len` long.

use crate::geometry::ConvGeometry;

/// The output columns `ow` whose input column `ow·stride + offset` lies inside `0..width`.
fn valid_columns(offset: isize, stride: usize, width: usize, out: usize) -> (usize, usize) {
    let stride = stride as isize;
    // First ow with ow·s + offset ≥ 0.
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) + stride - 1) / stride
    };
    // Last ow with ow·s + offset ≤ width − 1, plus one.
    let last = width as isize - 1 - offset;
    let hi = if last < 0 { 0 } else { last / stride + 1 };
    let lo = (lo as usize).min(out);
    let hi = (hi as usize).clamp(lo, out);
    (lo, hi)
}

/// One output row `oh` of one unfolded row `(c, i, j)`: where it sits in the unfolded matrix
/// and which input elements it reads.
struct Segment {
    /// Row of the unfolded matrix, `(c·kh + i)·kw + j`.
    row: usize,
    /// Offset of this output row within the image's columns, `oh·w_out`.
    out: usize,
    /// Where the row reads the input: the flat index of `x[c, ih, lo·sw + j·dw − pw]`, and the
    /// output columns `lo..hi` that fall inside the image (read every `sw`-th element from
    /// there). `None` when the whole output row falls in the padding.
    input: Option<(usize, usize, usize)>,
}

/// Visits every [`Segment`] of one group's unfolding, rows then output rows: the index
/// arithmetic [`im2col`] and its adjoint [`col2im_add`] share.
fn for_each_segment(g: &ConvGeometry, mut visit: impl FnMut(Segment)) {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh_n, ow_n] = g.output;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [ph, pw] = g.pad_begin;
    let mut row = 0;
    for c in 0..g.c_in_group() {
        for i in 0..kh {
            for j in 0..kw {
                let col_off = (j * dw) as isize - pw as isize;
                let (lo, hi) = valid_columns(col_off, sw, w, ow_n);
                for oh in 0..oh_n {
                    let ih = (oh * sh + i * dh) as isize - ph as isize;
                    let inside = ih >= 0 && ih < h as isize && lo < hi;
                    let input = inside.then(|| {
                        let start = ((lo * sw) as isize + col_off) as usize;
                        ((c * h + ih as usize) * w + start, lo, hi)
                    });
                    visit(Segment {
                        row,
                        out: oh * ow_n,
                        input,
                    });
                }
                row += 1;
            }
        }
    }
}

/// Unfolds `image` (`[c_in_g, h, w]`, one group's channels of one image) into `cols`.
pub fn im2col(
    image: &[f32],
    g: &ConvGeometry,
    cols: &mut [f32],
    row_len: usize,
    col_offset: usize,
) {
    let (ow_n, sw) = (g.output[1], g.stride[1]);
    for_each_segment(g, |seg| {
        let out = &mut cols[seg.row * row_len + col_offset + seg.out..][..ow_n];
        let Some((start, lo, hi)) = seg.input else {
            out.fill(0.0);
            return;
        };
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        if sw == 1 {
            out[lo..hi].copy_from_slice(&image[start..start + (hi - lo)]);
        } else {
            for (k, o) in out[lo..hi].iter_mut().enumerate() {
                *o = image[start + k * sw];
            }
        }
    });
}

/// Folds `cols` (the layout [`im2col`] writes) back onto `image`, adding every column entry
/// to the input element it was read from: the adjoint of [`im2col`]. The additions run in a
/// fixed order (rows, then positions), so the result does not depend on threads.
pub fn col2im_add(
    cols: &[f32],
    g: &ConvGeometry,
    image: &mut [f32],
    row_len: usize,
    col_offset: usize,
) {
    let sw = g.stride[1];
    for_each_segment(g, |seg| {
        let Some((start, lo, hi)) = seg.input else {
            return;
        };
        let from = &cols[seg.row * row_len + col_offset + seg.out..][lo..hi];
        if sw == 1 {
            for (d, s) in image[start..start + (hi - lo)].iter_mut().zip(from) {
                *d += s;
            }
        } else {
            for (k, s) in from.iter().enumerate() {
                image[start + k * sw] += s;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_values as values;

    /// im2col against its definition, element by element, over strides, paddings and dilations.
    #[test]
    fn unfolding_matches_its_definition() {
        for (stride, pad, dil, size) in [
            (1, (1, 1), 1, 5),
            (2, (1, 1), 1, 6),
            (2, (0, 0), 1, 7),
            (1, (2, 2), 2, 6),
            (3, (2, 0), 1, 8),
            (2, (0, 3), 2, 9),
        ] {
            let (pb, pe) = pad;
            let padding = [(pb, pe), (pe, pb)];
            let g = ConvGeometry::new(
                [1, 2, size, size + 1],
                [3, 2, 3, 2],
                [stride, 1],
                padding,
                [dil, 1],
                1,
            )
            .unwrap();
            let image = values(g.image_len(), 7);
            let p = g.positions();
            let row_len = 2 * p + 3;
            let mut cols = vec![f32::NAN; g.patch_len() * row_len];
            im2col(&image, &g, &mut cols, row_len, p + 1);
            for c in 0..2 {
                for i in 0..3 {
                    for j in 0..2 {
                        let row = (c * 3 + i) * 2 + j;
                        for oh in 0..g.output[0] {
                            for ow in 0..g.output[1] {
                                let ih = (oh * stride + i * dil) as isize - pb as isize;
                                let iw = (ow + j) as isize - pe as isize;
                                let inside = ih >= 0
                                    && iw >= 0
                                    && (ih as usize) < size
                                    && (iw as usize) < size + 1;
                                let want = if inside {
                                    image[(c * size + ih as usize) * (size + 1) + iw as usize]
                                } else {
                                    0.0
                                };
                                let got = cols[row * row_len + p + 1 + oh * g.output[1] + ow];
                                assert_eq!(
                                    got, want,
                                    "stride {stride} pad {pad:?} row {row} at ({oh}, {ow})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// col2im is im2col's adjoint: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩.
    #[test]
    fn folding_is_the_adjoint_of_unfolding() {
        for (stride, pad, dil) in [(1, 1, 1), (2, 1, 1), (2, 0, 2), (3, 2, 1)] {
            let padding = [(pad, pad); 2];
            let g = ConvGeometry::new(
                [1, 3, 9, 7],
                [2, 3, 3, 3],
                [stride; 2],
                padding,
                [dil; 2],
                1,
            )
            .unwrap();
            let x = values(g.image_len(), 3);
            let c = values(g.patch_len() * g.positions(), 11);
            let mut cols = vec![0.0; c.len()];
            im2col(&x, &g, &mut cols, g.positions(), 0);
            let mut folded = vec![0.0; x.len()];
            col2im_add(&c, &g, &mut folded, g.positions(), 0);
            let lhs: f64 = cols
                .iter()
                .zip(&c)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .iter()
                .zip(&folded)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                "stride {stride}: {lhs} vs {rhs}"
            );
        }
    }
}
