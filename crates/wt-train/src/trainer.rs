//! [`fit`]: the training loop every example uses, for any [`ImageClassifier`] and any rule.
//!
//! Each step: forward, cross-entropy, backward, `B` gradients of the rules
//! ([`add_feedback_gradients`](wt_nn::add_feedback_gradients)), optimizer step at the scheduled rate, weight-mirror update
//! ([`mirror_update`](wt_nn::mirror_update)). Each epoch: evaluation
//! (validation, test: loss, top-1, top-5), per-layer B–W angle and ‖B‖/‖W‖, error angle vs
//! backprop on one batch, then an atomic checkpoint and the metrics files. Everything random
//! (initialisation, shuffling, augmentation, the rules' draws) is a function of the seed, the
//! epoch and the step, so a resumed run repeats an uninterrupted one bit for bit.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Int, Tensor};
use wt_core::device::{check_device, parse_device};
use wt_models::ImageClassifier;
use wt_nn::{ProbeAlignment, gradient_alignment, mirror_steps, weight_alignment};

use crate::bm_sgd::BatchManhattanSgdConfig;
use crate::checkpoint::{self, Progress};
use crate::config::{OptimizerConfig, OptimizerKind, TrainConfig};
use crate::data::{DataSplit, RunData, permutation};
use crate::distributed::{World, check_same_parameters, check_same_run, rank_order};
use crate::error::TrainError;
use crate::feedback_optimizer::FeedbackOptimizer;
use crate::loader::OrderedLoader;
use crate::metrics::BlockMetrics;
use crate::metrics::{self, EpochMetrics, Evaluation, LayerMetrics};
use crate::parameters::parameter_count;
use crate::plot;
use crate::run_dir::RunDir;
use crate::tensorboard;

/// What [`fit`] returns: the trained model (on the autodiff device) and every epoch's metrics.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model after the last epoch.
    pub model: M,
    /// The zoo architecture's name, or the model type's name for a user's model.
    pub model_name: String,
    /// Metrics of every epoch of the run (including epochs before a resume).
    pub history: Vec<EpochMetrics>,
}

/// How [`fit`] runs: start or resume, how much it prints, where it stops, in which processes.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Continue from the run folder's checkpoint instead of starting at epoch 1.
    pub resume: bool,
    /// How much to print.
    pub verbosity: Verbosity,
    /// Return after this epoch (1-based) as if interrupted there, leaving its checkpoint;
    /// `None`: run to `config.epochs`.
    pub stop_after: Option<usize>,
    /// The processes the run trains in: one (the default), or the ranks of an MPI job
    /// ([`World::from_env`]), each running `fit` with the same config and data.
    pub world: World,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            resume: false,
            verbosity: Verbosity::Normal,
            stop_after: None,
            world: World::single(),
        }
    }
}

/// How much [`fit`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Nothing.
    Quiet,
    /// Start, progress within epochs, one line per epoch.
    Normal,
}

/// The optimizer a config asks for. SGD momentum uses no dampening (PyTorch's convention).
pub fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.kind {
        OptimizerKind::Sgd => {
            wt_nn::sgd_config(config.momentum, config.nesterov, config.weight_decay).init()
        }
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(config.betas.0)
            .with_beta_2(config.betas.1)
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::BmSgd => BatchManhattanSgdConfig {
            weight_decay: decay,
            momentum: wt_nn::momentum_config(config.momentum, config.nesterov),
        }
        .init(),
    }
}

/// The zoo architecture's name when `M` is the zoo's [`wt_models::Model`], else the short
/// name of `M`'s type.
fn model_name<M>(config: &TrainConfig) -> String {
    let full = std::any::type_name::<M>();
    if full == std::any::type_name::<wt_models::Model>() {
        config.model.architecture.to_string()
    } else {
        full.rsplit("::").next().unwrap_or(full).to_string()
    }
}

/// Seed of the device RNG for one step (SplitMix64 of seed and step).
fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Correct top-1 predictions of `logits` `[n, classes]` for `targets` `[n]`, as a device
/// tensor `[1]` (a float count; exact below 2²⁴). Reads nothing.
fn correct_top1(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    logits
        .argmax(1)
        .flatten::<1>(0, 1)
        .equal(targets)
        .int()
        .sum()
        .float()
}

