//! Decoding images to RGB and reading image folders: the ImageFolder tree, the flat
//! ILSVRC-2012 validation folder, and the skipping of undecodable images.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::data::dataset::{Dataset, DatasetError};

use super::ClassIndex;
use crate::error::{DataError, Result, check_index};
use crate::split::Split;

/// A decoded image: 8-bit RGB pixels, row by row.
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

/// The image files directly in `dir`, sorted by path.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
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
            let files = image_files(folder)?;
            if files.is_empty() {
                return Err(DataError::file(
                    folder,
                    "empty class folder: no .JPEG/.jpg/.png files",
                ));
            }
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
        let files = image_files(dir)?;
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
