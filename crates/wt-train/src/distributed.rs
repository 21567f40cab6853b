//! [`World`]: the processes a run trains in. One process by default; under `mpirun` or `srun`
//! (with the `mpi` feature) the ranks of an MPI job, each on one device, each training on its
//! own part of every global batch, their gradients summed with MPI's all-reduce so that every
//! rank takes the same optimizer step and holds the same parameters after it.
//!
//! What [`fit`](crate::fit) does with a world of `N > 1` ranks:
//! - the sampler gives rank `r` part `r` of every global batch of `N·b` images (`b` the
//!   config's `batch_size`, per rank): the parts of one process with batch `N·b` and
//!   `--devices` of `N` shards, in the same order;
//! - each rank's loss is weighted by its share of the global batch, and every trained gradient
//!   (W, b, KP's B, DKP's D, batch norm's scale and shift) is summed over the ranks
//!   ([`World::all_reduce_gradients`]) in visiting order, in buckets of at most
//!   [`BUCKET_VALUES`] values staged through host memory;
//! - every draw of the rules comes from the shared seed, so the ranks stay bit-identical; a
//!   checksum of every rank's parameters is compared after each epoch;
//! - rank 0 alone evaluates and writes the run folder; batch norm's running statistics are
//!   each rank's own, rank 0's saved (as PyTorch's DDP without buffer broadcast).

#[cfg(feature = "mpi")]
use std::sync::Arc;
#[cfg(feature = "mpi")]
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::TrainError;

/// How a run finds its processes: `--distributed auto|none|mpi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Launch {
    /// MPI when an MPI launcher started this process (`mpirun`, `srun` with PMI/PMIx), else
    /// one process.
    #[default]
    Auto,
    /// One process, whatever the environment says.
    None,
    /// MPI (a single process started without a launcher is a world of one rank).
    Mpi,
}

/// The most values one all-reduce moves: parameters' gradients are packed in visiting order
/// into buckets of at most this many `f32` (16 MiB; one tensor larger than that is a bucket
/// of its own), so a large model never holds a second copy of all its gradients.
pub const BUCKET_VALUES: usize = 4 << 20;

/// What gradient all-reduces took ([`World::take_reduce_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReduceStats {
    /// Seconds, from the first gradient read to the last reduced bucket back on the device.
    pub seconds: f64,
    /// `f32` values summed.
    pub values: usize,
    /// Gradient all-reduces (steps).
    pub calls: usize,
}

/// The processes of a run: rank, size, and (under MPI) the communicator. Cheap to clone.
#[derive(Clone, Default)]
pub struct World {
    #[cfg(feature = "mpi")]
    mpi: Option<Arc<mpi_world::MpiWorld>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank(), self.size())
    }
}

/// Whether an MPI launcher started this process (OpenMPI's `mpirun`, MPICH's `mpiexec`, a
/// PMIx launcher such as `srun --mpi=pmix`), and with how many ranks when it says (OpenMPI's
/// `OMPI_COMM_WORLD_SIZE`, PMI's `PMI_SIZE`, else SLURM's `SLURM_NTASKS`), from the
/// environment.
pub fn launched_ranks() -> Option<Option<usize>> {
    let var = |v: &str| std::env::var(v).ok();
    let count = |v: &str| var(v)?.parse::<usize>().ok();
    if let Some(n) = count("OMPI_COMM_WORLD_SIZE").or_else(|| count("PMI_SIZE")) {
        return Some(Some(n));
    }
    var("PMIX_RANK").map(|_| count("SLURM_NTASKS"))
}

impl World {
    /// One process: rank 0 of 1.
    pub fn single() -> Self {
        Self::default()
    }

