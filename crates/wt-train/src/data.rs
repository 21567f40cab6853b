//! The data of a run: a [`BatchSource`] per data set turns item indices into an
//! [`ImageBatch`], deterministically for a given (seed, epoch, index); [`DataSplit`] picks the
//! items of a split; [`RunData::open`] reads what a [`DataConfig`] names; [`locate_data`] finds
//! a data set no folder was named for, by its entry in wt-data's [`catalog`](wt_data::catalog).

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Device;
use wt_data::{
    AtEpoch, CifarBatcher, CifarDataset, CifarItem, CifarTransform, ClassIndex, ImageBatch,
    ImageFolderDataset, ImageItem, ImageNetBatcher, ImageNetTransform, MnistBatcher, MnistDataset,
    SkipLog, SkipUndecodable, Split,
};

use crate::config::{DataConfig, DatasetKind};
use crate::error::TrainError;

/// Something that makes batches of images from item indices.
pub trait BatchSource: Send + Sync {
    /// Number of items.
    fn len(&self) -> usize;

    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch of items `indices` for `epoch` (augmentation depends on seed, epoch and
    /// index only): images `[n, c, h, w]`, targets `[n]`.
    fn batch(
        &self,
        epoch: u64,
        indices: &[usize],
        device: &Device,
    ) -> Result<ImageBatch, DatasetError>;
}

/// MNIST / Fashion-MNIST, normalised with MNIST's mean and std, no augmentation.
pub struct MnistSource(pub Arc<MnistDataset>);

impl BatchSource for MnistSource {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn batch(
        &self,
        _epoch: u64,
        indices: &[usize],
        device: &Device,
    ) -> Result<ImageBatch, DatasetError> {
        let items = indices
            .iter()
            .map(|&i| self.0.get(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Batcher::batch(&MnistBatcher, items, device))
    }
}

/// Where `dataset` lies when no folder was named: the first of its
/// [`usual_names`](DatasetKind::usual_names) under `$WT_DATA`, then under the cache folder
/// ([`KnownDataset::find`](wt_data::KnownDataset::find)); else, with `download` (and wt-train's `download` feature),
/// fetched into the cache folder with its checksums verified ([`KnownDataset::remote`](wt_data::KnownDataset::remote)).
pub fn locate_data(dataset: DatasetKind, download: bool) -> Result<PathBuf, TrainError> {
    if let Some(found) = dataset.known().find() {
        return Ok(found);
    }
    if download {
        return fetch(dataset);
    }
    let roots = wt_data::locate::search_roots();
    Err(TrainError::Config(format!(
        "no {dataset} data: give --data DIR, or set {} to a folder holding one of {} \
         (searched {}), or pass --download",
        wt_data::locate::DATA_VAR,
        dataset.usual_names().join(", "),
        wt_data::locate::list(&roots)
    )))
}

#[cfg(feature = "download")]
fn fetch(dataset: DatasetKind) -> Result<PathBuf, TrainError> {
    let remote = dataset.known().remote().ok_or_else(|| {
        TrainError::Config("--download: image folders cannot be downloaded; give --data DIR".into())
    })?;
    wt_data::download::Downloader::new(wt_data::locate::cache_dir())
        .fetch(remote)
        .map_err(TrainError::Data)
}

#[cfg(not(feature = "download"))]
fn fetch(_: DatasetKind) -> Result<PathBuf, TrainError> {
    Err(TrainError::Config(
        "--download: this build has no download support (build with the `download` feature)".into(),
    ))
}

/// Items `indices` of `dataset`, each with its index (the seeded transforms read it).
fn indexed_items<I>(
    dataset: &impl Dataset<I>,
    indices: &[usize],
) -> Result<Vec<(usize, I)>, DatasetError> {
    indices
        .iter()
        .map(|&i| dataset.get(i).map(|item| (i, item)))
        .collect()
}

/// A data set batched by a wt-data batcher seeded per (seed, epoch, item index)
/// ([`AtEpoch`]): [`CifarBatcher`] (crop + flip when training) or [`ImageNetBatcher`]
/// (decode + RandomResizedCrop + flip, or resize + centre crop), through Burn's `Batcher`
/// trait, the one batching API of wt-data, used here and by Burn's `DataLoader` alike.
pub struct SeededSource<D, T, I> {
    /// The items.
    pub dataset: Arc<D>,
    /// Train (augmenting) or eval transform, with the augmentation seed.
    pub batcher: T,
    item: PhantomData<fn() -> I>,
}

impl<D, T, I> SeededSource<D, T, I> {
    /// `dataset`'s items batched by `batcher`.
    pub fn new(dataset: Arc<D>, batcher: T) -> Self {
        Self {
            dataset,
            batcher,
            item: PhantomData,
        }
    }
}

/// CIFAR-10/100 through wt-data's [`CifarBatcher`].
pub type CifarSource = SeededSource<CifarDataset, CifarBatcher, CifarItem>;

/// An ImageFolder tree through wt-data's [`ImageNetBatcher`].
pub type ImageFolderSource = SeededSource<ImageFolderDataset, ImageNetBatcher, ImageItem>;

/// An ImageFolder tree whose undecodable images are skipped (left out of the batch) and
/// counted.
pub type SkippingImageFolderSource =
    SeededSource<SkipUndecodable, ImageNetBatcher, Option<ImageItem>>;

/// One split of an image folder, read strictly or skipping undecodable images.
enum Folder {
    Strict(Arc<ImageFolderDataset>),
    Skipping(Arc<SkipUndecodable>),
}

impl<D, T, I> BatchSource for SeededSource<D, T, I>
where
    D: Dataset<I>,
    T: AtEpoch + Batcher<(usize, I), ImageBatch> + Send + Sync,
{
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn batch(
        &self,
        epoch: u64,
        indices: &[usize],
        device: &Device,
    ) -> Result<ImageBatch, DatasetError> {
        let items = indexed_items(&*self.dataset, indices)?;
        Ok(self.batcher.at_epoch(epoch).batch(items, device))
    }
}

/// A subset of a source's items (a split), in a fixed order.
#[derive(Clone)]
pub struct DataSplit {
    /// Where the items come from.
    pub source: Arc<dyn BatchSource>,
    /// Which items, as indices into `source`.
    pub items: Arc<Vec<usize>>,
}

impl DataSplit {
    /// Every item of `source`.
    pub fn all(source: Arc<dyn BatchSource>) -> Self {
        let items = Arc::new((0..source.len()).collect());
        Self { source, items }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Batch of the split's items at `positions`.
    pub fn batch(
        &self,
        epoch: u64,
        positions: &[usize],
        device: &Device,
    ) -> Result<ImageBatch, DatasetError> {
        let idx: Vec<usize> = positions.iter().map(|&p| self.items[p]).collect();
        self.source.batch(epoch, &idx, device)
    }
}

/// A deterministic permutation of `0..n` (xorshift64 Fisher–Yates) for `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    if state == 0 {
        state = 1;
    }
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.swap(i, (state % (i as u64 + 1)) as usize);
    }
    v
}