/// Correct top-1 and top-k predictions of `logits` `[n, classes]` for `targets` `[n]`, as a
/// device tensor `[2]` (float counts; exact below 2²⁴). Reads nothing.
fn correct(logits: Tensor<2>, targets: Tensor<1, Int>, k: usize) -> Tensor<1> {
    let [n, classes] = logits.dims();
    let top1 = correct_top1(logits.clone(), targets.clone());
    let k = k.min(classes);
    let (_, idx) = logits.topk_with_indices(k, 1);
    let topk = idx
        .equal(targets.reshape([n, 1]).expand([n, k]))
        .int()
        .sum()
        .float();
    Tensor::cat(vec![top1, topk], 0)
}

/// `sum + these`, or `these` for the first term: a running sum kept on the device.
fn add_to(sum: Option<Tensor<1>>, these: Tensor<1>) -> Tensor<1> {
    match sum {
        Some(s) => s + these,
        None => these,
    }
}

/// Reads a small device tensor to the host: the one place the training loop and evaluation
/// wait for the device. Under `cfg(test)` each call is counted ([`device_reads`]), so a test
/// can hold the step loop to a handful of reads.
fn read_values(t: Tensor<1>) -> Vec<f64> {
    #[cfg(test)]
    DEVICE_READS.with(|c| c.set(c.get() + 1));
    let data = t.into_data().convert::<f64>();
    data.try_into_vec::<f64>().expect("f64 data after convert")
}

#[cfg(test)]
thread_local! {
    static DEVICE_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many times this thread's training loops and evaluations have read the device.
#[cfg(test)]
pub(crate) fn device_reads() -> usize {
    DEVICE_READS.with(|c| c.get())
}

/// Loss, top-1 and top-5 of `model` on `split` (no augmentation, no gradients).
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    split: &DataSplit,
    batch_size: usize,
    device: &Device,
    workers: usize,
) -> Result<Evaluation, TrainError> {
    let criterion = CrossEntropyLossConfig::new().init(device);
    let order: Vec<usize> = (0..split.len()).collect();
    // Σ loss·n, top-1 and top-5 counts, summed on the device and read once at the end.
    let mut sums: Option<Tensor<1>> = None;
    for batch in OrderedLoader::new(split, &order, batch_size, 0, device, workers) {
        let batch = batch?;
        let n = batch.targets.dims()[0];
        let logits = model.forward(batch.images);
        let loss = criterion
            .forward(logits.clone(), batch.targets.clone())
            .mul_scalar(n as f64);
        let these = Tensor::cat(vec![loss, correct(logits, batch.targets, 5)], 0);
        sums = Some(add_to(sums, these));
    }
    let n = split.len().max(1) as f64;
    let v = sums.map_or_else(|| vec![0.0; 3], read_values);
    Ok(Evaluation {
        loss: v[0] / n,
        top1: v[1] / n,
        top5: v[2] / n,
    })
}

