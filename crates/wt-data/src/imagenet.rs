//! ImageNet-style image folders (`<root>/train/<wnid>/*.JPEG`, `<root>/val/<wnid>/*.JPEG`) with
//! the ILSVRC-2012 class index, and the standard train / eval transforms.
//!
//! Class indices come from a class index file (`imagenet1k_classes.tsv`: `index wnid name
//! lemmas`, tab-separated, as in `../shared/data/imagenet-classes/`) when one is given, else
//! from the sorted folder names. JPEG and PNG files are read; grayscale and CMYK images
//! become RGB.
//!
//! By default an image that does not decode is an error naming the file. Wrapping the data set
//! with [`ImageFolderDataset::skip_undecodable`] skips such images instead (the batch is one
//! image smaller) and counts them in a [`SkipLog`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::data::dataset::{Dataset, DatasetError};

use crate::augment::ItemRng;
use crate::error::{DataError, Result, check_index};
use crate::split::Split;

/// ImageNet's per-channel mean (RGB, in `[0, 1]`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Class ids (WordNet ids for ImageNet) to indices and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassIndex {
    wnids: Vec<String>,
    names: Vec<String>,
    by_wnid: HashMap<String, usize>,
}

impl ClassIndex {
    /// Reads a tab-separated index: a header line, then `index wnid name [lemmas]` rows whose
    /// indices are 0, 1, 2, ... in order.
    pub fn from_tsv(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let (mut wnids, mut names) = (Vec::new(), Vec::new());
        for (line_no, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let at = || format!("line {}", line_no + 1);
            if cols.len() < 3 {
                return Err(DataError::at(
                    path,
                    at(),
                    format!("{} columns, expected index, wnid, name", cols.len()),
                ));
            }
            let index: usize = cols[0].trim().parse().map_err(|_| {
                DataError::at(path, at(), format!("index `{}` is not a number", cols[0]))
            })?;
            if index != wnids.len() {
                return Err(DataError::at(
                    path,
                    at(),
                    format!(
                        "index {index}, expected {} (rows in index order)",
                        wnids.len()
                    ),
                ));
            }
            wnids.push(cols[1].trim().to_string());
            names.push(cols[2].trim().to_string());
        }
        if wnids.is_empty() {
            return Err(DataError::file(
                path,
                "no classes (expected a header and rows)",
            ));
        }
        Self::new(wnids, names).map_err(|m| DataError::file(path, m))
    }

    /// Classes `0..n` with the given ids and names.
    fn new(wnids: Vec<String>, names: Vec<String>) -> std::result::Result<Self, String> {
        let mut by_wnid = HashMap::new();
        for (i, w) in wnids.iter().enumerate() {
            if by_wnid.insert(w.clone(), i).is_some() {
                return Err(format!("class id {w} appears twice"));
            }
        }
        Ok(Self {
            wnids,
            names,
            by_wnid,
        })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.wnids.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.wnids.is_empty()
    }

    /// Index of a class id.
    pub fn index_of(&self, wnid: &str) -> Option<usize> {
        self.by_wnid.get(wnid).copied()
    }

    /// Name of class `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Id of class `index`.
    pub fn wnid(&self, index: usize) -> &str {
        &self.wnids[index]
    }
}

/// A decoded RGB image, HWC bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `[height * width * 3]` bytes, row-major, RGB.
    pub pixels: Vec<u8>,
}

/// One image with its class.
#[derive(Debug, Clone)]
pub struct ImageItem {
    /// The decoded image.
    pub image: RgbImage,
    /// Class index.
    pub label: usize,
}

/// Decodes a JPEG or PNG file into RGB (grayscale, CMYK and alpha images are converted).
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb_bytes(path, &bytes)
}

