//! [`OrderedLoader`]: batches prepared by worker threads ahead of the training step and
//! delivered in a fixed order.
//!
//! Burn's multi-threaded `DataLoader` hands batches over in whatever order its workers finish,
//! so two runs (or a run and its resumption) would see different batch orders and drift
//! apart. Here worker `w` of `n` prepares batches `w, w + n, w + 2n, ...` into its own bounded
//! channel and the consumer reads the channels round-robin: the order is the same as with no
//! workers, whatever the thread timing.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::data::dataset::DatasetError;
use burn::tensor::Device;
use wt_data::ImageBatch;

use crate::data::DataSplit;
use crate::error::TrainError;

/// Batches each worker may have ready ahead of the consumer.
const DEPTH: usize = 2;

/// An iterator over the batches of one epoch, in order.
pub struct OrderedLoader {
    receivers: Vec<Receiver<Result<ImageBatch, DatasetError>>>,
    handles: Vec<JoinHandle<()>>,
    inline: Option<(DataSplit, Device)>,
    batches: Vec<Vec<usize>>,
    epoch: u64,
    next: usize,
}

impl OrderedLoader {
    /// Batches of `split` at the positions in `order`, `batch_size` at a time (the last one
    /// may be smaller), augmented for `epoch`, prepared by `workers` threads (0: inline).
    pub fn new(
        split: &DataSplit,
        order: &[usize],
        batch_size: usize,
        epoch: u64,
        device: &Device,
        workers: usize,
    ) -> Self {
        let batches: Vec<Vec<usize>> = order
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect();
        let mut loader = Self {
            receivers: Vec::new(),
            handles: Vec::new(),
            inline: None,
            batches: Vec::new(),
            epoch,
            next: 0,
        };
        if workers == 0 {
            loader.inline = Some((split.clone(), device.clone()));
            loader.batches = batches;
            return loader;
        }
        let workers = workers.min(batches.len().max(1));
        for w in 0..workers {
            let (tx, rx) = sync_channel(DEPTH);
            let mine: Vec<Vec<usize>> = batches.iter().skip(w).step_by(workers).cloned().collect();
            let (split, device) = (split.clone(), device.clone());
            let handle = std::thread::Builder::new()
                .name(format!("wt-loader-{w}"))
                .spawn(move || {
                    for positions in mine {
                        let batch = split.batch(epoch, &positions, &device);
                        let failed = batch.is_err();
                        // The consumer hung up (the epoch ended early): stop quietly.
                        if tx.send(batch).is_err() || failed {
                            return;
                        }
                    }
                })
                .expect("spawning a loader thread");
            loader.receivers.push(rx);
            loader.handles.push(handle);
        }
        loader.batches = batches;
        loader
    }

    /// Number of batches this epoch.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether the epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

impl Iterator for OrderedLoader {
    type Item = Result<ImageBatch, TrainError>;

    /// The next batch; a batch left with no images (every one skipped as undecodable, see
    /// `DataConfig::skip_undecodable`) is passed over.
    fn next(&mut self) -> Option<Self::Item> {
        while let Some(batch) = self.next_prepared() {
            match &batch {
                Ok(b) if b.targets.dims()[0] == 0 => continue,
                _ => return Some(batch),
            }
        }
        None
    }
}

impl OrderedLoader {
    fn next_prepared(&mut self) -> Option<Result<ImageBatch, TrainError>> {
        if self.next >= self.batches.len() {
            return None;
        }
        let k = self.next;
        self.next += 1;
        if let Some((split, device)) = &self.inline {
            return Some(
                split
                    .batch(self.epoch, &self.batches[k], device)
                    .map_err(TrainError::Batch),
            );
        }
        let rx = &self.receivers[k % self.receivers.len()];
        Some(match rx.recv() {
            Ok(batch) => batch.map_err(TrainError::Batch),
            Err(_) => Err(TrainError::Loader(format!(
                "worker {} stopped before batch {k}",
                k % self.receivers.len()
            ))),
        })
    }
}

impl Drop for OrderedLoader {
    fn drop(&mut self) {
        // Hang up first so blocked workers return, then join them.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{BatchSource, DataSplit};
    use burn::tensor::{Int, Tensor, TensorData};
    use std::sync::Arc;

    /// Items are their own index; preparing a batch takes a random short time.
    struct Slow;
    impl BatchSource for Slow {
        fn len(&self) -> usize {
            100
        }
        fn batch(
            &self,
            epoch: u64,
            idx: &[usize],
            device: &Device,
        ) -> Result<ImageBatch, DatasetError> {
            std::thread::sleep(std::time::Duration::from_micros(
                (idx[0] as u64 * 7919) % 3000,
            ));
            if idx.contains(&97) && epoch == 9 {
                return Err(DatasetError::new(wt_data::DataError::at(
                    "slow", "item 97", "broken",
                )));
            }
            let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            Ok(ImageBatch {
                images: Tensor::zeros([idx.len(), 1, 1, 1], device),
                targets: Tensor::<1, Int>::from_data(TensorData::new(v, [idx.len()]), device),
            })
        }
    }

    #[test]
    fn batches_arrive_in_order_whatever_the_worker_timing() {
        let device = Device::flex();
        let split = DataSplit::all(Arc::new(Slow));
        let order = crate::data::permutation(100, 1);
        for workers in [0, 1, 3] {
            let seen: Vec<i64> = OrderedLoader::new(&split, &order, 8, 0, &device, workers)
                .flat_map(|b| {
                    b.unwrap()
                        .targets
                        .into_data()
                        .iter::<i64>()
                        .collect::<Vec<_>>()
                })
                .collect();
            let expected: Vec<i64> = order.iter().map(|&i| i as i64).collect();
            assert_eq!(seen, expected, "{workers} workers");
        }
        // The first error is the data's own message (a worker stops after it).
        let first_error =
            OrderedLoader::new(&split, &order, 8, 9, &device, 2).find_map(|b| b.err());
        let first_error = first_error.map(|e| e.to_string());
        assert!(
            first_error
                .as_deref()
                .is_some_and(|e| e.contains("item 97") && e.contains("broken")),
            "{first_error:?}"
        );
        // Dropping a loader mid-epoch returns (no deadlock on blocked workers).
        let mut early = OrderedLoader::new(&split, &order, 4, 0, &device, 2);
        early.next().unwrap().unwrap();
        drop(early);
    }
}