    /// The world `launch` asks for. `Auto` joins MPI when a launcher started this process;
    /// a build without the `mpi` feature started by a launcher with several ranks is an error
    /// (its ranks would each train the whole run and write the same folder).
    pub fn from_env(launch: Launch) -> Result<Self, TrainError> {
        let launched = launched_ranks();
        let want = match launch {
            Launch::None => false,
            Launch::Mpi => true,
            Launch::Auto => launched.is_some(),
        };
        if !want {
            return Ok(Self::single());
        }
        #[cfg(feature = "mpi")]
        {
            let world = mpi_world::MpiWorld::init()?;
            Ok(Self {
                mpi: Some(Arc::new(world)),
            })
        }
        #[cfg(not(feature = "mpi"))]
        {
            let n = launched
                .flatten()
                .map_or(String::new(), |n| format!(" ({n} ranks)"));
            Err(TrainError::Distributed(format!(
                "this process was started for MPI{n} but wt was built without MPI: build with \
                 `--features mpi` (OpenMPI and libclang: `apt install libopenmpi-dev \
                 libclang-dev`), or pass `--distributed none` to train in one process"
            )))
        }
    }

    /// This process's rank, 0-based.
    pub fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.rank;
        }
        0
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.size;
        }
        1
    }

    /// This process's rank among the ranks on its machine (what `{local_rank}` in a device
    /// name stands for).
    pub fn local_rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.local_rank;
        }
        0
    }

    /// Whether this is rank 0, which evaluates, prints and writes the run folder.
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// Whether the run has more than one rank.
    pub fn is_distributed(&self) -> bool {
        self.size() > 1
    }

    /// `name` with `{rank}` and `{local_rank}` replaced by this process's ranks, so one
    /// command line names each rank's device: `--device cuda:{local_rank}`.
    pub fn device_name(&self, name: &str) -> String {
        name.replace("{local_rank}", &self.local_rank().to_string())
            .replace("{rank}", &self.rank().to_string())
    }

    /// Every rank's `value`, in rank order.
    pub fn all_gather(&self, value: u64) -> Vec<u64> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.all_gather(value);
        }
        vec![value]
    }

    /// `values` summed over the ranks, element by element (every rank gets the sum).
    pub fn all_reduce_sum(&self, values: &[f64]) -> Vec<f64> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.all_reduce_f64(values);
        }
        values.to_vec()
    }

    /// What this rank's gradient all-reduces took since the last call: seconds (staging
    /// through host memory included) and values summed; zeros in one process.
    pub fn take_reduce_stats(&self) -> ReduceStats {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return std::mem::take(&mut *m.reduce_stats.lock().expect("not poisoned"));
        }
        ReduceStats::default()
    }

    /// Stops every rank of the job with `code` after this rank's error was printed (MPI's
    /// abort: the launcher ends the other ranks). In one process, exits.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            m.abort(code);
        }
        std::process::exit(code)
    }

    /// `grads` (of `model`, on `device`) summed over the ranks: every gradient present, in
    /// `model`'s visiting order, packed into buckets of at most [`BUCKET_VALUES`] values, each
    /// bucket read to host memory, all-reduced (MPI's sum) into one reused buffer and written
    /// back to `device`. Every rank must hold the same model, so the same gradients, in the
    /// same order. In one process, `grads` unchanged.
    pub fn all_reduce_gradients<M: Module>(
        &self,
        model: &M,
        grads: GradientsParams,
        device: &Device,
    ) -> GradientsParams {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            let start = Instant::now();
            let mut values = 0;
            let out = reduce_in_buckets(model, grads, device, BUCKET_VALUES, |send, recv| {
                values += send.len();
                m.all_reduce_f32(send, recv)
            });
            let mut stats = m.reduce_stats.lock().expect("not poisoned");
            stats.seconds += start.elapsed().as_secs_f64();
            stats.values += values;
            stats.calls += 1;
            return out;
        }
        let _ = (model, device);
        grads
    }
}

/// `grads`' tensors, taken out of `grads` and flattened, in `model`'s visiting order, with
/// their parameter ids: the gradients [`reduce_in_buckets`] moves.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))] // Used by MPI, and tested without it.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    found: Vec<(ParamId, Tensor<1>)>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let n = g.shape().num_elements();
            self.found.push((param.id, g.reshape([n])));
        }
    }
}

