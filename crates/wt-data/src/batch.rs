//! Burn batchers: items to `[batch, channels, h, w]` float tensors and `[batch]` class tensors,
//! for Burn's `DataLoaderBuilder` (shuffling with a seed, worker threads).

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::augment::{CifarTransform, ItemRng};
use crate::cifar::{CIFAR_PIXELS, CifarItem};
use crate::imagenet::{ImageItem, ImageNetTransform};
use crate::mnist::{MNIST_PIXELS, MNIST_SIDE, MnistItem};

/// Mean and std of MNIST's training pixels in `[0, 1]`.
pub const MNIST_MEAN_STD: (f32, f32) = (0.1307, 0.3081);

/// Images and their classes.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// `[batch, channels, height, width]`, normalised.
    pub images: Tensor<4>,
    /// `[batch]` class indices.
    pub targets: Tensor<1, Int>,
}

/// Wraps a dataset so that each item comes with its index, which seeded augmentation needs.
#[derive(Debug, Clone)]
pub struct Indexed<D>(pub D);

impl<I, D: Dataset<I>> Dataset<(usize, I)> for Indexed<D> {
    fn get(&self, index: usize) -> Result<(usize, I), DatasetError> {
        self.0.get(index).map(|item| (index, item))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// MNIST items to `[batch, 1, 28, 28]`, normalised with [`MNIST_MEAN_STD`].
#[derive(Debug, Clone, Default)]
pub struct MnistBatcher;

impl Batcher<MnistItem, ImageBatch> for MnistBatcher {
    fn batch(&self, items: Vec<MnistItem>, device: &Device) -> ImageBatch {
        let n = items.len();
        let (mean, std) = MNIST_MEAN_STD;
        let mut px = Vec::with_capacity(n * MNIST_PIXELS);
        for item in &items {
            px.extend(item.image.iter().map(|&p| (p as f32 / 255.0 - mean) / std));
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(px, [n, 1, MNIST_SIDE, MNIST_SIDE]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// A batcher whose augmentation is seeded per (seed, epoch, item index): the same items give
/// the same batch in the same epoch, in any order and on any worker thread. The epoch is a
/// value of the batcher, so a loader of epoch `e` is built with `batcher.at_epoch(e)` (wt's
/// trainer does this for every batch; a Burn `DataLoader` is built once per epoch with it).
pub trait AtEpoch: Sized {
    /// The same batcher, seeding its items for `epoch`.
    fn at_epoch(&self, epoch: u64) -> Self;
}

/// CIFAR items (with their indices, see [`Indexed`]) to `[batch, 3, 32, 32]` through a
/// [`CifarTransform`], seeded per `(seed, epoch, index)`; epoch 0 until [`AtEpoch::at_epoch`].
#[derive(Debug, Clone)]
pub struct CifarBatcher {
    transform: CifarTransform,
    seed: u64,
    epoch: u64,
}

impl CifarBatcher {
    /// A batcher applying `transform` with the given seed, at epoch 0.
    pub fn new(transform: CifarTransform, seed: u64) -> Self {
        Self {
            transform,
            seed,
            epoch: 0,
        }
    }
}

impl AtEpoch for CifarBatcher {
    fn at_epoch(&self, epoch: u64) -> Self {
        Self {
            epoch,
            ..self.clone()
        }
    }
}

impl Batcher<(usize, CifarItem), ImageBatch> for CifarBatcher {
    fn batch(&self, items: Vec<(usize, CifarItem)>, device: &Device) -> ImageBatch {
        let n = items.len();
        let mut px = vec![0f32; n * CIFAR_PIXELS];
        for ((index, item), out) in items.iter().zip(px.chunks_exact_mut(CIFAR_PIXELS)) {
            let mut rng = ItemRng::new(self.seed, self.epoch, *index as u64);
            self.transform.apply(&item.image, &mut rng, out);
        }
        let labels: Vec<i64> = items.iter().map(|(_, i)| i.label as i64).collect();
        let side = self.transform.side;
        ImageBatch {
            images: Tensor::from_data(TensorData::new(px, [n, 3, side, side]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// Decoded image-folder items (with their indices, see [`Indexed`]) to `[batch, 3, size, size]`
/// through an [`ImageNetTransform`], seeded per `(seed, epoch, index)`; epoch 0 until
/// [`AtEpoch::at_epoch`].
#[derive(Debug, Clone)]
pub struct ImageNetBatcher {
    transform: ImageNetTransform,
    seed: u64,
    epoch: u64,
}

impl ImageNetBatcher {
    /// A batcher applying `transform` with the given seed, at epoch 0.
    pub fn new(transform: ImageNetTransform, seed: u64) -> Self {
        Self {
            transform,
            seed,
            epoch: 0,
        }
    }

    fn batch_of<'a>(
        &self,
        items: impl ExactSizeIterator<Item = (usize, &'a ImageItem)> + Clone,
        device: &Device,
    ) -> ImageBatch {
        let n = items.len();
        let side = self.transform.size();
        let mut px = Vec::with_capacity(n * 3 * side * side);
        for (index, item) in items.clone() {
            let mut rng = ItemRng::new(self.seed, self.epoch, index as u64);
            px.extend(self.transform.apply(&item.image, &mut rng));
        }
        let labels: Vec<i64> = items.map(|(_, i)| i.label as i64).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(px, [n, 3, side, side]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

impl AtEpoch for ImageNetBatcher {
    fn at_epoch(&self, epoch: u64) -> Self {
        Self {
            epoch,
            ..self.clone()
        }
    }
}

impl Batcher<(usize, ImageItem), ImageBatch> for ImageNetBatcher {
    fn batch(&self, items: Vec<(usize, ImageItem)>, device: &Device) -> ImageBatch {
        self.batch_of(items.iter().map(|(i, item)| (*i, item)), device)
    }
}

/// Items of [`ImageFolderDataset::skip_undecodable`](crate::ImageFolderDataset::skip_undecodable):
/// skipped images (`None`) are left out, so the batch holds only the images that decoded.
impl Batcher<(usize, Option<ImageItem>), ImageBatch> for ImageNetBatcher {
    fn batch(&self, items: Vec<(usize, Option<ImageItem>)>, device: &Device) -> ImageBatch {
        let kept: Vec<(usize, &ImageItem)> = (items.iter())
            .filter_map(|(i, item)| item.as_ref().map(|item| (*i, item)))
            .collect();
        self.batch_of(kept.into_iter(), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::{CifarDataset, CifarKind};
    use crate::testdata::shared_data;
    use burn::data::dataloader::DataLoaderBuilder;

    #[test]
    fn cifar_loader_batches_are_seeded_per_epoch_and_index() {
        let dir = shared_data("cifar-10-exact-partial");
        let ds = CifarDataset::from_batch_files(
            &[dir.join("test_batch_first1000.bin")],
            CifarKind::Cifar10,
        )
        .unwrap();
        let device = Device::flex();
        let batcher = CifarBatcher::new(CifarTransform::train(), 5);
        let items: Vec<_> = (0..4).map(|i| (i, ds.get(i).unwrap())).collect();
        let batch = |epoch| batcher.at_epoch(epoch).batch(items.clone(), &device);
        let a = batch(0);
        assert_eq!(a.images.dims(), [4, 3, 32, 32]);
        a.images
            .clone()
            .into_data()
            .assert_eq(&batch(0).images.into_data(), true);
        let b = batch(1);
        assert!(a.images.clone().into_data() != b.images.into_data());
        // An item's augmentation depends on its index, not on its place in the batch.
        let reversed: Vec<_> = items.iter().rev().cloned().collect();
        let r = batcher.at_epoch(0).batch(reversed, &device);
        r.images
            .slice(3..4)
            .into_data()
            .assert_eq(&a.images.slice(0..1).into_data(), true);

        // Through Burn's data loader, with two workers and a shuffle seed.
        let loader = DataLoaderBuilder::new(CifarBatcher::new(CifarTransform::eval(), 0))
            .batch_size(64)
            .shuffle(3)
            .num_workers(2)
            .set_device(device)
            .build(Indexed(ds));
        let (mut seen, mut label_sum) = (0, 0i64);
        for batch in loader.iter() {
            let batch = batch.expect("every item of the data set reads");
            seen += batch.targets.dims()[0];
            label_sum += batch.targets.sum().into_scalar::<i64>();
        }
        assert_eq!(seen, 1000);
        let ds = CifarDataset::from_batch_files(
            &[dir.join("test_batch_first1000.bin")],
            CifarKind::Cifar10,
        )
        .unwrap();
        assert_eq!(
            label_sum,
            ds.labels().iter().map(|&l| l as i64).sum::<i64>()
        );
    }

    #[test]
    fn imagenet_batches_through_the_loader() {
        let root = shared_data("imagenette-mini");
        let ds = crate::ImageFolderDataset::new(&root, crate::Split::Test, None).unwrap();
        let loader = DataLoaderBuilder::new(ImageNetBatcher::new(ImageNetTransform::eval(), 0))
            .batch_size(32)
            .num_workers(2)
            .set_device(Device::flex())
            .build(Indexed(ds));
        let mut seen = 0;
        for batch in loader.iter() {
            let batch = batch.expect("every image decodes");
            assert_eq!(batch.images.dims()[1..], [3, 224, 224]);
            seen += batch.targets.dims()[0];
        }
        assert_eq!(seen, 100);
    }

    #[test]
    fn mnist_batches_are_normalised() {
        let ds = crate::mnist::MnistDataset::new(shared_data("mnist"), crate::Split::Test).unwrap();
        let items = (0..3).map(|i| ds.get(i).unwrap()).collect();
        let b = MnistBatcher.batch(items, &Device::flex());
        assert_eq!(b.images.dims(), [3, 1, 28, 28]);
        let background = -MNIST_MEAN_STD.0 / MNIST_MEAN_STD.1;
        let first = b
            .images
            .slice([0..1, 0..1, 0..1, 0..1])
            .into_scalar::<f32>();
        assert!((first - background).abs() < 1e-6);
    }
}
