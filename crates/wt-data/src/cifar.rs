//! CIFAR-10 and CIFAR-100 in the official binary layout (Krizhevsky 2009), read from the
//! downloaded archive (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`), its extracted
//! folder (`cifar-10-batches-bin/`, `cifar-100-binary/`) or the folder holding it, or from
//! single batch files.
//!
//! Records: CIFAR-10 is `<label> <3072 pixels>`; CIFAR-100 is `<coarse> <fine> <3072 pixels>`.
//! Pixels are the red, green and blue 32×32 planes, row-major (CHW).

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};

use crate::error::{DataError, Result, check_index};
use crate::split::Split;

/// Pixels of one CIFAR image: 3 planes of 32×32.
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Largest allocation made in advance for an archive member (the biggest official member,
/// CIFAR-100's `train.bin`, is 153,700,000 bytes); larger members grow as they are read.
const MAX_MEMBER_HINT: u64 = 160_000_000;

/// Which of the two CIFAR data sets a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// 10 classes; records of 1 + 3072 bytes.
    Cifar10,
    /// 100 fine classes in 20 coarse ones; records of 2 + 3072 bytes.
    Cifar100,
}

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    fn record_bytes(self) -> usize {
        self.label_bytes() + CIFAR_PIXELS
    }

    /// The batch files of a split, as named in the official archives.
    pub(crate) fn files(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (CifarKind::Cifar10, Split::Train) => vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            (CifarKind::Cifar10, Split::Test) => vec!["test_batch.bin"],
            (CifarKind::Cifar100, Split::Train) => vec!["train.bin"],
            (CifarKind::Cifar100, Split::Test) => vec!["test.bin"],
        }
    }

    pub(crate) fn folder(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar-10-batches-bin",
            CifarKind::Cifar100 => "cifar-100-binary",
        }
    }
}

/// One CIFAR image with its label (the fine label for CIFAR-100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarItem {
    /// `[3 * 32 * 32]` pixels, CHW.
    pub image: Vec<u8>,
    /// Class: 0..10 (CIFAR-10) or the fine class 0..100 (CIFAR-100).
    pub label: u8,
    /// CIFAR-100's coarse class 0..20; `None` for CIFAR-10.
    pub coarse_label: Option<u8>,
}

/// A CIFAR split held in memory (150 MB for 50,000 training images).
#[derive(Debug, Clone)]
pub struct CifarDataset {
    kind: CifarKind,
    images: Vec<u8>,
    labels: Vec<u8>,
    coarse_labels: Vec<u8>,
}

impl CifarDataset {
    /// CIFAR-10 from the `.tar.gz` archive, the `cifar-10-batches-bin/` folder, or its parent.
    pub fn cifar10(path: impl AsRef<Path>, split: Split) -> Result<Self> {
        Self::open(path.as_ref(), CifarKind::Cifar10, split)
    }

    /// CIFAR-100 from the `.tar.gz` archive, the `cifar-100-binary/` folder, or its parent.
    pub fn cifar100(path: impl AsRef<Path>, split: Split) -> Result<Self> {
        Self::open(path.as_ref(), CifarKind::Cifar100, split)
    }