/// Puts the reduced flat gradients back, in the same visiting order, in their shapes.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))] // Used by MPI, and tested without it.
struct Restore<'a> {
    grads: &'a mut GradientsParams,
    reduced: std::collections::HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Restore<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(flat) = self.reduced.remove(&param.id) {
            let dims: [usize; D] = param.lazy_shape().dims();
            self.grads.register::<D>(param.id, flat.reshape(dims));
        }
    }
}

/// The reduction of [`World::all_reduce_gradients`] with `reduce(send, recv)` as the
/// collective, buckets of at most `bucket` values (a larger tensor alone); separate from MPI
/// so that a test can check the packing with any reduction.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))] // Used by MPI, and tested without it.
pub(crate) fn reduce_in_buckets<M: Module>(
    model: &M,
    mut grads: GradientsParams,
    device: &Device,
    bucket: usize,
    mut reduce: impl FnMut(&[f32], &mut [f32]),
) -> GradientsParams {
    let mut flat = Flatten {
        grads: &mut grads,
        found: Vec::new(),
    };
    model.visit(&mut flat);
    let found = flat.found;
    let mut reduced = std::collections::HashMap::with_capacity(found.len());
    let mut recv: Vec<f32> = Vec::new();
    let mut rest = found.into_iter().peekable();
    while rest.peek().is_some() {
        // One bucket: at least one tensor, then more while they fit.
        let mut ids = Vec::new();
        let mut parts = Vec::new();
        let mut len = 0;
        while let Some((_, t)) = rest.peek() {
            let n = t.shape().num_elements();
            if !parts.is_empty() && len + n > bucket {
                break;
            }
            let (id, t) = rest.next().expect("peeked");
            ids.push((id, n));
            parts.push(t);
            len += n;
        }
        let packed = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 0)
        };
        let data = packed.into_data().convert::<f32>();
        let send = data.as_slice::<f32>().expect("converted to f32");
        recv.resize(len, 0.0);
        reduce(send, &mut recv[..len]);
        let summed = Tensor::<1>::from_data(TensorData::new(recv[..len].to_vec(), [len]), device);
        let mut at = 0;
        for (id, n) in ids {
            reduced.insert(id, summed.clone().slice(at..at + n));
            at += n;
        }
    }
    model.visit(&mut Restore {
        grads: &mut grads,
        reduced,
    });
    grads
}

/// A checksum (CRC-32C) of every parameter's values in `model`'s visiting order (batch norm's
/// running statistics left out: each rank keeps its own): equal on two ranks when their
/// parameters are equal bit for bit. Reads every parameter from its device.
pub fn parameter_checksum<M: Module>(model: &M) -> u32 {
    struct Sum {
        sum: u32,
        /// The names of the modules and fields entered, innermost last.
        path: Vec<String>,
    }
    impl ModuleVisitor for Sum {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.path.last().is_some_and(|n| n.starts_with("running_")) {
                return;
            }
            let data = param.val().into_data();
            self.sum = crc32c::crc32c_append(self.sum, data.as_bytes());
        }
    }
    let mut sum = Sum {
        sum: 0,
        path: Vec::new(),
    };
    model.visit(&mut sum);
    sum.sum
}

/// Rank `rank`'s items of one epoch and the size of every global batch: `order` cut into
/// global batches of `ranks·batch` items, each cut into `ranks` contiguous parts whose sizes
/// differ by at most one (part `r` of a batch of `n`: items `r·n/ranks .. (r+1)·n/ranks`, as
/// the shards of `--devices`), rank `rank` taking part `rank` of each. A last global batch
/// smaller than `ranks` (some rank would get nothing) is left out. In one process: `order`
/// and its batches.
pub(crate) fn rank_order(
    order: &[usize],
    batch: usize,
    rank: usize,
    ranks: usize,
) -> (Vec<usize>, Vec<usize>) {
    let global = batch * ranks;
    let mut mine = Vec::with_capacity(order.len() / ranks + batch);
    let mut sizes = Vec::with_capacity(order.len().div_ceil(global));
    for chunk in order.chunks(global) {
        let n = chunk.len();
        if n < ranks {
            break;
        }
        mine.extend_from_slice(&chunk[rank * n / ranks..(rank + 1) * n / ranks]);
        sizes.push(n);
    }
    (mine, sizes)
}

