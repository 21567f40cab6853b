//! # wt-data: the data sets of the weight-transport papers, read strictly and fast
//!
//! Readers for the files users download, exactly as distributed:
//! - [`MnistDataset`]: MNIST and Fashion-MNIST, the four IDX files, gzipped or raw;
//! - [`CifarDataset`]: CIFAR-10 and CIFAR-100 binary batches, from the `.tar.gz` archive, the
//!   extracted folder, or single batch files;
//! - [`ImageFolderDataset`]: ImageNet-style `train/<wnid>/*.JPEG` trees with the ILSVRC class
//!   index ([`ClassIndex`]) and the standard transforms ([`ImageNetTransform`]);
//! - [`CharCorpus`]: a UTF-8 text (Tiny Shakespeare) as characters, split 90 % / 10 % by
//!   position, with seeded windows ([`CharWindows`]) for a character language model.
//!
//! Every reader implements Burn's `Dataset`; [`batch`] has batchers for Burn's data loader and
//! [`augment`] the seeded CIFAR augmentation. Bad input gives a [`DataError`] naming the file,
//! the record or offset, and what was expected; nothing panics on malformed files (the parsers
//! are fuzzed: see `fuzz/`). Undecodable images can be skipped and counted
//! ([`ImageFolderDataset::skip_undecodable`]). With the `download` feature, the `download` module
//! fetches the official MNIST, Fashion-MNIST and CIFAR archives, checksums verified; [`locate`]
//! finds a data set under `$WT_DATA` or the cache folder. What wt knows of each data set by
//! name (its usual folder names, where it is downloaded from) is in [`catalog`], once.

#![warn(missing_docs)]

pub mod augment;
pub mod batch;
pub mod catalog;
pub mod cifar;
#[cfg(feature = "download")]
pub mod download;
pub mod error;
pub mod idx;
pub mod imagenet;
pub mod locate;
pub mod mnist;
mod split;
/// Test support (real data sets under `$WT_DATA`, temporary folders), for this crate's tests
/// and, with the `test-util` feature, other crates'.
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub mod testdata;
pub mod text;

pub use augment::{CifarTransform, ItemRng};
pub use batch::{AtEpoch, CifarBatcher, ImageBatch, ImageNetBatcher, Indexed, MnistBatcher};
pub use catalog::KnownDataset;
pub use cifar::{CIFAR10_CLASSES, CifarDataset, CifarItem, CifarKind};
pub use error::DataError;
pub use imagenet::{
    ClassIndex, ImageFolderDataset, ImageItem, ImageNetTransform, RgbImage, SkipLog,
    SkipUndecodable,
};
pub use mnist::{MnistDataset, MnistItem};
pub use split::Split;
pub use text::{CharCorpus, CharWindows};