    fn open(path: &Path, kind: CifarKind, split: Split) -> Result<Self> {
        if path.is_file() {
            return Self::from_archive(path, kind, split);
        }
        let dir = if path.join(kind.folder()).is_dir() {
            path.join(kind.folder())
        } else {
            path.to_path_buf()
        };
        let files: Vec<PathBuf> = kind.files(split).iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(DataError::file(
                missing,
                format!(
                    "missing: expected the official {} files ({}) in {}",
                    kind.folder(),
                    kind.files(split).join(", "),
                    dir.display()
                ),
            ));
        }
        Self::from_batch_files(&files, kind)
    }

    /// Reads batch files in order (any names, e.g. partial copies).
    pub fn from_batch_files(files: &[PathBuf], kind: CifarKind) -> Result<Self> {
        let mut out = Self::empty(kind);
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| DataError::io(f, e))?;
            out.append(f, &bytes)?;
        }
        Ok(out)
    }

    /// Parses the bytes of one batch file read from `path` (named in errors): whole records,
    /// labels in range.
    pub fn from_batch_bytes(path: &Path, bytes: &[u8], kind: CifarKind) -> Result<Self> {
        let mut out = Self::empty(kind);
        out.append(path, bytes)?;
        Ok(out)
    }

    /// Reads the split's members from the official `.tar.gz` archive.
    fn from_archive(archive: &Path, kind: CifarKind, split: Split) -> Result<Self> {
        let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
        Self::from_archive_reader(archive, std::io::BufReader::new(file), kind, split)
    }

    /// Reads the split's members from a `.tar.gz` stream laid out as the official archive
    /// (`cifar-10-batches-bin/data_batch_1.bin`, ...); `archive` names it in errors.
    pub fn from_archive_reader(
        archive: &Path,
        reader: impl Read,
        kind: CifarKind,
        split: Split,
    ) -> Result<Self> {
        let wanted = kind.files(split);
        let mut found: Vec<Option<(PathBuf, Vec<u8>)>> = vec![None; wanted.len()];
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        let broken = |e: std::io::Error| {
            DataError::file(archive, format!("not a readable .tar.gz archive: {e}"))
        };
        for entry in tar.entries().map_err(broken)? {
            let mut entry = entry.map_err(broken)?;
            let member = entry.path().map_err(broken)?.into_owned();
            let in_folder = member
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|p| p == kind.folder());
            let name = member.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(slot) = wanted.iter().position(|w| *w == name).filter(|_| in_folder) {
                // The header's size is only a hint: a corrupt one must not reserve gigabytes.
                let hint = entry.size().min(MAX_MEMBER_HINT) as usize;
                let mut bytes = Vec::with_capacity(hint);
                entry.read_to_end(&mut bytes).map_err(broken)?;
                let shown = PathBuf::from(format!("{}:{}", archive.display(), member.display()));
                found[slot] = Some((shown, bytes));
            }
        }
        let mut out = Self::empty(kind);
        for (slot, name) in found.into_iter().zip(&wanted) {
            let (shown, bytes) = slot.ok_or_else(|| {
                DataError::file(
                    archive,
                    format!("archive has no member {}/{name}", kind.folder()),
                )
            })?;
            out.append(&shown, &bytes)?;
        }
        Ok(out)
    }

    fn empty(kind: CifarKind) -> Self {
        Self {
            kind,
            images: Vec::new(),
            labels: Vec::new(),
            coarse_labels: Vec::new(),
        }
    }

    /// Appends the records of one batch file's bytes, checking size and labels.
    fn append(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let record = self.kind.record_bytes();
        if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
            let whole = bytes.len() / record;
            return Err(DataError::at(
                path,
                format!("record {whole} (offset {})", whole * record),
                format!(
                    "{} bytes is not a whole number of {record}-byte records: truncated or not a {:?} batch",
                    bytes.len(),
                    self.kind
                ),
            ));
        }
        let n = bytes.len() / record;
        self.images.reserve(n * CIFAR_PIXELS);
        for (i, r) in bytes.chunks_exact(record).enumerate() {
            let (labels, pixels) = r.split_at(self.kind.label_bytes());
            let (coarse, fine) = match self.kind {
                CifarKind::Cifar10 => (None, labels[0]),
                CifarKind::Cifar100 => (Some(labels[0]), labels[1]),
            };
            let (limit, coarse_limit) = match self.kind {
                CifarKind::Cifar10 => (10, 0),
                CifarKind::Cifar100 => (100, 20),
            };
            if fine >= limit {
                return Err(DataError::at(
                    path,
                    format!(
                        "record {i} (offset {})",
                        i * record + self.kind.label_bytes() - 1
                    ),
                    format!("label {fine} out of range 0..{limit}"),
                ));
            }
            if let Some(c) = coarse {
                if c >= coarse_limit {
                    return Err(DataError::at(
                        path,
                        format!("record {i} (offset {})", i * record),
                        format!("coarse label {c} out of range 0..{coarse_limit}"),
                    ));
                }
                self.coarse_labels.push(c);
            }
            self.labels.push(fine);
            self.images.extend_from_slice(pixels);
        }
        Ok(())
    }

    /// Which data set this is.
    pub fn kind(&self) -> CifarKind {
        self.kind
    }

    /// All (fine) labels, in file order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of item `index`, `[3 * 32 * 32]` CHW.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.images[index * CIFAR_PIXELS..(index + 1) * CIFAR_PIXELS]
    }

    /// Number of items of each (fine) class.
    pub fn class_counts(&self) -> Vec<usize> {
        let classes = match self.kind {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        };
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

impl Dataset<CifarItem> for CifarDataset {
    fn get(&self, index: usize) -> std::result::Result<CifarItem, DatasetError> {
        check_index(index, self.labels.len())?;
        Ok(CifarItem {
            image: self.image(index).to_vec(),
            label: self.labels[index],
            coarse_label: self.coarse_labels.get(index).copied(),
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{TempDir, shared_data, write_cifar10_archive};

    #[test]
    fn exact_partial_cifar10_matches_the_official_first_record() {
        let dir = shared_data("cifar-10-exact-partial");
        let train = CifarDataset::from_batch_files(
            &[dir.join("data_batch_1_first4000.bin")],
            CifarKind::Cifar10,
        )
        .unwrap();
        assert_eq!(train.len(), 4000);
        let first = train.get(0).unwrap();
        assert_eq!(first.label, 6, "the first record is a frog");
        assert_eq!(&first.image[..8], &[59, 43, 50, 68, 98, 119, 139, 145]);
        assert_eq!(CIFAR10_CLASSES[first.label as usize], "frog");
    }

    #[test]
    fn approximate_cifar10_has_5000_and_1000_per_class() {
        let dir = shared_data("cifar-10-approx");
        let train = CifarDataset::cifar10(&dir, Split::Train).unwrap();
        let test = CifarDataset::cifar10(dir.join("cifar-10-batches-bin"), Split::Test).unwrap();
        assert_eq!(train.class_counts(), vec![5000; 10]);
        assert_eq!(test.class_counts(), vec![1000; 10]);
    }

    #[test]
    fn reads_the_official_archive_layout_and_names_broken_archives() {
        let tmp = TempDir::new("cifar-archive");
        let archive = tmp.path().join("cifar-10-binary.tar.gz");
        let test_labels = write_cifar10_archive(&archive, 7);
        let train = CifarDataset::cifar10(&archive, Split::Train).unwrap();
        let test = CifarDataset::cifar10(&archive, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (35, 7));
        assert_eq!(test.labels(), &test_labels[..]);
        assert_eq!(test.image(2)[..3], [7, 8, 9]);

        // Truncated archive: an error naming the archive.
        let bytes = std::fs::read(&archive).unwrap();
        std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
        let err = CifarDataset::cifar10(&archive, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cifar-10-binary.tar.gz"), "{err}");
    }

    #[test]
    fn cifar100_folder_with_coarse_labels_and_strict_errors() {
        let tmp = TempDir::new("cifar100");
        let dir = tmp.path().join("cifar-100-binary");
        std::fs::create_dir_all(&dir).unwrap();
        let record = |coarse: u8, fine: u8| {
            let mut r = vec![coarse, fine];
            r.extend(std::iter::repeat_n(fine, CIFAR_PIXELS));
            r
        };
        let train: Vec<u8> = (0..5).flat_map(|i| record(i % 20, i * 19 % 100)).collect();
        std::fs::write(dir.join("train.bin"), &train).unwrap();
        std::fs::write(dir.join("test.bin"), record(3, 99)).unwrap();
        let ds = CifarDataset::cifar100(tmp.path(), Split::Train).unwrap();
        assert_eq!(ds.len(), 5);
        let item = ds.get(4).unwrap();
        assert_eq!((item.coarse_label, item.label), (Some(4), 76));
        assert_eq!(
            CifarDataset::cifar100(&dir, Split::Test).unwrap().labels(),
            &[99]
        );

        // Truncated: names the file and the partial record.
        std::fs::write(dir.join("train.bin"), &train[..train.len() - 10]).unwrap();
        let err = CifarDataset::cifar100(&dir, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.bin") && err.contains("record 4"),
            "{err}"
        );
        // Fine label out of range.
        let mut bad = train.clone();
        bad[2 * 3074 + 1] = 100;
        std::fs::write(dir.join("train.bin"), &bad).unwrap();
        let err = CifarDataset::cifar100(&dir, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record 2") && err.contains("label 100"),
            "{err}"
        );
        // Coarse label out of range.
        let mut bad = train.clone();
        bad[3074] = 20;
        std::fs::write(dir.join("train.bin"), &bad).unwrap();
        let err = CifarDataset::cifar100(&dir, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record 1") && err.contains("coarse label 20"),
            "{err}"
        );
        // Missing split.
        std::fs::remove_file(dir.join("test.bin")).unwrap();
        let err = CifarDataset::cifar100(&dir, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.bin") && err.contains("missing"), "{err}");
    }

    #[test]
    fn mutated_cifar_batches_and_archives_never_panic() {
        use crate::ItemRng;
        use crate::testdata::mutate;
        let p = Path::new("fuzz.bin");
        let record = |kind: CifarKind, i: u8| {
            let mut r = match kind {
                CifarKind::Cifar10 => vec![i % 10],
                CifarKind::Cifar100 => vec![i % 20, i % 100],
            };
            r.extend((0..CIFAR_PIXELS).map(|p| (p as u8).wrapping_mul(i)));
            r
        };
        let mut rng = ItemRng::new(0xC1FA, 0, 0);
        let (mut ok, mut errors) = (0, 0);
        for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
            let seed: Vec<u8> = (0..3).flat_map(|i| record(kind, i)).collect();
            for _ in 0..5_000 {
                match CifarDataset::from_batch_bytes(p, &mutate(&mut rng, &seed), kind) {
                    Ok(ds) => {
                        ok += 1;
                        let limit = if kind == CifarKind::Cifar10 { 10 } else { 100 };
                        assert!(ds.labels().iter().all(|&l| l < limit));
                        assert_eq!(ds.class_counts().iter().sum::<usize>(), ds.len());
                    }
                    Err(e) => {
                        errors += 1;
                        assert!(e.to_string().starts_with("fuzz.bin"), "{e}");
                    }
                }
            }
        }
        assert!(ok > 100 && errors > 2_000, "ok {ok}, errors {errors}");

        // Archives: mutate the tar stream (re-gzipped, so the tar reader sees the damage) or
        // the gzip bytes themselves.
        let tmp = TempDir::new("cifar-fuzz");
        let archive = tmp.path().join("cifar-10-binary.tar.gz");
        write_cifar10_archive(&archive, 1);
        let gz = std::fs::read(&archive).unwrap();
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        let name = Path::new("fuzz.tar.gz");
        for i in 0..1_500 {
            let input = if i % 2 == 0 {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut enc, &mutate(&mut rng, &tar_bytes)).unwrap();
                enc.finish().unwrap()
            } else {
                mutate(&mut rng, &gz)
            };
            let split = if i % 3 == 0 {
                Split::Test
            } else {
                Split::Train
            };
            match CifarDataset::from_archive_reader(name, &input[..], CifarKind::Cifar10, split) {
                Ok(ds) => assert_eq!(ds.len(), if split == Split::Test { 1 } else { 5 }),
                Err(e) => assert!(e.to_string().starts_with("fuzz.tar.gz"), "{e}"),
            }
        }
    }

    #[test]
    fn an_archive_member_claiming_exabytes_is_an_error_not_an_abort() {
        // Regression: the member's header size was used as an allocation size, so a corrupt
        // header (here 2^62 bytes, GNU base-256) aborted the process on allocation failure.
        let mut header = tar::Header::new_gnu();
        header
            .set_path("cifar-10-batches-bin/test_batch.bin")
            .unwrap();
        header.set_size(1 << 62);
        header.set_mode(0o644);
        header.set_cksum();
        let mut tar_bytes = header.as_bytes().to_vec();
        tar_bytes.extend([6u8; 3073]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
        let gz = gz.finish().unwrap();
        let err = CifarDataset::from_archive_reader(
            Path::new("huge.tar.gz"),
            &gz[..],
            CifarKind::Cifar10,
            Split::Test,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("huge.tar.gz"), "{err}");
    }
}