/// Stops the run on every rank, naming the ranks, when some rank was started with another
/// config (its TOML, device names before `{rank}` is replaced) or other data (the splits' sizes
/// and items, the image shape, and the bytes of the first training and test images).
pub(crate) fn check_same_run(
    world: &World,
    config: &crate::TrainConfig,
    data: &crate::RunData,
    device: &Device,
) -> Result<(), TrainError> {
    let config_sum = crc32c::crc32c(config.to_toml().as_bytes());
    let data_sum = data_checksum(data, device)?;
    let all = world.all_gather(((config_sum as u64) << 32) | data_sum as u64);
    for (what, shift) in [("config", 32), ("data", 0)] {
        let sums: Vec<u32> = all.iter().map(|v| (v >> shift) as u32).collect();
        if let Some(ranks) = unlike_rank_0(&sums) {
            return Err(TrainError::Distributed(format!(
                "rank(s) {ranks} started with a {what} other than rank 0's (CRC-32C of the \
                 {what} differ); every rank must run the same command on the same files"
            )));
        }
    }
    Ok(())
}

/// The ranks whose value differs from rank 0's, as `1, 3`; `None` when all agree.
fn unlike_rank_0<T: PartialEq>(values: &[T]) -> Option<String> {
    let ranks: Vec<String> = (values.iter().enumerate())
        .filter(|(_, v)| **v != values[0])
        .map(|(r, _)| r.to_string())
        .collect();
    (!ranks.is_empty()).then(|| ranks.join(", "))
}

/// A checksum of what a run trains on: split sizes and items, classes and image shape, and
/// the values of up to 16 training and 16 test images and their labels (read once, at start).
pub(crate) fn data_checksum(data: &crate::RunData, device: &Device) -> Result<u32, TrainError> {
    let mut sum = 0u32;
    let mut add = |bytes: &[u8]| sum = crc32c::crc32c_append(sum, bytes);
    for n in [data.num_classes, data.channels, data.side, data.train.len()] {
        add(&(n as u64).to_le_bytes());
    }
    for split in [
        Some(&data.train),
        data.validation.as_ref(),
        Some(&data.test),
    ]
    .into_iter()
    .flatten()
    {
        for &i in split.items.iter() {
            add(&(i as u64).to_le_bytes());
        }
        let first: Vec<usize> = (0..split.len().min(16)).collect();
        if first.is_empty() {
            continue;
        }
        let batch = split.batch(0, &first, device).map_err(TrainError::Batch)?;
        add(batch.images.into_data().as_bytes());
        add(batch.targets.into_data().as_bytes());
    }
    Ok(sum)
}

