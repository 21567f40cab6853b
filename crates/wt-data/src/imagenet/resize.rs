//! Resizing with the Triangle filter, byte for byte as `image::imageops::resize` does it.

use super::RgbImage;

/// Weights of `image`'s Triangle filter for resizing `src` samples to `dst`, for the outputs
/// `from..to`: per output, the first source index and the normalised weights, computed exactly
/// as `image::imageops::resize` computes them (same expressions, same `f32` rounding).
fn triangle_weights(src: usize, dst: usize, from: usize, to: usize) -> Vec<(usize, Vec<f32>)> {
    let ratio = src as f32 / dst as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let support = sratio; // the triangle's support is 1
    (from..to)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, src as i64 - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, src as i64);
            let centre = centre - 0.5;
            let mut ws: Vec<f32> = (left..right)
                .map(|i| {
                    let x = (i as f32 - centre) / sratio;
                    if x.abs() < 1.0 { 1.0 - x.abs() } else { 0.0 }
                })
                .collect();
            let sum: f32 = ws.iter().sum();
            ws.iter_mut().for_each(|w| *w /= sum);
            (left as usize, ws)
        })
        .collect()
}

/// `image::imageops::resize(crop, dst.0, dst.1, FilterType::Triangle)` of the rectangle
/// `src = (x, y, w, h)` of `img`, computed only for the output window `win = (x, y, w, h)`: the
/// same weights, the same order of `f32` sums (rows first, then columns) and the same rounding
/// to bytes, so the same bytes as `image` gives, without its per-pixel generic code, its RGBA
/// float intermediate image or copies of the input.
pub fn resize_triangle(
    img: &RgbImage,
    src: (usize, usize, usize, usize),
    dst: (usize, usize),
    win: (usize, usize, usize, usize),
) -> RgbImage {
    let (sx, sy, sw, sh) = src;
    let (wx, wy, ww, wh) = win;
    assert!(
        sx + sw <= img.width && sy + sh <= img.height && sw > 0 && sh > 0,
        "source rectangle {src:?} outside a {}x{} image",
        img.width,
        img.height
    );
    assert!(
        wx + ww <= dst.0 && wy + wh <= dst.1,
        "window {win:?} outside {dst:?}"
    );
    let cols = triangle_weights(sw, dst.0, wx, wx + ww);
    let rows = triangle_weights(sh, dst.1, wy, wy + wh);
    // Source columns the window needs, relative to the rectangle.
    let c0 = cols.iter().map(|(l, _)| *l).min().unwrap_or(0);
    let c1 = cols.iter().map(|(l, w)| l + w.len()).max().unwrap_or(0);
    let span = (c1 - c0) * 3;
    let stride = img.width * 3;
    // Rows first (into floats), as `image` does.
    let mut tmp = vec![0f32; wh * span];
    for ((top, ws), row) in rows.iter().zip(tmp.chunks_exact_mut(span.max(1))) {
        for (k, w) in ws.iter().enumerate() {
            let start = (sy + top + k) * stride + (sx + c0) * 3;
            for (t, &p) in row.iter_mut().zip(&img.pixels[start..start + span]) {
                *t += p as f32 * w;
            }
        }
    }
    // Then columns, rounded to bytes.
    let mut pixels = Vec::with_capacity(ww * wh * 3);
    for row in tmp.chunks_exact(span.max(1)).take(wh) {
        for (left, ws) in &cols {
            let mut t = [0f32; 3];
            for (k, w) in ws.iter().enumerate() {
                let p = &row[(left - c0 + k) * 3..][..3];
                t[0] += p[0] * w;
                t[1] += p[1] * w;
                t[2] += p[2] * w;
            }
            pixels.extend(t.map(|v| v.clamp(0.0, 255.0).round() as u8));
        }
    }
    RgbImage {
        width: ww,
        height: wh,
        pixels,
    }
}