/// Trains the model `build` makes (called once, on the autodiff device, after seeding) on
/// `data` as `config` says, writing the run folder `run`. With `options.resume`, continues
/// from the folder's checkpoint instead of starting at epoch 1.
pub fn fit<M: ImageClassifier>(
    config: &TrainConfig,
    data: &RunData,
    run: &RunDir,
    options: FitOptions,
    build: impl FnOnce(&Device) -> M,
) -> Result<Trained<M>, TrainError> {
    config.validate()?;
    let world = &options.world;
    // Rank 0 alone prints and writes the run folder.
    let say = Say(if world.is_main() {
        options.verbosity
    } else {
        Verbosity::Quiet
    });
    let devices = Devices::open(config, world)?;
    if world.is_distributed() {
        check_same_run(world, config, data, &devices.plain)?;
    }
    // The model is drawn from the stream `seed` starts.
    devices.plain.seed(config.seed);
    // The config's per-layer rules reach a user's model too (a zoo model has them already).
    let model = config
        .model
        .apply_layer_rules(build(&devices.autodiff))
        .map_err(|e| TrainError::Config(format!("model.rule_for: {e}")))?;
    initialize(&model);
    let name = model_name::<M>(config);
    let count = parameter_count(&model);
    say.line(format!(
        "model {name} ({} rule): {} parameters ({} feedback values stored, {} buffers); device {}",
        config.model.rule.name(),
        count.forward,
        count.feedback,
        count.buffers,
        config.device
    ));
    if world.is_distributed() {
        say.line(format!(
            "MPI: {} ranks, batch {} per rank ({} per step), rank 0 on {}",
            world.size(),
            config.batch_size,
            world.size() * config.batch_size,
            world.device_name(&config.device)
        ));
    }
    let (mut model, mut optim, mut progress) = start(
        model,
        config.optimizer.init(),
        config,
        run,
        options.resume,
        say,
    )?;
    // The config this run goes on with (a resume may extend `epochs`), written once the
    // checkpoint, if any, has loaded.
    if world.is_main() {
        RunDir::write_atomic(&run.config(), config.to_toml().as_bytes())?;
    }
    let last_epoch = options
        .stop_after
        .map_or(config.epochs, |s| s.min(config.epochs));
    let mut final_model_bytes = None;
    for epoch in progress.epochs_done..last_epoch {
        let trained;
        (model, optim, trained) = train_epoch(
            model,
            optim,
            config,
            data,
            &devices,
            world,
            epoch,
            &mut progress,
            say,
        )?;
        progress.epochs_done = epoch + 1;
        if world.is_distributed() {
            check_same_parameters(world, &model, epoch, |l| say.line(l))?;
        }
        if !world.is_main() {
            continue;
        }
        let m = epoch_metrics(&model, config, data, &devices, epoch, trained)?;
        say.line(epoch_line(&m, config.epochs));
        progress.history.push(m);
        final_model_bytes = Some(save_epoch(&model, &optim, &progress, config, run, say)?);
    }
    if !world.is_main() {
        return Ok(Trained {
            model,
            model_name: name,
            history: progress.history,
        });
    }
    // The last checkpoint's model bytes (the model is not changed after it); serialised here
    // only when this call trained no epoch (a resume with nothing left to do).
    let model_bytes = match final_model_bytes {
        Some(bytes) => bytes,
        None => record_bytes(&model)?,
    };
    RunDir::write_atomic(&run.model(), &model_bytes)?;
    Ok(Trained {
        model,
        model_name: name,
        history: progress.history,
    })
}