/// Stops the run on every rank when the ranks' parameters are no longer equal bit for bit
/// after `epoch` (0-based), naming the ranks; rank 0 prints the checksum they agree on.
pub(crate) fn check_same_parameters<M: Module>(
    world: &World,
    model: &M,
    epoch: usize,
    say: impl Fn(String),
) -> Result<(), TrainError> {
    let all = world.all_gather(parameter_checksum(model) as u64);
    if let Some(ranks) = unlike_rank_0(&all) {
        return Err(TrainError::Distributed(format!(
            "after epoch {}, the parameters of rank(s) {ranks} differ from rank 0's",
            epoch + 1
        )));
    }
    say(format!(
        "epoch {}: the {} ranks' parameters are identical (CRC-32C {:08x})",
        epoch + 1,
        world.size(),
        all[0]
    ));
    Ok(())
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use std::sync::Mutex;

    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::CommunicatorCollectives;

    use crate::error::TrainError;

    /// An initialised MPI job: the universe (finalised when dropped), its world communicator,
    /// and this process's ranks.
    pub(super) struct MpiWorld {
        _universe: Universe,
        comm: SimpleCommunicator,
        pub rank: usize,
        pub size: usize,
        pub local_rank: usize,
        pub reduce_stats: Mutex<super::ReduceStats>,
    }

    // MPI is initialised `Funneled`: only the thread that initialised it (the training loop's)
    // calls it; the handle is shared only so that `World` clones cheaply.
    unsafe impl Send for MpiWorld {}
    unsafe impl Sync for MpiWorld {}

    impl MpiWorld {
        pub fn init() -> Result<Self, TrainError> {
            let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
                .ok_or_else(|| TrainError::Distributed("MPI was already initialised".into()))?;
            let comm = universe.world();
            let local = comm.split_shared(0);
            Ok(Self {
                rank: comm.rank() as usize,
                size: comm.size() as usize,
                local_rank: local.rank() as usize,
                comm,
                _universe: universe,
                reduce_stats: Mutex::new(super::ReduceStats::default()),
            })
        }

        pub fn all_gather(&self, value: u64) -> Vec<u64> {
            let mut all = vec![0u64; self.size];
            self.comm.all_gather_into(&value, &mut all[..]);
            all
        }

        pub fn all_reduce_f64(&self, values: &[f64]) -> Vec<f64> {
            let mut out = vec![0.0; values.len()];
            self.comm
                .all_reduce_into(values, &mut out[..], SystemOperation::sum());
            out
        }

        pub fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) {
            self.comm
                .all_reduce_into(send, recv, SystemOperation::sum());
        }

        pub fn abort(&self, code: i32) -> ! {
            self.comm.abort(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use wt_models::{Architecture, ImageClassifier, ModelConfig};

    /// Packing into buckets, reducing and unpacking gives every gradient back in its shape,
    /// reduced, whatever the bucket size: with `reduce` doubling, each gradient doubles.
    #[test]
    fn buckets_give_every_gradient_back_reduced() {
        let device = Device::flex().autodiff();
        let mut config = ModelConfig::new(Architecture::Mlp, 10, 1, 8, "kp".parse().unwrap());
        config.hidden = vec![16, 12];
        let model = config.init(&device);
        crate::trainer::initialize(&model);
        let images = Tensor::<4>::random([5, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let loss = model.forward(images).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // A gradient's values, read with the parameter's rank (1: biases, 2: weights).
        let read = |g: &GradientsParams, (id, rank): (ParamId, usize)| -> Option<Vec<f32>> {
            let data = match rank {
                1 => g.get::<1>(id)?.into_data(),
                _ => g.get::<2>(id)?.into_data(),
            };
            Some(data.iter::<f32>().collect())
        };
        let plain = device.clone().inner();
        let ids: Vec<_> = {
            struct Ids(Vec<(ParamId, usize)>);
            impl ModuleVisitor for Ids {
                fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                    assert!(D <= 2, "an MLP's parameters are vectors and matrices");
                    self.0.push((p.id, D));
                }
            }
            let mut v = Ids(Vec::new());
            model.visit(&mut v);
            v.0
        };
        let before: Vec<Option<Vec<f32>>> = ids.iter().map(|&id| read(&grads, id)).collect();
        assert!(before.iter().filter(|g| g.is_some()).count() >= 4);
        for bucket in [1, 100, 1 << 20] {
            let mut calls = 0;
            let mut again = GradientsParams::new();
            for &(id, rank) in &ids {
                match rank {
                    1 => grads.get::<1>(id).map(|g| again.register(id, g)),
                    _ => grads.get::<2>(id).map(|g| again.register(id, g)),
                };
            }
            let out = reduce_in_buckets(&model, again, &plain, bucket, |s, r| {
                calls += 1;
                for (r, s) in r.iter_mut().zip(s) {
                    *r = 2.0 * s;
                }
            });
            for (id, b) in ids.iter().zip(&before) {
                match (b, read(&out, *id)) {
                    (Some(b), Some(a)) => {
                        let doubled: Vec<f32> = b.iter().map(|v| 2.0 * v).collect();
                        assert_eq!(a, doubled, "bucket {bucket}");
                    }
                    (None, None) => {}
                    (b, a) => panic!(
                        "bucket {bucket}: present before {}, after {}",
                        b.is_some(),
                        a.is_some()
                    ),
                }
            }
            let tensors = before.iter().filter(|g| g.is_some()).count();
            if bucket == 1 {
                assert_eq!(calls, tensors, "one bucket per tensor when none fits");
            } else if bucket == 1 << 20 {
                assert_eq!(calls, 1, "one bucket when all fit");
            }
        }
    }

    /// The ranks' parts of an epoch are the whole order, each item once, in global-batch order;
    /// a rank's batches are `batch` long but the last; a last global batch smaller than the
    /// rank count is left out.
    #[test]
    fn ranks_share_every_global_batch() {
        let order: Vec<usize> = (0..23).rev().collect();
        let parts: Vec<_> = (0..3).map(|r| rank_order(&order, 3, r, 3)).collect();
        // Global batches of 9: 9, 9, 5.
        assert_eq!(parts[0].1, vec![9, 9, 5]);
        assert_eq!(parts[0].0, vec![22, 21, 20, 13, 12, 11, 4]);
        assert_eq!(parts[1].0, vec![19, 18, 17, 10, 9, 8, 3, 2]);
        let mut all: Vec<usize> = parts.iter().flat_map(|p| p.0.clone()).collect();
        all.sort();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
        // Last global batch of 5 in parts of 1, 2, 2 (r·5/3).
        assert_eq!(parts[0].0.len(), 3 + 3 + 1);
        assert_eq!(parts[2].0[6..], [1, 0]);
        let sizes: Vec<usize> = [3; 7].into_iter().chain([2]).collect();
        assert_eq!(rank_order(&order, 3, 0, 1), (order.clone(), sizes));
        // 22 items on 3 ranks of batch 7: batches of 21 and 1; the 1 is left out.
        assert_eq!(rank_order(&order[..22], 7, 1, 3).1, vec![21]);
    }

    /// The ranks' checksum leaves batch norm's running statistics out (a training forward moves
    /// them and the checksum stays) and sees every parameter (one value changed changes it).
    #[test]
    fn the_parameter_checksum_skips_running_statistics_only() {
        let device = Device::flex().autodiff();
        let config = ModelConfig::new(Architecture::Resnet20, 10, 3, 32, "kp".parse().unwrap());
        let model = config.init(&device);
        crate::trainer::initialize(&model);
        let before = parameter_checksum(&model);
        let images = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let _ = model.forward(images);
        // Burn folds a running statistic's update into the value it shows when asked (`valid`).
        let _ = model.valid();
        assert_eq!(
            parameter_checksum(&model),
            before,
            "running statistics moved the sum"
        );
        struct Nudge(bool);
        impl burn::module::ModuleMapper for Nudge {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if std::mem::replace(&mut self.0, false) {
                    p.map(|t| t.add_scalar(1e-3))
                } else {
                    p
                }
            }
        }
        let nudged = model.map(&mut Nudge(true));
        assert_ne!(
            parameter_checksum(&nudged),
            before,
            "a changed weight kept the sum"
        );
    }

    #[test]
    fn device_names_take_the_ranks() {
        let w = World::single();
        assert_eq!(w.device_name("cuda:{local_rank}"), "cuda:0");
        assert_eq!(w.device_name("wgpu:discrete:{rank}"), "wgpu:discrete:0");
        assert_eq!((w.rank(), w.size(), w.is_main()), (0, 1, true));
    }
}