/// Decodes the bytes of a JPEG or PNG file read from `path` (named in errors) into RGB.
///
/// Grayscale becomes three equal channels; CMYK and YCCK JPEGs (4 components, Adobe APP14
/// marker, stored inverted as Photoshop writes them) become `R = (255 - C)(255 - K) / 255`
/// and likewise for G (magenta) and B (yellow); alpha is dropped.
pub fn decode_rgb_bytes(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| DataError::file(path, format!("cannot decode as JPEG or PNG: {e}")))?;
    let rgb = img.to_rgb8();
    Ok(RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

/// An image-folder split: `(file, class)` pairs, decoded on `get`.
#[derive(Debug, Clone)]
pub struct ImageFolderDataset {
    items: Vec<(PathBuf, usize)>,
    classes: ClassIndex,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpeg" | "jpg" | "png"))
}

impl ImageFolderDataset {
    /// Reads `<root>/train` (for [`Split::Train`]) or `<root>/val` ([`Split::Test`]).
    /// With `index`, class folders must be ids in it; without, classes are the sorted folder
    /// names. An empty class folder is an error.
    pub fn new(root: impl AsRef<Path>, split: Split, index: Option<&ClassIndex>) -> Result<Self> {
        let dir = root.as_ref().join(match split {
            Split::Train => "train",
            Split::Test => "val",
        });
        Self::from_dir(&dir, index)
    }

    /// Reads one folder of class folders.
    pub fn from_dir(dir: &Path, index: Option<&ClassIndex>) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            DataError::file(
                dir,
                format!("missing split folder ({e}); expected <wnid>/ folders"),
            )
        })?;
        let mut folders: Vec<(String, PathBuf)> = Vec::new();
        for e in entries {
            let e = e.map_err(|err| DataError::io(dir, err))?;
            if e.path().is_dir() {
                folders.push((e.file_name().to_string_lossy().into_owned(), e.path()));
            }
        }
        folders.sort();
        if folders.is_empty() {
            return Err(DataError::file(dir, "no class folders"));
        }
        let classes = match index {
            Some(i) => i.clone(),
            None => {
                let ids: Vec<String> = folders.iter().map(|(n, _)| n.clone()).collect();
                ClassIndex::new(ids.clone(), ids).map_err(|m| DataError::file(dir, m))?
            }
        };
        let mut items = Vec::new();
        for (name, folder) in &folders {
            let label = classes.index_of(name).ok_or_else(|| {
                DataError::file(
                    folder,
                    format!("class folder `{name}` is not in the class index"),
                )
            })?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
                .map_err(|e| DataError::io(folder, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if files.is_empty() {
                return Err(DataError::file(
                    folder,
                    "empty class folder: no .JPEG/.jpg/.png files",
                ));
            }
            files.sort();
            items.extend(files.into_iter().map(|f| (f, label)));
        }
        Ok(Self { items, classes })
    }

    /// The flat ILSVRC-2012 validation folder (`ILSVRC2012_val_00000001.JPEG`, ...) with the
    /// JSON map from file name to class index (`ilsvrc2012_val_image_to_label.json`). Every
    /// image in `dir` must be in the map; the map may list files the folder lacks.
    pub fn flat_with_labels(dir: &Path, labels_json: &Path, classes: &ClassIndex) -> Result<Self> {
        let text =
            std::fs::read_to_string(labels_json).map_err(|e| DataError::io(labels_json, e))?;
        let map: HashMap<String, usize> = serde_json::from_str(&text).map_err(|e| {
            DataError::at(
                labels_json,
                format!("line {} column {}", e.line(), e.column()),
                format!("expected a JSON object of file name to class index: {e}"),
            )
        })?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| DataError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::file(dir, "no .JPEG/.jpg/.png files"));
        }
        let mut items = Vec::with_capacity(files.len());
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let label = *map.get(name).ok_or_else(|| {
                DataError::file(
                    &f,
                    format!("not in the label file {}", labels_json.display()),
                )
            })?;
            if label >= classes.len() {
                return Err(DataError::file(
                    labels_json,
                    format!("{name}: class {label} out of range 0..{}", classes.len()),
                ));
            }
            items.push((f, label));
        }
        Ok(Self {
            items,
            classes: classes.clone(),
        })
    }

    /// The classes.
    pub fn classes(&self) -> &ClassIndex {
        &self.classes
    }

    /// File and class of item `index`.
    pub fn entry(&self, index: usize) -> (&Path, usize) {
        let (p, l) = &self.items[index];
        (p, *l)
    }
}

impl Dataset<ImageItem> for ImageFolderDataset {
    fn get(&self, index: usize) -> std::result::Result<ImageItem, DatasetError> {
        check_index(index, self.items.len())?;
        let (path, label) = &self.items[index];
        let image = decode_rgb(path).map_err(DatasetError::new)?;
        Ok(ImageItem {
            image,
            label: *label,
        })
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

impl ImageFolderDataset {
    /// The same images, but one that does not decode is skipped (its item is `None`) and
    /// counted in the returned data set's [`SkipLog`] instead of being an error. A file that
    /// cannot be read at all (permissions, removed while running) is still an error.
    ///
    /// [`ImageNetBatcher`](crate::ImageNetBatcher) drops the `None` items, so a batch holding a
    /// skipped image is that much smaller (a batch of only skipped images has 0 images).
    pub fn skip_undecodable(self) -> SkipUndecodable {
        self.skip_undecodable_into(SkipLog::default())
    }

    /// [`skip_undecodable`](Self::skip_undecodable), counting into `log` (so that several
    /// data sets, a training and a test folder say, share one count).
    pub fn skip_undecodable_into(self, log: SkipLog) -> SkipUndecodable {
        SkipUndecodable { inner: self, log }
    }
}

/// Images skipped because they did not decode; clones share the count, so the handle taken
/// before building a data loader sees what its worker threads skipped.
#[derive(Debug, Clone, Default)]
pub struct SkipLog(Arc<Mutex<SkipState>>);

#[derive(Debug, Default)]
struct SkipState {
    count: usize,
    files: BTreeMap<PathBuf, String>,
}

impl SkipLog {
    fn state(&self) -> std::sync::MutexGuard<'_, SkipState> {
        // A worker that panicked elsewhere while holding the lock leaves a usable count.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, path: &Path, err: &DataError) {
        let mut state = self.state();
        state.count += 1;
        state
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| err.message.clone());
    }