/// The sources of one data set: training files augmented and not, test files.
struct Sources {
    train: Arc<dyn BatchSource>,
    eval: Arc<dyn BatchSource>,
    test: Arc<dyn BatchSource>,
    classes: usize,
    channels: usize,
    side: usize,
}

/// The splits of a run and what the model needs to know about the images.
pub struct RunData {
    /// Training split (augmented).
    pub train: DataSplit,
    /// Validation split held out of the training files (not augmented), if asked for.
    pub validation: Option<DataSplit>,
    /// Test split (not augmented).
    pub test: DataSplit,
    /// Number of classes.
    pub num_classes: usize,
    /// Image channels.
    pub channels: usize,
    /// Image side.
    pub side: usize,
    /// Images skipped as undecodable so far (all splits), when
    /// [`DataConfig::skip_undecodable`] is on.
    pub skipped: Option<SkipLog>,
}

impl RunData {
    /// Reads the data set `config` names; `seed` chooses the validation and subset items and
    /// seeds the augmentation.
    pub fn open(config: &DataConfig, seed: u64) -> Result<Self, TrainError> {
        let mut skipped = None;
        let Sources {
            train: train_src,
            eval: eval_src,
            test,
            classes,
            channels,
            side,
        } = match config.dataset {
            DatasetKind::Mnist | DatasetKind::FashionMnist => {
                let train = Arc::new(MnistSource(Arc::new(
                    MnistDataset::new(&config.dir, Split::Train).map_err(TrainError::Data)?,
                )));
                let test = MnistSource(Arc::new(
                    MnistDataset::new(&config.dir, Split::Test).map_err(TrainError::Data)?,
                ));
                Sources {
                    train: train.clone(),
                    eval: train,
                    test: Arc::new(test),
                    classes: 10,
                    channels: 1,
                    side: 28,
                }
            }
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                let open = |split| {
                    if config.dataset == DatasetKind::Cifar10 {
                        CifarDataset::cifar10(&config.dir, split)
                    } else {
                        CifarDataset::cifar100(&config.dir, split)
                    }
                };
                let train = Arc::new(open(Split::Train).map_err(TrainError::Data)?);
                let test = Arc::new(open(Split::Test).map_err(TrainError::Data)?);
                let classes = if config.dataset == DatasetKind::Cifar10 {
                    10
                } else {
                    100
                };
                let source = |dataset: &Arc<CifarDataset>, augment: bool| -> Arc<dyn BatchSource> {
                    let transform = if augment {
                        CifarTransform::train()
                    } else {
                        CifarTransform::eval()
                    };
                    Arc::new(CifarSource::new(
                        dataset.clone(),
                        CifarBatcher::new(transform, seed),
                    ))
                };
                Sources {
                    train: source(&train, config.augment),
                    eval: source(&train, false),
                    test: source(&test, false),
                    classes,
                    channels: 3,
                    side: 32,
                }
            }
            DatasetKind::ImageFolder => {
                let index = match &config.class_index {
                    Some(p) => Some(ClassIndex::from_tsv(p).map_err(TrainError::Data)?),
                    None => None,
                };
                let train = ImageFolderDataset::new(&config.dir, Split::Train, index.as_ref())
                    .map_err(TrainError::Data)?;
                let test = match (&config.val_labels, &index) {
                    (None, _) => ImageFolderDataset::new(&config.dir, Split::Test, index.as_ref()),
                    (Some(labels), Some(index)) => {
                        ImageFolderDataset::flat_with_labels(&config.dir.join("val"), labels, index)
                    }
                    (Some(_), None) => {
                        return Err(TrainError::Config(
                            "data.val_labels needs data.class_index (the labels are ILSVRC \
                             class numbers)"
                                .into(),
                        ));
                    }
                }
                .map_err(TrainError::Data)?;
                let classes = train.classes().len();
                let side = config.image_size.unwrap_or(224);
                // With skipping, each split's items are wrapped once, all counting into one log.
                let skip_log = config.skip_undecodable.then(SkipLog::default);
                let folder = |dataset: ImageFolderDataset| match &skip_log {
                    None => Folder::Strict(Arc::new(dataset)),
                    Some(log) => {
                        Folder::Skipping(Arc::new(dataset.skip_undecodable_into(log.clone())))
                    }
                };
                let (train, test) = (folder(train), folder(test));
                let source = |folder: &Folder, augment: bool| -> Arc<dyn BatchSource> {
                    let transform = if augment {
                        ImageNetTransform::train_at(side)
                    } else {
                        ImageNetTransform::eval_at(side)
                    };
                    let batcher = ImageNetBatcher::new(transform, seed);
                    match folder {
                        Folder::Strict(dataset) => {
                            Arc::new(ImageFolderSource::new(dataset.clone(), batcher))
                        }
                        Folder::Skipping(dataset) => {
                            Arc::new(SkippingImageFolderSource::new(dataset.clone(), batcher))
                        }
                    }
                };
                skipped = skip_log;
                Sources {
                    train: source(&train, config.augment),
                    eval: source(&train, false),
                    test: source(&test, false),
                    classes,
                    channels: 3,
                    side,
                }
            }
        };
        let n = train_src.len();
        if config.validation >= n {
            return Err(TrainError::Config(format!(
                "data.validation = {} leaves no training images out of {n}",
                config.validation
            )));
        }
        // Validation: a seeded random choice; training: the rest, optionally subsampled.
        let order = permutation(n, seed ^ 0x5A17);
        let (held, rest) = order.split_at(config.validation);
        let mut train_items: Vec<usize> = rest.to_vec();
        if let Some(k) = config.train_subset {
            train_items.truncate(k.max(1));
        }
        train_items.sort_unstable();
        let validation = (!held.is_empty()).then(|| {
            let mut v = held.to_vec();
            v.sort_unstable();
            DataSplit {
                source: eval_src,
                items: Arc::new(v),
            }
        });
        let mut test = DataSplit::all(test);
        if let Some(k) = config.test_subset {
            test.items = Arc::new(test.items.iter().copied().take(k.max(1)).collect());
        }
        Ok(Self {
            train: DataSplit {
                source: train_src,
                items: Arc::new(train_items),
            },
            validation,
            test,
            num_classes: classes,
            channels,
            side,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_seeded_permutation() {
        let p = permutation(1000, 3);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 3));
        assert_ne!(p, permutation(1000, 4));
        assert_ne!(p, sorted);
    }
}