/// Initialises every parameter of `model` now, in visiting order, from the stream `config.seed`
/// seeded. Burn initialises a parameter lazily, at its first use; left lazy, a bias first used
/// in step 0's forward would be drawn from that step's stream, after the step's seeding, and a
/// data-parallel run, whose replicas reseed, would draw it differently from a one-device run.
pub(crate) fn initialize<M: burn::module::Module>(model: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// Prints a line unless the run is quiet.
#[derive(Debug, Clone, Copy)]
struct Say(Verbosity);

impl Say {
    fn line(self, line: String) {
        if self.0 == Verbosity::Normal {
            println!("{line}");
        }
    }
}

/// The devices of a run: the one holding the model (plain and autodiff) and the
/// data-parallel replicas after it, each given a copy of the model every step.
struct Devices {
    plain: Device,
    autodiff: Device,
    replicas: Vec<Device>,
}

impl Devices {
    /// The config's devices, `{rank}` and `{local_rank}` in their names replaced by `world`'s
    /// (under MPI, one device a rank).
    fn open(config: &TrainConfig, world: &World) -> Result<Self, TrainError> {
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

/// The model, optimizer and progress to go on from: the run folder's checkpoint when
/// resuming, else the fresh model after the weight mirror's warm-up.
fn start<M: ImageClassifier>(
    mut model: M,
    mut optim: FeedbackOptimizer,
    config: &TrainConfig,
    run: &RunDir,
    resume: bool,
    say: Say,
) -> Result<(M, FeedbackOptimizer, Progress), TrainError> {
    if !resume {
        if config.model.rules().any(|r| r.weight_mirror().is_some()) && config.mirror_warmup > 0 {
            model = mirror_steps(model, config.mirror_warmup);
            say.line(format!(
                "weight-mirror warm-up: {} steps",
                config.mirror_warmup
            ));
        }
        let progress = Progress {
            epochs_done: 0,
            global_step: 0,
            history: Vec::new(),
        };
        return Ok((model, optim, progress));
    }
    let ckpt = checkpoint::read(&run.checkpoint())?;
    let bad = |part: &str, e: String| {
        TrainError::Checkpoint(format!(
            "{}: {part} does not fit this model: {e}",
            run.checkpoint().display()
        ))
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(ckpt.model))
        .map_err(|e| bad("model record", e.to_string()))?;
    model = model
        .try_load_record(record)
        .map_err(|e| bad("model record", e.to_string()))?;
    optim = optim
        .with_bytes(Bytes::from_bytes_vec(ckpt.optimizer))
        .map_err(|e| bad("optimizer state", e))?;
    say.line(format!(
        "resumed from {} after epoch {}",
        run.checkpoint().display(),
        ckpt.progress.epochs_done
    ));
    Ok((model, optim, ckpt.progress))
}

/// What an epoch's steps measured.
struct EpochTrain {
    loss_sum: f64,
    seen: usize,
    right: i64,
    /// The rate of the last step.
    lr: f64,
    seconds: f64,
}

/// One epoch of steps: forward and backward on each batch (split between the replicas),
/// the rules' `B` gradients, the optimizer's step, the mirror's update.
#[allow(clippy::too_many_arguments)]
fn train_epoch<M: ImageClassifier>(
    mut model: M,
    mut optim: FeedbackOptimizer,
    config: &TrainConfig,
    data: &RunData,
    devices: &Devices,
    world: &World,
    epoch: usize,
    progress: &mut Progress,
    say: Say,
) -> Result<(M, FeedbackOptimizer, EpochTrain), TrainError> {
    let criterion = {
        let mut c = CrossEntropyLossConfig::new();
        if let Some(s) = config.label_smoothing {
            c = c.with_smoothing(Some(s));
        }
        c
    };
    let order = permutation(
        data.train.len(),
        config.seed ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
    );
    // This rank's part of every global batch, and each global batch's size.
    let (order, global_sizes) = rank_order(&order, config.batch_size, world.rank(), world.size());
    let steps = global_sizes.len();
    world.take_reduce_stats();
    let loader = OrderedLoader::new(
        &data.train,
        &order,
        config.batch_size,
        epoch as u64,
        &devices.autodiff,
        config.workers,
    );
    let start = Instant::now();
    let mut bar = StepProgress::new(say.0, epoch, config.epochs, steps, world.is_distributed());
    // What the model draws each step: brSF its `B` in the backward pass, the weight mirror
    // its noise in the update. Only then is a device seeded in the step (seeding a fused
    // backend waits for its queue).
    let rules = wt_nn::model_rules(&model);
    let draws = StepDraws {
        backward: rules
            .iter()
            .any(|r| matches!(r, wt_core::Rule::BatchRandomSignSymmetry(_))),
        mirror: rules.iter().any(|r| r.weight_mirror().is_some()),
    };
    // Σ loss·n and the top-1 count of the epoch's steps, on the main device; read only when
    // the progress shows them (and at the end).
    let mut sums: Option<Tensor<1>> = None;
    // What the last read saw: Σ loss·n and the top-1 count (the last step is always read).
    let (mut seen, mut read) = (0usize, [0.0f64; 2]);
    let mut lr = config.optimizer.lr;
    for (step, batch) in loader.enumerate() {
        let batch = batch?;
        lr = config
            .schedule
            .lr(config.optimizer.lr, epoch, step, steps, config.epochs);
        let seed = step_seed(config.seed, progress.global_step);
        let n = batch.targets.dims()[0];
        // This rank's share of the global batch (1 in one process).
        let share = n as f64 / global_sizes[step] as f64;
        let (ad, replicas) = (&devices.autodiff, &devices.replicas);
        let (mut grads, these) =
            shard_gradients(&model, ad, replicas, &criterion, batch, share, seed, draws)?;
        if world.is_distributed() {
            // One device a rank: its gradients summed over the ranks.
            let (g, d) = grads.grads.pop().expect("one shard a rank");
            let g = world.all_reduce_gradients(&model, g, &d);
            grads.grads.push((g, d));
        }
        // The mirror's noise comes from its own per-step stream, whatever the shards drew.
        if draws.mirror {
            devices
                .plain
                .seed(seed.rotate_left(32) ^ 0x5851_F42D_4C95_7F2D);
        }
        // The shards' gradients are summed on the main device, so the whole step (Burn's
        // update, the rules' `B` gradients, the mirror) runs there and leaves every parameter
        // and optimizer state there for the next step.
        model = optim.step_multi(lr, model, grads);
        progress.global_step += 1;
        seen += n;
        let sum = add_to(sums, these);
        sums = Some(sum.clone());
        if bar.due(step + 1) {
            let v = read_values(sum);
            read = [v[0], v[1]];
            if !v[0].is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step,
                    loss: v[0] / seen as f64,
                });
            }
            bar.update(step + 1, v[0] / seen as f64, v[1] / seen as f64, lr, seen);
        } else {
            bar.advance(step + 1);
        }
    }
    bar.finish();
    // The whole global batch's sums: every rank's (its last step is always read).
    let [loss_sum, right, seen] = world
        .all_reduce_sum(&[read[0], read[1], seen as f64])
        .try_into()
        .expect("three sums");
    let seconds = start.elapsed().as_secs_f64();
    if world.is_distributed() {
        let r = world.take_reduce_stats();
        say.line(format!(
            "epoch {}: rank 0 spent {:.2} s of its {seconds:.2} s of steps in gradient \
             all-reduce ({:.1} %), {} values ({:.2} MB) a step",
            epoch + 1,
            r.seconds,
            100.0 * r.seconds / seconds.max(1e-9),
            r.values / r.calls.max(1),
            (4 * r.values / r.calls.max(1)) as f64 / 1e6
        ));
    }
    let trained = EpochTrain {
        loss_sum,
        seen: seen as usize,
        right: right.round() as i64,
        lr,
        seconds,
    };
    Ok((model, optim, trained))
}