    /// Images skipped so far. A file skipped in each of several passes counts once per pass,
    /// so that loaded images plus skipped images is the number of items asked for.
    pub fn count(&self) -> usize {
        self.state().count
    }

    /// The distinct files skipped so far, sorted, each with its decoding error.
    pub fn files(&self) -> Vec<(PathBuf, String)> {
        self.state()
            .files
            .iter()
            .map(|(p, m)| (p.clone(), m.clone()))
            .collect()
    }
}

/// An [`ImageFolderDataset`] whose undecodable images are skipped: items are `Some(image)`,
/// or `None` for a file that does not decode (recorded in [`SkipUndecodable::log`]).
#[derive(Debug, Clone)]
pub struct SkipUndecodable {
    inner: ImageFolderDataset,
    log: SkipLog,
}

impl SkipUndecodable {
    /// The skipped images (a handle sharing the count with this data set and its clones).
    pub fn log(&self) -> &SkipLog {
        &self.log
    }

    /// The wrapped data set.
    pub fn inner(&self) -> &ImageFolderDataset {
        &self.inner
    }
}

impl Dataset<Option<ImageItem>> for SkipUndecodable {
    fn get(&self, index: usize) -> std::result::Result<Option<ImageItem>, DatasetError> {
        check_index(index, self.inner.items.len())?;
        let (path, label) = &self.inner.items[index];
        let bytes = std::fs::read(path).map_err(|e| DatasetError::new(DataError::io(path, e)))?;
        match decode_rgb_bytes(path, &bytes) {
            Ok(image) => Ok(Some(ImageItem {
                image,
                label: *label,
            })),
            Err(err) => {
                self.log.record(path, &err);
                Ok(None)
            }
        }
    }

    fn len(&self) -> usize {
        self.inner.items.len()
    }
}

/// The standard ImageNet transforms, to normalised CHW floats.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageNetTransform {
    /// RandomResizedCrop(`size`, scale, ratio) then a horizontal flip with probability ½.
    Train {
        /// Output side.
        size: usize,
        /// Range of the crop's area as a fraction of the image's.
        scale: (f64, f64),
        /// Range of the crop's aspect ratio (width / height).
        ratio: (f64, f64),
    },
    /// Resize the shorter side to `resize`, then a centre crop of `size`.
    Eval {
        /// Shorter side after resizing.
        resize: usize,
        /// Output side.
        size: usize,
    },
}

impl ImageNetTransform {
    /// Training: RandomResizedCrop(224, scale 0.08–1, ratio 3/4–4/3), flip.
    pub fn train() -> Self {
        Self::train_at(224)
    }

    /// Evaluation: resize 256, centre crop 224.
    pub fn eval() -> Self {
        Self::eval_at(224)
    }

    /// Training at another side: RandomResizedCrop(`size`, scale 0.08–1, ratio 3/4–4/3), flip.
    pub fn train_at(size: usize) -> Self {
        Self::Train {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// Evaluation at another side, in ImageNet's proportion: resize the shorter side to
    /// `round(size·256/224)`, centre crop `size` (64 → resize 73, crop 64).
    pub fn eval_at(size: usize) -> Self {
        Self::Eval {
            resize: (size as f64 * 256.0 / 224.0).round() as usize,
            size,
        }
    }

    /// Output side.
    pub fn size(&self) -> usize {
        match self {
            Self::Train { size, .. } | Self::Eval { size, .. } => *size,
        }
    }

    /// Applies the transform; returns `[3 * size * size]` normalised with ImageNet's mean/std.
    ///
    /// The resizing is `image::imageops::resize` with the Triangle (bilinear, antialiased when
    /// shrinking) filter, computed by [`resize_triangle`] for RGB bytes only where the output
    /// needs it: the same bytes, several times faster.
    pub fn apply(&self, img: &RgbImage, rng: &mut ItemRng) -> Vec<f32> {
        let (w, h) = (img.width, img.height);
        assert_eq!(
            img.pixels.len(),
            w * h * 3,
            "RgbImage holds width*height*3 bytes"
        );
        match *self {
            Self::Train { size, scale, ratio } => {
                let (x, y, cw, ch) = random_resized_crop(w as u32, h as u32, scale, ratio, rng);
                let src = (x as usize, y as usize, cw as usize, ch as usize);
                let out = resize_triangle(img, src, (size, size), (0, 0, size, size));
                normalised_chw(&out, rng.below(2) == 1)
            }
            Self::Eval { resize, size } => {
                let (rw, rh) = if w <= h {
                    (
                        resize,
                        (h as f64 * resize as f64 / w as f64).round() as usize,
                    )
                } else {
                    (
                        (w as f64 * resize as f64 / h as f64).round() as usize,
                        resize,
                    )
                };
                // Resize, then the centre crop: only the crop's pixels are computed.
                let s = size.min(rw).min(rh);
                let window = ((rw - s) / 2, (rh - s) / 2, s, s);
                let mut out = resize_triangle(img, (0, 0, w, h), (rw, rh), window);
                if s != size {
                    // `resize` below `size`: the crop is scaled up to `size`.
                    out = resize_triangle(&out, (0, 0, s, s), (size, size), (0, 0, size, size));
                }
                normalised_chw(&out, false)
            }
        }
    }
}

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

/// HWC bytes to CHW floats normalised with ImageNet's mean and std, mirrored when `flip`.
fn normalised_chw(img: &RgbImage, flip: bool) -> Vec<f32> {
    // Each channel's 256 possible values, each computed by the same expression as per pixel.
    let lut: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    });
    let (w, h) = (img.width, img.height);
    let plane = w * h;
    let mut chw = vec![0f32; 3 * plane];
    let (r, rest) = chw.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (y, row) in img.pixels.chunks_exact(3 * w.max(1)).enumerate().take(h) {
        let at = y * w;
        for (x, p) in row.chunks_exact(3).enumerate() {
            let o = at + if flip { w - 1 - x } else { x };
            r[o] = lut[0][p[0] as usize];
            g[o] = lut[1][p[1] as usize];
            b[o] = lut[2][p[2] as usize];
        }
    }
    chw
}

