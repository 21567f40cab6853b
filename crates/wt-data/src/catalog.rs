//! Each data set wt finds by name, described once ([`KnownDataset`]): the folder and archive
//! names it is looked for under (`$WT_DATA`, then the cache folder: [`locate`](crate::locate)),
//! in order, and, for those that can be downloaded, where from ([`Remote`]: the official
//! base URL and mirrors, the file names and their published MD5s, the folder in the cache),
//! which the `download` feature's `Downloader` fetches.

use std::path::PathBuf;

/// A data set wt knows by name: where it is looked for and where it is downloaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownDataset {
    /// MNIST: the four IDX files.
    Mnist,
    /// Fashion-MNIST: the four IDX files.
    FashionMnist,
    /// CIFAR-10, binary version.
    Cifar10,
    /// CIFAR-100, binary version.
    Cifar100,
    /// An ImageNet-style folder tree (ImageNet, Imagenette).
    ImageFolder,
}

impl KnownDataset {
    /// Every known data set.
    pub const ALL: [Self; 5] = [
        Self::Mnist,
        Self::FashionMnist,
        Self::Cifar10,
        Self::Cifar100,
        Self::ImageFolder,
    ];

    /// The folder and archive names the data set is looked for under `$WT_DATA` and the
    /// cache folder ([`locate`](crate::locate)), in order: its usual names, then where the
    /// download puts it in the cache.
    pub fn usual_names(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &["mnist"],
            Self::FashionMnist => &["fashion-mnist", "fashion_mnist"],
            Self::Cifar10 => &[
                "cifar-10-batches-bin",
                "cifar-10-binary.tar.gz",
                "cifar-10/cifar-10-binary.tar.gz",
                "cifar-10",
            ],
            Self::Cifar100 => &[
                "cifar-100-binary",
                "cifar-100-binary.tar.gz",
                "cifar-100/cifar-100-binary.tar.gz",
                "cifar-100",
            ],
            Self::ImageFolder => &["imagenet", "imagenette", "imagenette-mini"],
        }
    }

    /// Where the data set lies when no folder is named: the first of its
    /// [`usual_names`](Self::usual_names) under `$WT_DATA`, then under the cache folder
    /// ([`locate::find`](crate::locate::find)).
    pub fn find(self) -> Option<PathBuf> {
        crate::locate::find(self.usual_names())
    }

    /// Where the data set is downloaded from; `None` for image folders, which cannot be.
    pub fn remote(self) -> Option<Remote> {
        match self {
            Self::Mnist => Some(Remote::Mnist),
            Self::FashionMnist => Some(Remote::FashionMnist),
            Self::Cifar10 => Some(Remote::Cifar10),
            Self::Cifar100 => Some(Remote::Cifar100),
            Self::ImageFolder => None,
        }
    }
}

/// The expected digest of a file, as lowercase or uppercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// MD5, as the data sets' authors publish them.
    Md5(String),
    /// SHA-256.
    Sha256(String),
}

/// One file of a data set: its name (appended to a base URL, and its name in the cache) and
/// its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: String,
    /// Expected checksum.
    pub checksum: Checksum,
}

impl RemoteFile {
    fn md5(name: &str, md5: &str) -> Self {
        Self {
            name: name.to_string(),
            checksum: Checksum::Md5(md5.to_string()),
        }
    }
}

/// The data sets that can be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Remote {
    /// MNIST: the four official IDX `.gz` files.
    Mnist,
    /// Fashion-MNIST: the four IDX `.gz` files.
    FashionMnist,
    /// CIFAR-10, binary version: `cifar-10-binary.tar.gz`.
    Cifar10,
    /// CIFAR-100, binary version: `cifar-100-binary.tar.gz`.
    Cifar100,
}

impl Remote {
    /// Base URLs tried in order: the official one first, then well-known mirrors (the
    /// checksum makes any mirror as good as the original).
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Remote::Mnist => &[
                "https://yann.lecun.com/exdb/mnist/",
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
            ],
            Remote::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
            Remote::Cifar10 | Remote::Cifar100 => &["https://www.cs.toronto.edu/~kriz/"],
        }
    }

    /// The files with their published MD5s.
    pub fn files(self) -> Vec<RemoteFile> {
        match self {
            Remote::Mnist => vec![
                RemoteFile::md5(
                    "train-images-idx3-ubyte.gz",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                ),
                RemoteFile::md5(
                    "train-labels-idx1-ubyte.gz",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                ),
                RemoteFile::md5(
                    "t10k-images-idx3-ubyte.gz",
                    "9fb629c4189551a2d022fa330f9573f3",
                ),
                RemoteFile::md5(
                    "t10k-labels-idx1-ubyte.gz",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
            ],
            Remote::FashionMnist => vec![
                RemoteFile::md5(
                    "train-images-idx3-ubyte.gz",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                ),
                RemoteFile::md5(
                    "train-labels-idx1-ubyte.gz",
                    "25c81989df183df01b3e8a0aad5dffbe",
                ),
                RemoteFile::md5(
                    "t10k-images-idx3-ubyte.gz",
                    "bef4ecab320f06d8554ea6380940ec79",
                ),
                RemoteFile::md5(
                    "t10k-labels-idx1-ubyte.gz",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
            ],
            Remote::Cifar10 => vec![RemoteFile::md5(
                "cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
            )],
            Remote::Cifar100 => vec![RemoteFile::md5(
                "cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            )],
        }
    }

    /// The data set's folder in the cache.
    pub fn folder(self) -> &'static str {
        match self {
            Remote::Mnist => "mnist",
            Remote::FashionMnist => "fashion-mnist",
            Remote::Cifar10 => "cifar-10",
            Remote::Cifar100 => "cifar-100",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::CifarKind;

    #[test]
    fn official_lists_are_complete() {
        for remote in [
            Remote::Mnist,
            Remote::FashionMnist,
            Remote::Cifar10,
            Remote::Cifar100,
        ] {
            for f in remote.files() {
                let Checksum::Md5(h) = &f.checksum else {
                    panic!("{remote:?}: published checksums are MD5s")
                };
                assert_eq!(h.len(), 32, "{}", f.name);
                assert!(h.bytes().all(|b| b.is_ascii_hexdigit()), "{}", f.name);
            }
            assert!(!remote.mirrors().is_empty());
        }
        assert_eq!(Remote::Mnist.files().len(), 4);
        assert_eq!(Remote::FashionMnist.files().len(), 4);
    }

    /// What the download puts in the cache, and the CIFAR readers' extracted folders, are
    /// among the names the data set is looked for under, so a downloaded data set is found
    /// the next time.
    #[test]
    fn a_download_and_the_readers_folders_are_found_by_their_usual_names() {
        for known in KnownDataset::ALL {
            let names = known.usual_names();
            let Some(remote) = known.remote() else {
                continue;
            };
            assert!(names.contains(&remote.folder()), "{known:?}: {names:?}");
            if let [archive] = &remote.files()[..] {
                let cached = format!("{}/{}", remote.folder(), archive.name);
                assert!(names.contains(&cached.as_str()), "{known:?}: {names:?}");
            }
        }
        for (known, kind) in [
            (KnownDataset::Cifar10, CifarKind::Cifar10),
            (KnownDataset::Cifar100, CifarKind::Cifar100),
        ] {
            assert_eq!(known.usual_names()[0], kind.folder());
        }
        assert_eq!(KnownDataset::ImageFolder.remote(), None);
    }
}