/// Per-step random draws of a model's rules.
#[derive(Debug, Clone, Copy)]
struct StepDraws {
    /// brSF draws `|R|` in the backward pass.
    backward: bool,
    /// The weight mirror draws its noise in the update.
    mirror: bool,
}

/// Progress within an epoch: an `indicatif` bar on a terminal, else a line every 30 s (and
/// at the end), so a log file shows the run moving. The loop reads the device only when
/// [`due`](Self::due) says a step is shown.
struct StepProgress {
    bar: Option<ProgressBar>,
    verbosity: Verbosity,
    head: String,
    steps: usize,
    start: Instant,
    last_line: Instant,
}

impl StepProgress {
    /// `lines_only`: lines even on a terminal (an MPI launcher hands its ranks a terminal
    /// whose output it forwards into logs).
    fn new(
        verbosity: Verbosity,
        epoch: usize,
        epochs: usize,
        steps: usize,
        lines_only: bool,
    ) -> Self {
        let head = format!("epoch {}/{epochs}", epoch + 1);
        let terminal = std::io::stdout().is_terminal() && !lines_only;
        let bar = (verbosity == Verbosity::Normal && terminal).then(|| {
            let style =
                ProgressStyle::with_template("{prefix} {bar:24} {pos}/{len} {msg}, eta {eta}")
                    .expect("a valid template");
            let bar = ProgressBar::with_draw_target(
                Some(steps as u64),
                ProgressDrawTarget::stdout_with_hz(4),
            );
            bar.set_style(style);
            bar.set_prefix(head.clone());
            bar
        });
        Self {
            bar,
            verbosity,
            head,
            steps,
            start: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Whether step `done` (1-based) is shown, so the loop reads the loss and accuracy for
    /// it: the last step; on a terminal twice a second; else (log files, `--quiet`) every
    /// 30 s, which also bounds how late a diverged loss is noticed.
    fn due(&self, done: usize) -> bool {
        let every = if self.bar.is_some() { 0.5 } else { 30.0 };
        done == self.steps || self.last_line.elapsed().as_secs_f64() > every
    }

    /// Moves the bar to step `done` without new numbers.
    fn advance(&self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    /// Shows step `done` with the epoch's mean loss and accuracy so far.
    fn update(&mut self, done: usize, loss: f64, accuracy: f64, lr: f64, seen: usize) {
        self.last_line = Instant::now();
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = seen as f64 / elapsed;
        let msg = format!(
            "loss {loss:.4}, accuracy {:.2}%, lr {lr:.4}, {rate:.0} img/s",
            100.0 * accuracy
        );
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg);
                bar.set_position(done as u64);
            }
            None => {
                let eta = elapsed / done as f64 * (self.steps - done) as f64;
                println!(
                    "{} step {done}/{}: {msg}, eta {eta:.0}s",
                    self.head, self.steps
                );
            }
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The epoch's metrics: the training numbers, evaluation on the validation and test
/// splits, each layer's B–W angle and norm ratio, and the error and update angles probed
/// against backprop.
fn epoch_metrics<M: ImageClassifier>(
    model: &M,
    config: &TrainConfig,
    data: &RunData,
    devices: &Devices,
    epoch: usize,
    trained: EpochTrain,
) -> Result<EpochMetrics, TrainError> {
    let valid = model.valid();
    let eval = |split: &DataSplit| {
        let (batch, workers) = (config.eval_batch_size, config.workers);
        evaluate(&valid, split, batch, &devices.plain, workers)
    };
    let validation = data.validation.as_ref().map(eval).transpose()?;
    let test = eval(&data.test)?;
    let angles = if config.error_alignment {
        probe_angles(model, data, config, epoch, &devices.autodiff)?
    } else {
        ProbeAlignment::default()
    };
    let layers = weight_alignment(model)
        .into_iter()
        .map(|l| {
            let probed = angles.layers.iter().find(|a| a.path == l.path);
            LayerMetrics {
                error_angle_deg: probed.map(|a| a.error_angle_deg),
                update_angle_deg: probed.map(|a| a.update_angle_deg),
                path: l.path,
                rule: l.rule.to_string(),
                angle_deg: l.weight.angle_deg,
                norm_ratio: l.weight.norm_ratio,
            }
        })
        .collect();
    let blocks = (angles.blocks.into_iter())
        .map(|b| BlockMetrics {
            path: b.path,
            error_angle_deg: b.error_angle_deg,
        })
        .collect();
    let seen = trained.seen.max(1) as f64;
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr: trained.lr,
        train_loss: trained.loss_sum / seen,
        train_accuracy: trained.right as f64 / seen,
        validation,
        test,
        train_seconds: trained.seconds,
        images_per_s: trained.seen as f64 / trained.seconds,
        layers,
        blocks,
    })
}

/// The epoch's files: the checkpoint first, then the files derived from it (metrics CSV and
/// JSON lines, plots, TensorBoard events). Returns the model's record bytes.
fn save_epoch<M: ImageClassifier>(
    model: &M,
    optim: &FeedbackOptimizer,
    progress: &Progress,
    config: &TrainConfig,
    run: &RunDir,
    say: Say,
) -> Result<Bytes, TrainError> {
    let model_bytes = record_bytes(model)?;
    let optim_bytes = optim.to_bytes().map_err(TrainError::Checkpoint)?;
    checkpoint::write(&run.checkpoint(), progress, &model_bytes, &optim_bytes)?;
    RunDir::write_atomic(
        &run.metrics_csv(),
        metrics::to_csv(&progress.history).as_bytes(),
    )?;
    RunDir::write_atomic(
        &run.metrics_jsonl(),
        metrics::to_json_lines(&progress.history).as_bytes(),
    )?;
    if let Err(e) = plot::draw_all(&progress.history, &run.plots()) {
        say.line(format!("warning: plots not drawn: {e}"));
    }
    if let Some(dir) = &config.tensorboard {
        tensorboard::write(dir, &run.name(), &progress.history)?;
    }
    Ok(model_bytes)
}

/// The model's record as burnpack bytes (what `save_file` writes and `load_file` reads).
pub(crate) fn record_bytes<M: burn::module::Module>(model: &M) -> Result<Bytes, TrainError> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| TrainError::Checkpoint(format!("serialising the model: {e}")))
}