/// torchvision's RandomResizedCrop parameters: up to 10 tries of a random area and log-uniform
/// aspect ratio, else the largest centred crop within the ratio range. Returns `(x, y, w, h)`.
fn random_resized_crop(
    w: u32,
    h: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut ItemRng,
) -> (u32, u32, u32, u32) {
    let uniform = |rng: &mut ItemRng, lo: f64, hi: f64| {
        lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    };
    let area = (w * h) as f64;
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, ratio.0.ln(), ratio.1.ln()).exp();
        let cw = (target * aspect).sqrt().round() as u32;
        let ch = (target / aspect).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.below((w - cw + 1) as u64) as u32;
            let y = rng.below((h - ch + 1) as u64) as u32;
            return (x, y, cw, ch);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, ((w as f64 / ratio.0).round() as u32).min(h))
    } else if in_ratio > ratio.1 {
        (((h as f64 * ratio.1).round() as u32).min(w), h)
    } else {
        (w, h)
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{TempDir, shared_data};

    /// The transform as first written, with `image::imageops::resize`: the reference that
    /// `apply` must match byte for byte.
    fn apply_with_image_crate(
        t: &ImageNetTransform,
        img: &RgbImage,
        rng: &mut ItemRng,
    ) -> Vec<f32> {
        let (w, h) = (img.width as u32, img.height as u32);
        let buf = image::RgbImage::from_raw(w, h, img.pixels.clone())
            .expect("RgbImage holds width*height*3 bytes");
        let filter = image::imageops::FilterType::Triangle;
        let (out, flip) = match *t {
            ImageNetTransform::Train { size, scale, ratio } => {
                let (x, y, cw, ch) = random_resized_crop(w, h, scale, ratio, rng);
                let crop = image::imageops::crop_imm(&buf, x, y, cw, ch).to_image();
                let out = image::imageops::resize(&crop, size as u32, size as u32, filter);
                (out, rng.below(2) == 1)
            }
            ImageNetTransform::Eval { resize, size } => {
                let (rw, rh) = if w <= h {
                    (
                        resize as u32,
                        (h as f64 * resize as f64 / w as f64).round() as u32,
                    )
                } else {
                    (
                        (w as f64 * resize as f64 / h as f64).round() as u32,
                        resize as u32,
                    )
                };
                let resized = image::imageops::resize(&buf, rw, rh, filter);
                let s = (size as u32).min(rw).min(rh);
                let (x, y) = ((rw - s) / 2, (rh - s) / 2);
                let crop = image::imageops::crop_imm(&resized, x, y, s, s).to_image();
                let out = if s == size as u32 {
                    crop
                } else {
                    image::imageops::resize(&crop, size as u32, size as u32, filter)
                };
                (out, false)
            }
        };
        let s = out.width() as usize;
        let mut chw = vec![0f32; 3 * s * s];
        for (x, y, p) in out.enumerate_pixels() {
            let tx = if flip { s - 1 - x as usize } else { x as usize };
            for c in 0..3 {
                chw[c * s * s + y as usize * s + tx] =
                    (p.0[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
        chw
    }

    fn class_index() -> ClassIndex {
        ClassIndex::from_tsv(shared_data("imagenet-classes").join("imagenet1k_classes.tsv"))
            .unwrap()
    }

    #[test]
    fn imagenette_mini_maps_to_ilsvrc_indices() {
        let index = class_index();
        assert_eq!(index.len(), 1000);
        let root = shared_data("imagenette-mini");
        let train = ImageFolderDataset::new(&root, Split::Train, Some(&index)).unwrap();
        let val = ImageFolderDataset::new(&root, Split::Test, Some(&index)).unwrap();
        assert_eq!((train.len(), val.len()), (400, 100));
        let labels: std::collections::BTreeSet<usize> =
            (0..train.len()).map(|i| train.entry(i).1).collect();
        assert_eq!(labels.len(), 10);
        assert!(labels.contains(&0), "tench is class 0");
        assert!(labels.contains(&701), "parachute is class 701");
        assert_eq!(index.name(701), "parachute");
        let item = train.get(0).unwrap();
        assert_eq!(item.label, 0);
        assert_eq!(
            item.image.pixels.len(),
            item.image.width * item.image.height * 3
        );

        // Without an index: sorted folder names.
        let plain = ImageFolderDataset::new(&root, Split::Test, None).unwrap();
        assert_eq!(plain.classes().len(), 10);
        assert_eq!(plain.classes().wnid(0), "n01440764");
    }

    #[test]
    fn flat_validation_folder_takes_labels_from_the_json_map() {
        let index = class_index();
        let json = shared_data("imagenet-classes").join("ilsvrc2012_val_image_to_label.json");
        let tmp = TempDir::new("flat-val");
        // The official validation photos inside imagenette-mini, copied into one flat folder.
        let mut expected = Vec::new();
        let train = shared_data("imagenette-mini").join("train");
        for class in std::fs::read_dir(&train).unwrap() {
            let class = class.unwrap().path();
            let wnid = class.file_name().unwrap().to_str().unwrap().to_string();
            for f in std::fs::read_dir(&class).unwrap() {
                let f = f.unwrap().path();
                let name = f.file_name().unwrap().to_str().unwrap().to_string();
                if name.starts_with("ILSVRC2012_val_") {
                    std::fs::copy(&f, tmp.path().join(&name)).unwrap();
                    expected.push((name, index.index_of(&wnid).unwrap()));
                }
            }
        }
        expected.sort();
        assert!(expected.len() >= 10, "found {} val photos", expected.len());
        let ds = ImageFolderDataset::flat_with_labels(tmp.path(), &json, &index).unwrap();
        assert_eq!(ds.len(), expected.len());
        for (i, (name, label)) in expected.iter().enumerate() {
            let (path, got) = ds.entry(i);
            assert_eq!(path.file_name().unwrap().to_str().unwrap(), name);
            assert_eq!(got, *label, "{name}");
        }
        // A file the map does not know is an error naming it.
        std::fs::write(tmp.path().join("extra.JPEG"), b"x").unwrap();
        let err = ImageFolderDataset::flat_with_labels(tmp.path(), &json, &index).unwrap_err();
        assert!(err.to_string().contains("extra.JPEG"), "{err}");
    }

    #[test]
    fn transforms_are_seeded_and_sized() {
        let root = shared_data("imagenette-mini");
        let ds = ImageFolderDataset::new(&root, Split::Train, None).unwrap();
        let img = ds.get(3).unwrap().image;
        let t = ImageNetTransform::train();
        let a = t.apply(&img, &mut ItemRng::new(1, 0, 3));
        assert_eq!(a.len(), 3 * 224 * 224);
        assert_eq!(a, t.apply(&img, &mut ItemRng::new(1, 0, 3)));
        assert_ne!(a, t.apply(&img, &mut ItemRng::new(1, 1, 3)));
    }

    /// `--image-size 64`: RandomResizedCrop 64 and resize 73 / centre crop 64, in ImageNet's
    /// 224/256 proportion; the evaluation crop is the centre of the resized image.
    #[test]
    fn transforms_at_another_side_keep_imagenets_proportions() {
        assert_eq!(
            ImageNetTransform::eval_at(64),
            ImageNetTransform::Eval {
                resize: 73,
                size: 64
            }
        );
        assert_eq!(ImageNetTransform::eval_at(224), ImageNetTransform::eval());
        assert_eq!(ImageNetTransform::train_at(224), ImageNetTransform::train());
        let root = shared_data("imagenette-mini");
        let ds = ImageFolderDataset::new(&root, Split::Train, None).unwrap();
        let img = ds.get(3).unwrap().image;
        let train = ImageNetTransform::train_at(64).apply(&img, &mut ItemRng::new(1, 0, 3));
        assert_eq!(train.len(), 3 * 64 * 64);
        // A left half dark, right half bright image: the centre crop of the 73-pixel resize
        // keeps both halves, 32 columns each.
        let (w, h) = (146, 100);
        let pixels: Vec<u8> = (0..w * h)
            .flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [255u8; 3] })
            .collect();
        let img = RgbImage {
            width: w,
            height: h,
            pixels,
        };
        let out = ImageNetTransform::eval_at(64).apply(&img, &mut ItemRng::new(0, 0, 0));
        assert_eq!(out.len(), 3 * 64 * 64);
        let row: Vec<f32> = out[10 * 64..11 * 64].to_vec();
        let dark = (0.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        let bright = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        assert!(
            (row[0] - dark).abs() < 1e-3 && (row[63] - bright).abs() < 1e-3,
            "{row:?}"
        );
        let darks = row.iter().filter(|v| (*v - dark).abs() < 0.5).count();
        assert!((31..=33).contains(&darks), "{darks} dark columns of 64");
    }

    #[test]
    fn eval_transform_of_a_flat_image_is_known() {
        let img = RgbImage {
            width: 300,
            height: 260,
            pixels: [10u8, 128, 250].repeat(300 * 260),
        };
        let out = ImageNetTransform::eval().apply(&img, &mut ItemRng::new(0, 0, 0));
        assert_eq!(out.len(), 3 * 224 * 224);
        for (c, v) in [10f32, 128.0, 250.0].iter().enumerate() {
            let expected = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            let plane = &out[c * 224 * 224..(c + 1) * 224 * 224];
            assert!(
                plane.iter().all(|x| (x - expected).abs() < 1e-5),
                "channel {c}"
            );
        }
    }

    #[test]
    fn png_grayscale_and_broken_files_in_a_folder_tree() {
        let tmp = TempDir::new("imagefolder");
        let a = tmp.path().join("train/a");
        let b = tmp.path().join("train/b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        image::GrayImage::from_pixel(5, 4, image::Luma([77]))
            .save(a.join("gray.jpg"))
            .unwrap();
        image::RgbImage::from_pixel(3, 3, image::Rgb([1, 2, 3]))
            .save(b.join("color.png"))
            .unwrap();
        let ds = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap();
        let gray = ds.get(0).unwrap();
        assert_eq!((gray.label, gray.image.width, gray.image.height), (0, 5, 4));
        assert!(
            gray.image
                .pixels
                .chunks(3)
                .all(|p| p[0] == p[1] && p[1] == p[2])
        );
        assert_eq!(ds.get(1).unwrap().image.pixels[..3], [1, 2, 3]);

        // A JPEG of garbage bytes: the error names the file.
        std::fs::write(a.join("broken.JPEG"), b"not a jpeg at all").unwrap();
        let ds = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap();
        let err = ds.get(0).unwrap_err().to_string();
        assert!(
            err.contains("broken.JPEG") && err.contains("decode"),
            "{err}"
        );

        // An empty class folder, a missing split, a folder not in the index.
        std::fs::create_dir_all(tmp.path().join("train/c")).unwrap();
        let err = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap_err();
        assert!(err.to_string().contains("empty class folder"), "{err}");
        let err = ImageFolderDataset::new(tmp.path(), Split::Test, None).unwrap_err();
        assert!(err.to_string().contains("val"), "{err}");
        std::fs::remove_dir(tmp.path().join("train/c")).unwrap();
        let err =
            ImageFolderDataset::new(tmp.path(), Split::Train, Some(&class_index())).unwrap_err();
        assert!(err.to_string().contains("not in the class index"), "{err}");
    }

    /// Canonical Huffman codes `(code, length)` by symbol for a JPEG `bits`/`values` table.
    fn huffman_codes(bits: &[u8; 16], values: &[u8]) -> HashMap<u8, (u32, u32)> {
        let (mut codes, mut code, mut k) = (HashMap::new(), 0u32, 0);
        for (len, &count) in bits.iter().enumerate() {
            for _ in 0..count {
                codes.insert(values[k], (code, len as u32 + 1));
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        codes
    }

    /// JPEG entropy-coded bits, most significant first, with 0xFF bytes stuffed.
    #[derive(Default)]
    struct BitWriter {
        acc: u64,
        nbits: u32,
        bytes: Vec<u8>,
    }

    impl BitWriter {
        fn put(&mut self, code: u32, len: u32) {
            self.acc = (self.acc << len) | code as u64;
            self.nbits += len;
            while self.nbits >= 8 {
                let byte = (self.acc >> (self.nbits - 8)) as u8;
                self.bytes.push(byte);
                if byte == 0xFF {
                    self.bytes.push(0);
                }
                self.nbits -= 8;
            }
        }

        /// Pads the last byte with ones.
        fn finish(mut self) -> Vec<u8> {
            if !self.nbits.is_multiple_of(8) {
                let pad = 8 - self.nbits % 8;
                self.put((1 << pad) - 1, pad);
            }
            self.bytes
        }
    }

    /// A baseline JPEG of 8-pixel-high, 8-pixel-wide blocks, each one flat CMYK colour
    /// (`blocks[i]` = ink C, M, Y, K of block i, left to right), written as Photoshop writes
    /// CMYK: 4 components, an Adobe APP14 marker with transform 0, samples stored inverted
    /// (255 = no ink). The `image` crate cannot encode CMYK, so the bytes are built here: a
    /// flat block has only a DC coefficient, 8 × (sample − 128) with a quantiser of 1.
    fn cmyk_jpeg(blocks: &[[u8; 4]]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        // APP14 "Adobe": version 100, flags 0, 0, transform 0 (CMYK, no colour transform).
        out.extend([0xFF, 0xEE, 0, 14]);
        out.extend(b"Adobe");
        out.extend([0, 100, 0, 0, 0, 0, 0]);
        // DQT: table 0, all ones.
        out.extend([0xFF, 0xDB, 0, 67, 0]);
        out.extend([1u8; 64]);
        // SOF0: 8 bits, height 8, width 8·n, 4 components sampled 1×1 with table 0.
        let width = 8 * blocks.len() as u16;
        out.extend([0xFF, 0xC0, 0, 20, 8, 0, 8]);
        out.extend(width.to_be_bytes());
        out.push(4);
        for id in 1..=4u8 {
            out.extend([id, 0x11, 0]);
        }
        // DHT: the standard luminance DC table (categories 0..=11) and an AC table holding
        // only end-of-block.
        let dc_bits = [0u8, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        let dc_values: Vec<u8> = (0..12).collect();
        let mut ac_bits = [0u8; 16];
        ac_bits[0] = 1;
        out.extend([0xFF, 0xC4, 0, 49, 0x00]);
        out.extend(dc_bits);
        out.extend(&dc_values);
        out.push(0x10);
        out.extend(ac_bits);
        out.push(0x00);
        // SOS: the 4 components with tables 0/0, spectral range 0..=63.
        out.extend([0xFF, 0xDA, 0, 14, 4]);
        for id in 1..=4u8 {
            out.extend([id, 0x00]);
        }
        out.extend([0, 63, 0]);
        // Entropy-coded data: per block, per component, the DC difference then EOB.
        let dc = huffman_codes(&dc_bits, &dc_values);
        let (eob, eob_len) = huffman_codes(&ac_bits, &[0])[&0];
        let mut bits = BitWriter::default();
        let mut pred = [0i32; 4];
        for block in blocks {
            for c in 0..4 {
                let stored = 255 - block[c] as i32;
                let coef = 8 * (stored - 128);
                let diff = coef - pred[c];
                pred[c] = coef;
                let cat = 32 - diff.unsigned_abs().leading_zeros();
                let (code, len) = dc[&(cat as u8)];
                bits.put(code, len);
                if cat > 0 {
                    let extra = if diff >= 0 {
                        diff
                    } else {
                        diff + (1 << cat) - 1
                    };
                    bits.put(extra as u32, cat);
                }
                bits.put(eob, eob_len);
            }
        }
        let scan = bits.finish();
        out.extend(scan);
        out.extend([0xFF, 0xD9]);
        out
    }

    #[test]
    fn cmyk_jpeg_in_a_folder_tree_becomes_rgb() {
        // Ink (C, M, Y, K) of each 8×8 block and the RGB it should give:
        // R = (255 − C)(255 − K)/255, G from M, B from Y.
        let inks = [
            [255, 0, 0, 0],     // cyan
            [0, 255, 255, 0],   // magenta + yellow = red
            [0, 0, 0, 128],     // half black = grey
            [64, 128, 192, 32], // a mixture
            [0, 0, 0, 0],       // paper white
        ];
        let expected = |ink: [u8; 4]| -> [f64; 3] {
            let k = 255.0 - ink[3] as f64;
            [0, 1, 2].map(|c| (255.0 - ink[c] as f64) * k / 255.0)
        };
        assert_eq!(expected(inks[0]), [0.0, 255.0, 255.0]);
        let tmp = TempDir::new("cmyk");
        let class = tmp.path().join("train/cmyk");
        std::fs::create_dir_all(&class).unwrap();
        let bytes = cmyk_jpeg(&inks);
        assert_eq!(bytes[bytes.len() - 2..], [0xFF, 0xD9]);
        std::fs::write(class.join("photoshop.jpg"), &bytes).unwrap();
        let ds = ImageFolderDataset::new(tmp.path(), Split::Train, None).unwrap();
        let img = ds.get(0).unwrap().image;
        assert_eq!((img.width, img.height), (8 * inks.len(), 8));
        assert_eq!(img.pixels.len(), 8 * inks.len() * 8 * 3);
        for y in 0..8 {
            for x in 0..img.width {
                let want = expected(inks[x / 8]);
                let got = &img.pixels[(y * img.width + x) * 3..][..3];
                for c in 0..3 {
                    assert!(
                        (got[c] as f64 - want[c]).abs() <= 3.0,
                        "pixel ({x}, {y}) of block {}: got {got:?}, expected about {want:?}",
                        x / 8
                    );
                }
            }
        }
    }

    #[test]
    fn undecodable_images_error_by_default_and_are_counted_when_skipped() {
        use crate::{ImageNetBatcher, Indexed};
        use burn::data::dataloader::DataLoaderBuilder;
        use burn::tensor::Device;

        let tmp = TempDir::new("skip-bad");
        for (class, n) in [("a", 5), ("b", 4)] {
            let dir = tmp.path().join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                image::RgbImage::from_pixel(12, 10, image::Rgb([i * 40, 9, 200]))
                    .save(dir.join(format!("{i}.jpg")))
                    .unwrap();
            }
        }
        // A JPEG of garbage bytes, and a real JPEG cut short inside its header.
        std::fs::write(tmp.path().join("a/2.jpg"), b"\xFF\xD8 garbage, not a JPEG").unwrap();
        let good = std::fs::read(tmp.path().join("b/0.jpg")).unwrap();
        std::fs::write(tmp.path().join("b/3.jpg"), &good[..20]).unwrap();

        let ds = ImageFolderDataset::from_dir(tmp.path(), None).unwrap();
        let transform = ImageNetTransform::Eval {
            resize: 16,
            size: 8,
        };
        fn loader<I: Send + Sync + Clone + std::fmt::Debug + 'static>(
            transform: &ImageNetTransform,
            workers: usize,
        ) -> DataLoaderBuilder<(usize, I), crate::ImageBatch>
        where
            ImageNetBatcher:
                burn::data::dataloader::batcher::Batcher<(usize, I), crate::ImageBatch>,
        {
            DataLoaderBuilder::new(ImageNetBatcher::new(transform.clone(), 0))
                .batch_size(3)
                .num_workers(workers)
                .set_device(Device::flex())
        }

        // Default: the batch holding the first bad image is an error naming it.
        let strict = loader(&transform, 2).build(Indexed(ds.clone()));
        let mut errors: Vec<String> = strict
            .iter()
            .filter_map(|b| b.err().map(|e| e.to_string()))
            .collect();
        errors.sort(); // worker threads deliver batches in any order
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("2.jpg") && errors[0].contains("cannot decode"),
            "{errors:?}"
        );
        assert!(errors[1].contains("3.jpg"), "{errors:?}");

        // Skipping: the 7 good images load, both bad ones are counted, twice over two passes.
        let skipping = ds.clone().skip_undecodable();
        let log = skipping.log().clone();
        let lenient = loader(&transform, 2).build(Indexed(skipping));
        let mut labels = Vec::new();
        for pass in 1..=2 {
            for batch in lenient.iter() {
                let batch = batch.expect("skipped images are no error");
                assert_eq!(batch.images.dims()[1..], [3, 8, 8]);
                labels.extend(batch.targets.into_data().iter::<i64>());
            }
            assert_eq!(log.count(), 2 * pass);
        }
        labels.sort();
        assert_eq!(labels, [vec![0; 8], vec![1; 6]].concat());
        let files = log.files();
        assert_eq!(files.len(), 2);
        assert!(files[0].0.ends_with("a/2.jpg"), "{files:?}");
        assert!(files[1].0.ends_with("b/3.jpg"), "{files:?}");
        assert!(!files[0].1.is_empty());

        // One garbage JPEG alone in a tree: the count is 1 and the rest load.
        std::fs::write(tmp.path().join("b/3.jpg"), &good).unwrap();
        let skipping = ImageFolderDataset::from_dir(tmp.path(), None)
            .unwrap()
            .skip_undecodable();
        let log = skipping.log().clone();
        let mut n = 0;
        for batch in loader(&transform, 1).build(Indexed(skipping)).iter() {
            n += batch.unwrap().targets.dims()[0];
        }
        assert_eq!((n, log.count()), (8, 1));

        // A batch of only skipped images is an empty batch, not a failure.
        let batch = <ImageNetBatcher as burn::data::dataloader::batcher::Batcher<
            (usize, Option<ImageItem>),
            crate::ImageBatch,
        >>::batch(
            &ImageNetBatcher::new(transform.clone(), 0),
            vec![(0, None)],
            &Device::flex(),
        );
        assert_eq!(batch.images.dims(), [0, 3, 8, 8]);
        assert_eq!(batch.targets.dims(), [0]);
    }

    #[test]
    fn fast_resize_gives_the_image_crate_bytes() {
        let noise = |w: usize, h: usize, seed: u64| {
            let mut rng = ItemRng::new(seed, 0, 0);
            RgbImage {
                width: w,
                height: h,
                pixels: (0..w * h * 3).map(|_| rng.next_u64() as u8).collect(),
            }
        };
        let mut images: Vec<RgbImage> = [(1, 1), (3, 500), (37, 23), (500, 375), (224, 224)]
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| noise(w, h, i as u64))
            .collect();
        let ds =
            ImageFolderDataset::new(shared_data("imagenette-mini"), Split::Train, None).unwrap();
        images.extend((0..ds.len()).step_by(40).map(|i| ds.get(i).unwrap().image));
        let transforms = [
            ImageNetTransform::train(),
            ImageNetTransform::eval(),
            ImageNetTransform::Train {
                size: 32,
                scale: (0.5, 1.0),
                ratio: (0.5, 2.0),
            },
            ImageNetTransform::Eval {
                resize: 16,
                size: 24,
            },
        ];
        for (i, img) in images.iter().enumerate() {
            for t in &transforms {
                for seed in 0..4 {
                    let mut a = ItemRng::new(seed, 1, i as u64);
                    let mut b = a.clone();
                    assert!(
                        t.apply(img, &mut a) == apply_with_image_crate(t, img, &mut b),
                        "image {i} ({}x{}), {t:?}, seed {seed}",
                        img.width,
                        img.height
                    );
                }
            }
        }
    }
}
