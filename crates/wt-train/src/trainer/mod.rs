//! [`fit`]: the training loop every example uses, for any [`ImageClassifier`] and any rule,
//! and [`evaluate`].
//!
//! Each step: forward, cross-entropy, backward, `B` gradients of the rules
//! ([`add_feedback_gradients`](wt_nn::add_feedback_gradients)), optimizer step at the scheduled rate, weight-mirror update
//! ([`mirror_update`](wt_nn::mirror_update)). Each epoch: evaluation
//! (validation, test: loss, top-1, top-5), per-layer B–W angle and ‖B‖/‖W‖, error angle vs
//! backprop on one batch, then an atomic checkpoint and the metrics files. Everything random
//! (initialisation, shuffling, augmentation, the rules' draws) is a function of the seed, the
//! epoch and the step, so a resumed run repeats an uninterrupted one bit for bit.
//!
//! This module holds the loop itself (start or resume, the epoch's steps, the epoch's
//! metrics and files); its parts live beside it: what it prints while it runs
//! (`progress`: [`Verbosity`]), the lines it reports (`report`: [`epoch_line`],
//! [`final_json`]), and the devices a step is split over (`data_parallel`). The optimizer a
//! config asks for is built in [`feedback_optimizer`](crate::feedback_optimizer)
//! ([`optimizer`]).

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Bytes, Device, Int, Tensor};
use wt_models::ImageClassifier;
use wt_nn::{ProbeAlignment, gradient_alignment, mirror_steps, weight_alignment};

use crate::checkpoint::{self, Progress};
use crate::config::TrainConfig;
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

mod data_parallel;
mod progress;
mod report;

use data_parallel::{Devices, StepDraws, shard_gradients};
use progress::{Say, StepProgress};

pub use crate::feedback_optimizer::optimizer;
pub use progress::Verbosity;
pub use report::{epoch_line, final_json};

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
    // Flex's kernel choice holds for this run's passes (all on this thread) and no longer.
    config
        .kernels
        .run(|| fit_with_kernels(config, data, run, options, build))
}

/// [`fit`] with the config's kernel choice in force.
fn fit_with_kernels<M: ImageClassifier>(
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
        None => checkpoint::record_bytes(&model)?,
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

/// The model, optimizer and progress to go on from: the run folder's checkpoint when
/// resuming, else the fresh model after the weight mirror's warm-up.
fn start<M: ImageClassifier>(
    mut model: M,
    optim: FeedbackOptimizer,
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
    let (model, optim, progress) = checkpoint::restore(&run.checkpoint(), model, optim)?;
    say.line(format!(
        "resumed from {} after epoch {}",
        run.checkpoint().display(),
        progress.epochs_done
    ));
    Ok((model, optim, progress))
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
        // Kunin et al.'s coefficients follow the epoch, step by step.
        wt_core::set_alignment_epoch(epoch as f64 + step as f64 / steps.max(1) as f64);
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
        // A model that needs `direct_error` and lacks it stops here, before any update.
        wt_core::take_missing_output_error().map_err(|e| TrainError::Config(e.to_string()))?;
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
    let model_bytes = checkpoint::save(&run.checkpoint(), progress, model, optim)?;
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
            let logits = m.forward(batch.images.clone());
            let n = batch.targets.dims()[0];
            wt_core::direct_targets(batch.targets.clone(), 1.0 / n.max(1) as f64);
            criterion.forward(logits, batch.targets.clone())
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
