//! ImageNet-style image folders (`<root>/train/<wnid>/*.JPEG`, `<root>/val/<wnid>/*.JPEG`) with
//! the ILSVRC-2012 class index, and the standard train / eval transforms.
//!
//! Class indices come from a class index file (`imagenet1k_classes.tsv`: `index wnid name
//! lemmas`, tab-separated, as in `../shared/data/imagenet-classes/`) when one is given, else
//! from the sorted folder names. JPEG and PNG files are read; grayscale images become RGB.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

/// Decodes a JPEG or PNG file into RGB (grayscale and alpha images are converted).
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = image::load_from_memory(&bytes)
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
        Self::Train {
            size: 224,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// Evaluation: resize 256, centre crop 224.
    pub fn eval() -> Self {
        Self::Eval {
            resize: 256,
            size: 224,
        }
    }

    /// Output side.
    pub fn size(&self) -> usize {
        match self {
            Self::Train { size, .. } | Self::Eval { size, .. } => *size,
        }
    }

    /// Applies the transform; returns `[3 * size * size]` normalised with ImageNet's mean/std.
    pub fn apply(&self, img: &RgbImage, rng: &mut ItemRng) -> Vec<f32> {
        let (w, h) = (img.width as u32, img.height as u32);
        let buf = image::RgbImage::from_raw(w, h, img.pixels.clone())
            .expect("RgbImage holds width*height*3 bytes");
        let filter = image::imageops::FilterType::Triangle;
        let (out, flip) = match *self {
            Self::Train { size, scale, ratio } => {
                let (x, y, cw, ch) = random_resized_crop(w, h, scale, ratio, rng);
                let crop = image::imageops::crop_imm(&buf, x, y, cw, ch).to_image();
                let out = image::imageops::resize(&crop, size as u32, size as u32, filter);
                (out, rng.below(2) == 1)
            }
            Self::Eval { resize, size } => {
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
}