/// Each layer's error and update angles against backprop, averaged over the run's probe
/// batches: batch `k` is training images `k·P .. (k+1)·P`, `P = min(batch size, 128)`, the same
/// images every epoch (augmented with the epoch's seed). The probe runs training-mode forwards,
/// which move batch norm's running statistics; those live behind shared handles that `clone`
/// keeps, so it runs on a copy with its own (`valid().train()` rebuilds every running state):
/// the model that was evaluated is the one checkpointed and saved.
fn probe_angles<M: ImageClassifier>(
    model: &M,
    data: &RunData,
    config: &TrainConfig,
    epoch: usize,
    device: &Device,
) -> Result<ProbeAlignment, TrainError> {
    let per_batch = config.batch_size.min(128);
    let probe_model = model.valid().train();
    let criterion = CrossEntropyLossConfig::new().init(device);
    let mut sum: Option<ProbeAlignment> = None;
    let mut batches = 0;
    for k in 0..config.alignment_batches {
        let start = k * per_batch;
        let end = data.train.len().min(start + per_batch);
        if start >= end {
            break;
        }
        let items: Vec<usize> = (start..end).collect();
        let batch = data
            .train
            .batch(epoch as u64, &items, device)
            .map_err(TrainError::Batch)?;
        if batch.targets.dims()[0] == 0 {
            continue; // every image of the probe batch was skipped as undecodable
        }
        let angles = gradient_alignment(&probe_model, |m: &M| {
            criterion.forward(m.forward(batch.images.clone()), batch.targets.clone())
        });
        match &mut sum {
            None => sum = Some(angles),
            Some(sum) => {
                for (s, a) in sum.layers.iter_mut().zip(angles.layers) {
                    s.error_angle_deg += a.error_angle_deg;
                    s.update_angle_deg += a.update_angle_deg;
                }
                for (s, a) in sum.blocks.iter_mut().zip(angles.blocks) {
                    s.error_angle_deg += a.error_angle_deg;
                }
            }
        }
        batches += 1;
    }
    let mut mean = sum.unwrap_or_default();
    let n = batches.max(1) as f64;
    for a in &mut mean.layers {
        a.error_angle_deg /= n;
        a.update_angle_deg /= n;
    }
    for b in &mut mean.blocks {
        b.error_angle_deg /= n;
    }
    Ok(mean)
}

