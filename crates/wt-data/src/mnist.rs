//! MNIST and Fashion-MNIST from the four official IDX files (gzipped or raw), e.g.
//! `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-…`.

use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};

use crate::error::{DataError, Result, check_index};
use crate::idx::{parse_idx, read_maybe_gzip};
use crate::split::Split;

/// Side of an MNIST image.
pub const MNIST_SIDE: usize = 28;
/// Pixels per MNIST image.
pub const MNIST_PIXELS: usize = MNIST_SIDE * MNIST_SIDE;

/// One image: 784 grey levels (row-major, 0 = background) and its class 0..=9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistItem {
    /// `[28 * 28]` pixels, row-major.
    pub image: Vec<u8>,
    /// Class index 0..=9.
    pub label: u8,
}

/// An MNIST-format split held in memory (47 MB for the 60,000 training images).
#[derive(Debug, Clone)]
pub struct MnistDataset {
    images: Vec<u8>,
    labels: Vec<u8>,
}

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(DataError::file(
        dir,
        format!("neither {name} nor {name}.gz is here (expected the official IDX files)"),
    ))
}

impl MnistDataset {
    /// Reads a split from `dir`, which holds the official files (MNIST or Fashion-MNIST).
    pub fn new(dir: impl AsRef<Path>, split: Split) -> Result<Self> {
        let dir = dir.as_ref();
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        Self::from_files(&images_path, &labels_path)
    }

    /// Reads an images file (rank 3, `[n, 28, 28]`) and a labels file (rank 1, `[n]`).
    pub fn from_files(images_path: &Path, labels_path: &Path) -> Result<Self> {
        let images = read_maybe_gzip(images_path)?;
        let labels = read_maybe_gzip(labels_path)?;
        Self::from_idx_bytes(images_path, &images, labels_path, &labels)
    }

    /// Parses the bytes of an images file and a labels file (IDX, already un-gzipped; see
    /// [`gunzip_if_gzip`](crate::idx::gunzip_if_gzip)) read from the given paths, which errors
    /// name. The same checks as [`from_files`](Self::from_files).
    pub fn from_idx_bytes(
        images_path: &Path,
        images_bytes: &[u8],
        labels_path: &Path,
        labels_bytes: &[u8],
    ) -> Result<Self> {
        let images = parse_idx(images_path, images_bytes)?;
        if images.dims.len() != 3 || images.dims[1..] != [MNIST_SIDE, MNIST_SIDE] {
            return Err(DataError::at(
                images_path,
                "offset 4",
                format!("sizes {:?}, expected [n, 28, 28]", images.dims),
            ));
        }
        let labels = parse_idx(labels_path, labels_bytes)?;
        if labels.dims.len() != 1 {
            return Err(DataError::at(
                labels_path,
                "offset 4",
                format!("sizes {:?}, expected [n]", labels.dims),
            ));
        }
        if labels.dims[0] != images.dims[0] {
            return Err(DataError::file(
                labels_path,
                format!(
                    "{} labels for {} images in {}",
                    labels.dims[0],
                    images.dims[0],
                    images_path.display()
                ),
            ));
        }
        if let Some(i) = labels.data.iter().position(|&l| l > 9) {
            return Err(DataError::at(
                labels_path,
                format!("record {i} (offset {})", 8 + i),
                format!("label {} out of range 0..=9", labels.data[i]),
            ));
        }
        Ok(Self {
            images: images.data,
            labels: labels.data,
        })
    }

    /// All labels, in file order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of item `index`, `[784]`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.images[index * MNIST_PIXELS..(index + 1) * MNIST_PIXELS]
    }

    /// Number of items of each class 0..=9.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

impl Dataset<MnistItem> for MnistDataset {
    fn get(&self, index: usize) -> std::result::Result<MnistItem, DatasetError> {
        check_index(index, self.labels.len())?;
        Ok(MnistItem {
            image: self.image(index).to_vec(),
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::shared_data;

    #[test]
    fn official_mnist_has_the_published_sizes_counts_and_first_labels() {
        let dir = shared_data("mnist");
        let train = MnistDataset::new(&dir, Split::Train).unwrap();
        let test = MnistDataset::new(&dir, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        assert_eq!(&train.labels()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(
            train.class_counts(),
            [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        );
        assert_eq!(
            test.class_counts(),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        let item = train.get(0).unwrap();
        assert_eq!(item.image.len(), 784);
        assert!(item.image.iter().any(|&p| p > 0));
        assert!(train.get(60_000).is_err());
    }

    #[test]
    fn fashion_mnist_has_6000_and_1000_per_class() {
        let dir = shared_data("fashion-mnist");
        let train = MnistDataset::new(&dir, Split::Train).unwrap();
        let test = MnistDataset::new(&dir, Split::Test).unwrap();
        assert_eq!(train.class_counts(), [6000; 10]);
        assert_eq!(test.class_counts(), [1000; 10]);
    }

    #[test]
    fn raw_files_and_broken_files() {
        let tmp = crate::testdata::TempDir::new("mnist");
        let src = shared_data("mnist");
        // Raw (un-gzipped) copies read the same.
        for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let bytes = crate::idx::read_maybe_gzip(&src.join(format!("{name}.gz"))).unwrap();
            std::fs::write(tmp.path().join(name), bytes).unwrap();
        }
        let raw = MnistDataset::new(tmp.path(), Split::Test).unwrap();
        assert_eq!(
            raw.class_counts(),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );

        // A label out of range names the record.
        let labels = tmp.path().join("t10k-labels-idx1-ubyte");
        let mut bytes = std::fs::read(&labels).unwrap();
        bytes[8 + 17] = 12;
        std::fs::write(&labels, &bytes).unwrap();
        let err = MnistDataset::new(tmp.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record 17") && err.contains("label 12"),
            "{err}"
        );

        // Truncated images.
        bytes[8 + 17] = 1;
        std::fs::write(&labels, &bytes).unwrap();
        let images = tmp.path().join("t10k-images-idx3-ubyte");
        let img = std::fs::read(&images).unwrap();
        std::fs::write(&images, &img[..img.len() - 100]).unwrap();
        let err = MnistDataset::new(tmp.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte") && err.contains("truncated"),
            "{err}"
        );

        // A truncated gzip stream.
        std::fs::write(&images, &img).unwrap();
        let gz = std::fs::read(src.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        std::fs::write(&labels, &gz[..gz.len() / 2]).unwrap();
        let err = MnistDataset::new(tmp.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gzip"), "{err}");

        // Missing split.
        let err = MnistDataset::new(tmp.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    }
}
