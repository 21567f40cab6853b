//! The devices a run trains on and one step's forward and backward split over them: the
//! model's device and the data-parallel replicas (`Devices`, each device opened and checked),
//! the per-step draws each shard's device is seeded for (`StepDraws`), and the shards'
//! gradients summed on the model's device (`shard_gradients`).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::{Device, Int, Tensor};
use wt_core::device::{check_device, parse_device};
use wt_models::ImageClassifier;

use super::correct_top1;
use crate::config::TrainConfig;
use crate::distributed::World;
use crate::error::TrainError;

/// The devices of a run: the one holding the model (plain and autodiff) and the
/// data-parallel replicas after it, each given a copy of the model every step.
pub(super) struct Devices {
    /// The device holding the model.
    pub(super) plain: Device,
    /// `plain` with autodiff: where the model trains.
    pub(super) autodiff: Device,
    /// The replicas' devices (autodiff), each given a copy of the model every step.
    pub(super) replicas: Vec<Device>,
}

impl Devices {
    /// The config's devices, `{rank}` and `{local_rank}` in their names replaced by `world`'s
    /// (under MPI, one device a rank).
    pub(super) fn open(config: &TrainConfig, world: &World) -> Result<Self, TrainError> {
        if world.is_distributed() && config.devices.len() > 1 {
            return Err(TrainError::Config(format!(
                "devices: under MPI each rank trains on one device (name it with --device, \
                 e.g. cuda:{{local_rank}}), got {} devices: {}",
                config.devices.len(),
                config.devices.join(",")
            )));
        }
        let plain = open_device(&world.device_name(&config.device))?;
        let replicas = (config.devices.iter().skip(1))
            .map(|d| open_device(&world.device_name(d)).map(|d| d.autodiff()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            autodiff: plain.clone().autodiff(),
            plain,
            replicas,
        })
    }
}

/// The device `name` names, checked ([`check_device`]): a device that does not exist here
/// (`wgpu:discrete:3` on a one-GPU machine) or whose driver fails is a clear error at the
/// start, not a panic inside the first step.
fn open_device(name: &str) -> Result<Device, TrainError> {
    let device = parse_device(name).map_err(TrainError::Config)?;
    check_device(&device)
        .map_err(|why| TrainError::Config(format!("device `{name}` could not be opened: {why}")))?;
    Ok(device)
}

/// Per-step random draws of a model's rules.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepDraws {
    /// brSF draws `|R|` in the backward pass.
    pub(super) backward: bool,
    /// The weight mirror draws its noise in the update.
    pub(super) mirror: bool,
}

/// Forward and backward of one training batch (whose loss is weighted by `scale`, this rank's
/// share of the global batch, 1 in one process): on `device` alone when `replicas` is empty,
/// else split between `device` (with `model` itself) and the replica devices (each with a copy
/// of `model`, `Module::fork`, whose batch-norm running statistics are its own and dropped:
/// the model keeps those of the first shard, as PyTorch's DDP keeps rank 0's), shard sizes
/// differing by at most one. Returns the gradient of
/// the whole batch's mean loss, summed on `device` (each shard's loss is scaled by its share
/// of the batch; `FeedbackOptimizer::step_multi` sums them on `device`, in shard order), and
/// the device tensor `[Σ loss·n, correct top-1]` on `device`. Reads nothing from a device.
///
/// The shards are enqueued one after the other from this thread: a GPU runs its shard while
/// the next one is enqueued, since nothing here waits for a device (moving a replica's
/// gradients does). When the model draws in its backward pass (brSF), every shard's device is
/// seeded with `seed` before its shard, after the previous shard's device has finished (so
/// its draws are taken from the stream it was seeded with), and every shard draws the `B` that
/// a one-device run draws.
#[allow(clippy::too_many_arguments)]
pub(super) fn shard_gradients<M: ImageClassifier>(
    model: &M,
    device: &Device,
    replicas: &[Device],
    criterion: &CrossEntropyLossConfig,
    batch: wt_data::ImageBatch,
    scale: f64,
    seed: u64,
    draws: StepDraws,
) -> Result<(MultiGradientsParams, Tensor<1>), TrainError> {
    let run = |model: &M, device: &Device, images: Tensor<4>, targets: Tensor<1, Int>, weight| {
        let n = targets.dims()[0];
        let logits = model.forward(images);
        // DRTP's layers receive the target part of the mean loss's output error (nothing
        // under the other rules).
        wt_core::direct_targets(targets.clone(), weight / n.max(1) as f64);
        let loss = criterion
            .init(device)
            .forward(logits.clone(), targets.clone());
        let counts = correct_top1(logits.detach(), targets);
        let sums = Tensor::cat(vec![loss.clone().detach().mul_scalar(n as f64), counts], 0);
        let grads = GradientsParams::from_grads(loss.mul_scalar(weight).backward(), model);
        (grads, sums)
    };
    if draws.backward {
        device.seed(seed);
    }
    let one = |(grads, sums)| {
        (
            MultiGradientsParams {
                grads: vec![(grads, device.clone())],
            },
            sums,
        )
    };
    if replicas.is_empty() {
        return Ok(one(run(model, device, batch.images, batch.targets, scale)));
    }
    let n = batch.targets.dims()[0];
    let k = replicas.len() + 1;
    let bounds: Vec<usize> = (0..=k).map(|i| i * n / k).collect();
    let part = |i: usize| bounds[i]..bounds[i + 1];
    let share = |i: usize| scale * part(i).len() as f64 / n as f64;
    let sync_failed = |d: &Device, e| {
        TrainError::Config(format!(
            "device {d:?} failed while training its shard: {e:?}"
        ))
    };
    let (mut shards, mut sums) = one(run(
        model,
        device,
        batch.images.clone().slice(part(0)),
        batch.targets.clone().slice(part(0)),
        share(0),
    ));
    let mut previous = device;
    for (r, dev) in replicas.iter().enumerate() {
        let range = part(r + 1);
        let images = batch.images.clone().slice(range.clone()).to_device(dev);
        let targets = batch.targets.clone().slice(range).to_device(dev);
        // `valid().train()` gives the copy running statistics of its own: a clone shares the
        // model's, which the copy's forward would then move to its device and update again.
        let copy = model.valid().train().fork(dev);
        if draws.backward {
            previous.sync().map_err(|e| sync_failed(previous, e))?;
            dev.seed(seed);
        }
        let (grads, these) = run(&copy, dev, images, targets, share(r + 1));
        shards.grads.push((grads, dev.clone()));
        sums = sums + these.to_device(device);
        previous = dev;
    }
    Ok((shards, sums))
}