/// One line summarising an epoch.
pub fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let val = m
        .validation
        .map(|v| format!(", validation {:.2}%", 100.0 * v.top1))
        .unwrap_or_default();
    let angles = if m.layers.len() <= EPOCH_LINE_LAYERS {
        let each: Vec<String> = (m.layers.iter())
            .map(|l| match l.error_angle_deg {
                Some(e) => format!("{} {}/{}", l.path, degrees(l.angle_deg), degrees(e)),
                None => format!("{} {}", l.path, degrees(l.angle_deg)),
            })
            .collect();
        each.join(", ")
    } else {
        // A deep net's layers do not fit a line: their spread, the list is in metrics.csv.
        let bw = spread(m.layers.iter().map(|l| l.angle_deg));
        let error = spread(m.layers.iter().filter_map(|l| l.error_angle_deg));
        format!(
            "{} layers, B-W {bw}, error {error} (per layer: metrics.csv)",
            m.layers.len()
        )
    };
    format!(
        "epoch {}/{epochs}: train loss {:.4}, train {:.2}%{val}, test {:.2}% (top-5 {:.2}%), {:.1}s, {:.0} img/s; B-W / error angles: {}",
        m.epoch,
        m.train_loss,
        100.0 * m.train_accuracy,
        100.0 * m.test.top1,
        100.0 * m.test.top5,
        m.train_seconds,
        m.images_per_s,
        angles
    )
}

/// `12.3°`, or `–` for an angle the rule does not define (NaN: a conv layer's direct matrix,
/// which no product of the layers above is formed for).
fn degrees(angle: f64) -> String {
    if angle.is_finite() {
        format!("{angle:.1}°")
    } else {
        "–".to_string()
    }
}

/// Layers the epoch line lists one by one; deeper nets get [`spread`]s.
const EPOCH_LINE_LAYERS: usize = 8;

/// `median m° (a–b°)` of the finite values, or `–` when there are none.
fn spread(values: impl Iterator<Item = f64>) -> String {
    metrics::spread(values).map_or_else(
        || "–".to_string(),
        |s| format!("median {:.1}° ({:.1}–{:.1}°)", s.median, s.min, s.max),
    )
}

/// The JSON line examples end with: rule, model, epochs, test accuracy, per-layer angles.
pub fn final_json<M>(config: &TrainConfig, trained: &Trained<M>) -> String {
    let last = trained.history.last();
    // Rounded as the line is read by people and scripts alike: accuracies to 1e-4, angles to
    // 1e-2 degrees.
    let round = |x: f64, digits: i32| (x * 10f64.powi(digits)).round() / 10f64.powi(digits);
    let layers = last.map_or(&[][..], |m| &m.layers[..]);
    serde_json::json!({
        "rule": config.model.rule.name(),
        "model": trained.model_name,
        "epochs": trained.history.len(),
        "test_accuracy": round(last.map_or(0.0, |m| m.test.top1), 4),
        "test_top5": round(last.map_or(0.0, |m| m.test.top5), 4),
        "layers": layers.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(),
        "angles_deg": layers.iter().map(|l| round(l.angle_deg, 2)).collect::<Vec<_>>(),
    })
    .to_string()
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
fn shard_gradients<M: ImageClassifier>(
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
