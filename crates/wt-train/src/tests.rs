//! End-to-end tests of the training loop on small subsets of the real data.

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use wt_core::Named;
use wt_models::{Architecture, ImageClassifier, ModelConfig, Rule};

use crate::*;

use wt_data::testdata::shared_data;

fn temp_run(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wt-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A small MNIST run: `subset` training images, 500 test images, an MLP 784-64-10.
fn mnist_config(rule: &str, epochs: usize, subset: usize) -> TrainConfig {
    let mut model = ModelConfig::new(Architecture::Mlp, 10, 1, 28, rule.parse().unwrap());
    model.hidden = vec![64];
    let data = DataConfig::new(DatasetKind::Mnist, shared_data("mnist"))
        .with_train_subset(Some(subset))
        .with_test_subset(Some(500))
        .with_augment(false);
    TrainConfig::new(model, data)
        .with_optimizer(OptimizerConfig::sgd(0.02, 0.9, 1e-4))
        .with_epochs(epochs)
        .with_batch_size(32)
        .with_eval_batch_size(250)
        .with_seed(11)
        .with_mirror_warmup(20)
        .with_alignment_batches(2)
}

/// The backends' random generators are per process: tests that train take turns, so that
/// one test's draws do not interleave with another's (a run is deterministic given its seed
/// only when it is the one drawing).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    wt_core::device::device_test_lock()
}

fn quiet() -> FitOptions {
    FitOptions {
        verbosity: Verbosity::Quiet,
        ..FitOptions::default()
    }
}

fn resume() -> FitOptions {
    FitOptions {
        resume: true,
        ..quiet()
    }
}

/// Every float tensor of a module, flattened, in visiting order.
fn values(model: &impl Module) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().into_data().iter::<f32>().collect());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// Trains `config` into a fresh run folder and checks that its first epoch took the test loss
/// below 0.8× and the accuracy up by 0.3 against the same initial model (same seed, before any
/// step); returns the result, the run folder and its path (the caller removes it).
fn one_epoch_lowers_the_test_loss(
    config: &TrainConfig,
    tag: &str,
) -> (Trained<wt_models::Model>, RunDir, PathBuf) {
    one_epoch_trains(config, tag, true)
}

/// [`one_epoch_lowers_the_test_loss`], with the loss left unchecked when `loss` is false.
fn one_epoch_trains(
    config: &TrainConfig,
    tag: &str,
    loss: bool,
) -> (Trained<wt_models::Model>, RunDir, PathBuf) {
    let data = RunData::open(&config.data, config.seed).unwrap();
    let device = Device::flex();
    device.seed(config.seed);
    let before = evaluate(&config.model.init(&device), &data.test, 250, &device, 0).unwrap();
    let dir = temp_run(&format!("epoch-{tag}"));
    let run = RunDir::open(&dir, RunMode::New).unwrap();
    let trained = fit(config, &data, &run, quiet(), |d| config.model.init(d)).unwrap();
    let after = trained.history[0].test;
    assert!(
        (after.loss < 0.8 * before.loss || !loss) && after.top1 > before.top1 + 0.3,
        "{tag}: test loss {:.3} → {:.3}, accuracy {:.3} → {:.3}",
        before.loss,
        after.loss,
        before.top1,
        after.top1
    );
    (trained, run, dir)
}

#[test]
fn one_epoch_on_real_mnist_lowers_the_test_loss_for_every_rule() {
    let _serial = serial();
    // Every rule of the table (derived from the enum: a new rule is tested here at once).
    for rule in Rule::names() {
        let mut config = mnist_config(rule, 1, 2000);
        let tb = std::env::temp_dir().join(format!("wt-tb-{rule}-{}", std::process::id()));
        config.tensorboard = (rule == "kp").then(|| tb.clone());
        // DRTP's target signal never shrinks, so on ReLU layers the features (and logits)
        // grow step after step: its test loss rises while its accuracy climbs (measured
        // here: loss 2.32 → 14.9, accuracy 12 % → 68 %). Its accuracy is checked.
        let (trained, run, dir) = one_epoch_trains(&config, rule, rule != "drtp");
        if rule == "kp" {
            // The run's TensorBoard file: the version event and one for the epoch.
            let events = crate::tensorboard::event_path(&tb, &run.name());
            let bytes = std::fs::read(&events).unwrap();
            assert_eq!(
                bytes,
                crate::tensorboard::event_file_at(&trained.history, &bytes)
            );
            std::fs::remove_dir_all(&tb).unwrap();
        }
        let layers = &trained.history[0].layers;
        assert_eq!(layers.len(), 2);
        assert!(layers.iter().all(|l| l.rule == rule
            && l.error_angle_deg.is_some()
            && l.update_angle_deg.is_some()));
        // The last layer learns from the true error under every rule: its update is
        // backprop's. Under BP every angle is 0; under FA the first layer's update is not.
        let update = |i: usize| layers[i].update_angle_deg.unwrap();
        assert!(
            update(1) < 0.5,
            "{rule}: last layer's update angle {}",
            update(1)
        );
        match rule {
            "bp" => assert!(update(0) < 0.5 && layers[0].error_angle_deg.unwrap() < 0.5),
            "fa" | "dfa" | "dkp" | "drtp" => {
                assert!(update(0) > 5.0, "{rule}'s first update angle {}", update(0))
            }
            _ => {}
        }
        // The rules whose B learns move it toward W: a random B starts at about 90° from W
        // (FA's first layer ends the epoch at 89.5°); measured here: KP 63.9°, SA 83.7°,
        // AA 70.4°, IA 74.5°.
        if matches!(rule, "kp" | "sa" | "aa" | "ia") {
            let angle = layers[0].angle_deg;
            assert!(angle < 85.0, "{rule}: first layer's B–W angle {angle}°");
        }
        for f in [
            run.config(),
            run.checkpoint(),
            run.metrics_csv(),
            run.metrics_jsonl(),
            run.model(),
        ] {
            assert!(f.is_file(), "{rule}: {} missing", f.display());
        }
        assert!(run.plots().join("angles.png").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The error-angle probe (training-mode forwards, after the evaluation) leaves the model as
/// it was evaluated: the saved `model.bpk`, reloaded and evaluated, gives the logged test
/// loss and accuracy bit for bit. ResNet-20, whose batch norms keep running statistics.
#[test]
fn the_error_angle_probe_leaves_the_saved_model_as_evaluated() {
    let _serial = serial();
    let mut config = mnist_config("fa", 1, 128);
    config.model = ModelConfig::new(Architecture::Resnet20, 10, 3, 32, "fa".parse().unwrap());
    config.data.dataset = DatasetKind::Cifar10;
    config.data.dir = shared_data("cifar-10-approx");
    config.data.test_subset = Some(100);
    config.eval_batch_size = 100;
    assert!(config.error_alignment);
    let data = RunData::open(&config.data, config.seed).unwrap();
    let dir = temp_run("probe");
    let run = RunDir::open(&dir, RunMode::New).unwrap();
    let trained = fit(&config, &data, &run, quiet(), |d| config.model.init(d)).unwrap();
    let logged = trained.history[0].test;
    assert!(
        trained.history[0]
            .layers
            .iter()
            .all(|l| l.error_angle_deg.is_some())
    );
    // ResNet-20's 9 blocks report the error at their inputs, shortcut included.
    let blocks: Vec<&str> = trained.history[0]
        .blocks
        .iter()
        .map(|b| b.path.as_str())
        .collect();
    assert_eq!(blocks.len(), 9, "{blocks:?}");
    assert!(blocks[0].ends_with("blocks.0"), "{blocks:?}");
    let device = Device::flex();
    let reloaded = config.model.init(&device).load_file(run.model());
    let again = evaluate(&reloaded, &data.test, 100, &device, 0).unwrap();
    assert_eq!(
        (again.loss.to_bits(), again.top1.to_bits()),
        (logged.loss.to_bits(), logged.top1.to_bits()),
        "reloaded model: {again:?}, logged: {logged:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--optimizer bm-sgd` trains: one epoch of the MNIST MLP with uSF (the pairing of
/// willwx/sign-symmetry) lowers the test loss.
#[test]
fn batch_manhattan_sgd_trains_the_mlp() {
    let _serial = serial();
    let mut config = mnist_config("usf", 1, 2000);
    config.optimizer.kind = OptimizerKind::BmSgd;
    config.optimizer.lr = 1e-3;
    config.error_alignment = false;
    let (_, _, dir) = one_epoch_lowers_the_test_loss(&config, "bm-sgd");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_after_interrupt_gives_bit_identical_weights() {
    let _serial = serial();
    // WM: momentum state, mirror noise every step, a warm-up; ResNet-20 with KP: batch-norm
    // running statistics and augmentation.
    let mut cifar = mnist_config("kp", 2, 256);
    cifar.model = ModelConfig::new(Architecture::Resnet20, 10, 3, 32, "kp".parse().unwrap());
    cifar.data.dataset = DatasetKind::Cifar10;
    cifar.data.dir = shared_data("cifar-10-approx");
    cifar.data.augment = true;
    cifar.data.test_subset = Some(100);
    cifar.error_alignment = false;
    for config in [mnist_config("wm", 2, 512), cifar] {
        let name = config.model.architecture.name();
        let data = RunData::open(&config.data, config.seed).unwrap();
        let straight_dir = temp_run(&format!("straight-{name}"));
        let straight = RunDir::open(&straight_dir, RunMode::New).unwrap();
        let a = fit(&config, &data, &straight, quiet(), |d| config.model.init(d)).unwrap();

        // The same run interrupted after epoch 1...
        let resumed_dir = temp_run(&format!("resumed-{name}"));
        let run = RunDir::open(&resumed_dir, RunMode::New).unwrap();
        let interrupted = FitOptions {
            stop_after: Some(1),
            ..quiet()
        };
        fit(&config, &data, &run, interrupted, |d| config.model.init(d)).unwrap();
        // ...and resumed with the full run's config, from a model built with another seed.
        let run = RunDir::open(&resumed_dir, RunMode::Resume).unwrap();
        let b = fit(&config, &data, &run, resume(), |d| {
            d.seed(999);
            config.model.init(d)
        })
        .unwrap();

        assert_eq!(a.history.len(), 2);
        assert_eq!(b.history.len(), 2);
        let (va, vb) = (values(&a.model), values(&b.model));
        assert_eq!(va.len(), vb.len());
        assert!(
            va == vb,
            "{name}: resumed weights differ from the uninterrupted run"
        );
        // Epoch metrics come back from the checkpoint's JSON; serde_json's float parsing may
        // be one ulp off (its exact `float_roundtrip` mode is not enabled), the weights are
        // binary and exact.
        let close = |p: f64, q: f64| (p - q).abs() <= 1e-12 * p.abs().max(1.0);
        for (x, y) in a.history.iter().zip(&b.history) {
            assert!(
                close(x.train_loss, y.train_loss)
                    && close(x.test.loss, y.test.loss)
                    && x.test.top1 == y.test.top1,
                "{name}: epoch {} metrics {:?} vs {:?}",
                x.epoch,
                (x.train_loss, x.test),
                (y.train_loss, y.test)
            );
        }
        // The resumed model predicts exactly as the uninterrupted one.
        let batch = data.test.batch(0, &[0, 1, 2], &Device::flex()).unwrap();
        let (pa, pb) = (
            a.model.valid().forward(batch.images.clone()),
            b.model.valid().forward(batch.images),
        );
        pa.into_data().assert_eq(&pb.into_data(), true);
        std::fs::remove_dir_all(&straight_dir).unwrap();
        std::fs::remove_dir_all(&resumed_dir).unwrap();
    }
}

#[test]
fn divergence_names_epoch_and_step_and_keeps_the_last_checkpoint() {
    let _serial = serial();
    let mut config = mnist_config("fa", 3, 512);
    config.error_alignment = false;
    let data = RunData::open(&config.data, config.seed).unwrap();
    let dir = temp_run("diverge");
    let run = RunDir::open(&dir, RunMode::New).unwrap();
    fit(
        &TrainConfig {
            epochs: 1,
            ..config.clone()
        },
        &data,
        &run,
        quiet(),
        |d| config.model.init(d),
    )
    .unwrap();
    let saved = std::fs::read(run.checkpoint()).unwrap();
    // A learning rate no network survives.
    config.optimizer.lr = 1e30;
    config.optimizer.momentum = 0.0;
    let run = RunDir::open(&dir, RunMode::Resume).unwrap();
    let err = fit(&config, &data, &run, resume(), |d| config.model.init(d)).unwrap_err();
    match &err {
        TrainError::Diverged { epoch, step, loss } => {
            assert_eq!(*epoch, 2, "{err}");
            assert!(*step < 16 && !loss.is_finite(), "{err}");
        }
        other => panic!("expected divergence, got {other}"),
    }
    assert!(err.to_string().contains("epoch 2, step"), "{err}");
    assert_eq!(
        std::fs::read(run.checkpoint()).unwrap(),
        saved,
        "the last good checkpoint is kept"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_for_another_model_is_a_clear_error() {
    let _serial = serial();
    let config = mnist_config("fa", 1, 128);
    let data = RunData::open(&config.data, config.seed).unwrap();
    let dir = temp_run("mismatch");
    let run = RunDir::open(&dir, RunMode::New).unwrap();
    fit(&config, &data, &run, quiet(), |d| config.model.init(d)).unwrap();
    let mut wider = config.clone();
    wider.model.hidden = vec![65];
    wider.epochs = 2;
    let run = RunDir::open(&dir, RunMode::Resume).unwrap();
    let err = fit(&wider, &data, &run, resume(), |d| wider.model.init(d))
        .expect_err("a 784-65-10 model cannot load a 784-64-10 checkpoint");
    let msg = err.to_string();
    assert!(
        msg.contains("checkpoint.wtck") && msg.contains("does not fit"),
        "{msg}"
    );
    // The refused resume leaves the run's config as it was.
    assert_eq!(TrainConfig::load(&run.config()).unwrap(), config);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ImageClassifier` is all the loop needs: a model defined here trains like a zoo model.
#[test]
fn a_user_model_trains_through_the_same_loop() {
    let _serial = serial();
    use burn::tensor::activation::relu;
    use wt_nn::{FeedbackLinear, FeedbackLinearConfig};

    #[derive(Module, Debug)]
    struct Tiny {
        a: FeedbackLinear,
        b: FeedbackLinear,
    }
    impl ImageClassifier for Tiny {
        fn forward(&self, x: Tensor<4>) -> Tensor<2> {
            self.b.forward(relu(self.a.forward(x.flatten(1, 3))))
        }
    }
    let config = mnist_config("kp", 1, 1000);
    let data = RunData::open(&config.data, config.seed).unwrap();
    let dir = temp_run("user");
    let run = RunDir::open(&dir, RunMode::New).unwrap();
    let rule = config.model.rule;
    let trained = fit(&config, &data, &run, quiet(), |d| Tiny {
        a: FeedbackLinearConfig::new(784, 32).with_rule(rule).init(d),
        b: FeedbackLinearConfig::new(32, 10).with_rule(rule).init(d),
    })
    .unwrap();
    let m = &trained.history[0];
    assert!(m.test.top1 > 0.4, "{}", m.test.top1);
    let paths: Vec<&str> = m.layers.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, ["a", "b"]);
    let json = final_json(&config, &trained);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["rule"], "kp");
    assert_eq!(v["model"], "Tiny");
    assert_eq!(v["angles_deg"].as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What data-parallel training needs from the rules: replicas that compute gradients on their
/// own shards (a gradient-mode WM with its own noise, brSF with its own draws), step with the
/// shards' gradients summed by Burn (`MultiGradientsParams`) and then run the direct mirror update with the step's shared seed (as
/// `fit` does) end with identical `W` and `B`; each on its own shard's gradients they drift
/// apart.
#[test]
fn replicas_stepping_with_averaged_gradients_keep_identical_weights_and_feedback() {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{GradientsParams, MultiGradientsParams};
    use burn::tensor::{Distribution, Int, TensorData};
    use wt_core::{MirrorUpdate, Rule, WeightMirror};
    use wt_nn::{add_feedback_gradients, mirror_update};

    /// A replica's own copy of `grads` (same parameter ids).
    fn copy(model: &impl Module, grads: &GradientsParams) -> GradientsParams {
        struct Copy<'a>(&'a GradientsParams, GradientsParams);
        impl ModuleVisitor for Copy<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(p.id) {
                    self.1.register(p.id, g);
                }
            }
        }
        let mut c = Copy(grads, GradientsParams::new());
        model.visit(&mut c);
        c.1
    }

    let _serial = serial();
    let device = Device::flex().autodiff();
    let sgd = mnist_config("kp", 1, 1).optimizer;
    for name in ["kp", "wm", "wm-gradient", "brsf", "fa"] {
        let rule = match name {
            "wm-gradient" => Rule::WeightMirror(WeightMirror {
                update: MirrorUpdate::Gradient,
                ..WeightMirror::default()
            }),
            _ => name.parse().unwrap(),
        };
        device.seed(5);
        let model = ModelConfig::new(Architecture::Lenet, 10, 1, 28, rule).init(&device);
        let initial = values(&model);
        let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let labels: Vec<i64> = (0..64).map(|i| (i * 7) % 10).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [64]), &device);
        let criterion = CrossEntropyLossConfig::new().init(&device);
        for all_reduce in [true, false] {
            let mut replicas = [model.clone(), model.clone()];
            let mut optims = [
                feedback_optimizer::optimizer(&sgd),
                feedback_optimizer::optimizer(&sgd),
            ];
            for step in 0..3u64 {
                let grads: Vec<GradientsParams> = replicas
                    .iter()
                    .enumerate()
                    .map(|(r, m)| {
                        device.seed(100 + 2 * step + r as u64); // each replica's own draws
                        let shard = 32 * r..32 * (r + 1);
                        let loss = criterion.forward(
                            m.forward(x.clone().slice(shard.clone())),
                            y.clone().slice(shard),
                        );
                        let mut g = GradientsParams::from_grads(loss.backward(), m);
                        add_feedback_gradients(m, &mut g, 0.5);
                        g
                    })
                    .collect();
                for (r, (m, o)) in replicas.iter_mut().zip(optims.iter_mut()).enumerate() {
                    *m = if all_reduce {
                        // Burn's sum of the shards' gradients, as `fit` steps (step_multi).
                        let all = MultiGradientsParams {
                            grads: grads.iter().map(|g| (copy(m, g), device.clone())).collect(),
                        };
                        o.step_multi(0.05, m.clone(), all)
                    } else {
                        o.step(0.05, m.clone(), copy(m, &grads[r]))
                    };
                    device.seed(1000 + step); // the step's seed, shared by the replicas
                    *m = mirror_update(m.clone());
                }
            }
            let (a, b) = (values(&replicas[0]), values(&replicas[1]));
            if all_reduce {
                assert!(a == b, "{name}: replicas differ after all-reduced steps");
                assert!(a != initial, "{name}: nothing was trained");
            } else {
                assert!(
                    a != b,
                    "{name}: replicas on different shards should drift apart"
                );
            }
        }
    }
}

/// The device pairs data-parallel tests run on: two handles of the one Flex device (nothing
/// moves), and where wgpu works (always in CI), `wgpu` and `wgpu:cpu`: two device ids over
/// the one software adapter, two CubeCL servers, so tensors really move between them.
fn device_pairs() -> Vec<[&'static str; 2]> {
    let mut pairs = vec![["flex", "flex"]];
    if wt_core::device::test_devices()
        .iter()
        .any(|(name, _)| *name == "wgpu")
    {
        pairs.push(["wgpu", "wgpu:cpu"]);
    }
    pairs
}

/// Largest change between two snapshots of a model's values.
fn largest_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let mut worst: f32 = 0.0;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (x, y) in x.iter().zip(y) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

/// Data-parallel training (`devices`) computes the whole batch's gradient: two devices (with
/// unequal shards of 16 and 17 images) end where one device ends, up to float summation order,
/// for a fixed `B` (FA), a drawn one (brSF: every shard draws the `B` one device draws), a
/// learned one (KP, the mirror: the first device draws the mirror noise a single-device run
/// draws) and the direct rule; every parameter and optimizer state stays on the first device,
/// so the nine steps after the first run too.
#[test]
fn two_devices_train_like_one() {
    let _serial = serial();
    for [first, second] in device_pairs() {
        for rule in ["bp", "fa", "brsf", "kp", "wm", "dfa"] {
            // Ten steps of 33 images, shards of 16 and 17.
            let mut config = mnist_config(rule, 1, 330);
            config.batch_size = 33;
            config.error_alignment = false;
            config.device = first.into();
            let data = RunData::open(&config.data, config.seed).unwrap();
            let train = |config: &TrainConfig, tag: &str| {
                let dir = temp_run(&format!("ddp-{rule}-{tag}"));
                let run = RunDir::open(&dir, RunMode::New).unwrap();
                let trained = fit(config, &data, &run, quiet(), |d| config.model.init(d)).unwrap();
                std::fs::remove_dir_all(&dir).unwrap();
                (values(&trained.model), trained.history[0].train_loss)
            };
            let (one, loss_one) = train(&config, "one");
            let two_config = TrainConfig {
                devices: vec![first.into(), second.into()],
                ..config.clone()
            };
            let (two, loss_two) = train(&two_config, "two");
            let initial = values(&config.model.init(&Device::flex()));
            let moved = largest_difference(&one, &initial);
            let worst = largest_difference(&one, &two);
            let on = format!("{rule} on {first},{second}");
            assert!(moved > 1e-3, "{on}: training moved no weight");
            assert!(
                worst < 1e-4,
                "{on}: two devices differ from one by {worst} (training moved weights by {moved})"
            );
            assert!(
                (loss_one - loss_two).abs() < 1e-4 * loss_one,
                "{on}: train loss {loss_one} on one device, {loss_two} on two"
            );
        }
    }
}

/// A data-parallel run stopped after an epoch (as a killed run leaves its folder) and resumed
/// ends bit for bit where the uninterrupted run ends.
#[test]
fn a_resumed_data_parallel_run_matches_the_uninterrupted_one() {
    let _serial = serial();
    for [first, second] in device_pairs() {
        for rule in ["kp", "brsf"] {
            let mut config = mnist_config(rule, 2, 132);
            config.batch_size = 33;
            config.error_alignment = false;
            config.device = first.into();
            config.devices = vec![first.into(), second.into()];
            let data = RunData::open(&config.data, config.seed).unwrap();
            let init = |d: &Device| config.model.init(d);
            let dir = temp_run(&format!("ddp-resume-{rule}-whole"));
            let run = RunDir::open(&dir, RunMode::New).unwrap();
            let whole = values(&fit(&config, &data, &run, quiet(), init).unwrap().model);
            std::fs::remove_dir_all(&dir).unwrap();
            let dir = temp_run(&format!("ddp-resume-{rule}-cut"));
            let run = RunDir::open(&dir, RunMode::New).unwrap();
            let stop = FitOptions {
                stop_after: Some(1),
                ..quiet()
            };
            fit(&config, &data, &run, stop, init).unwrap();
            let run = RunDir::open(&dir, RunMode::Resume).unwrap();
            let resumed = values(&fit(&config, &data, &run, resume(), init).unwrap().model);
            std::fs::remove_dir_all(&dir).unwrap();
            assert!(
                whole == resumed,
                "{rule} on {first},{second}: the resumed run differs by {}",
                largest_difference(&whole, &resumed)
            );
        }
    }
}

/// The step loop reads the device only when the progress shows numbers: a 100-step epoch
/// and its evaluation make a handful of reads, not one or more per step.
#[test]
fn a_hundred_step_epoch_reads_the_device_a_handful_of_times() {
    let _serial = serial();
    let mut config = mnist_config("kp", 1, 3200);
    config.error_alignment = false;
    let data = RunData::open(&config.data, config.seed).unwrap();
    let dir = temp_run("reads");
    let run = RunDir::open(&dir, RunMode::New).unwrap();
    let before = crate::trainer::device_reads();
    let trained = fit(&config, &data, &run, quiet(), |d| config.model.init(d)).unwrap();
    let reads = crate::trainer::device_reads() - before;
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(trained.history[0].train_loss.is_finite());
    // The epoch's last step, the evaluation of the test split, and a 30-second line or two
    // on a slow machine.
    assert!(reads <= 4, "a 100-step epoch read the device {reads} times");
}

#[test]
fn devices_are_checked() {
    let mut config = mnist_config("bp", 1, 64);
    config.devices = vec!["flex".into()];
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("two or more"), "{err}");
    config.devices = vec!["ndarray".into(), "flex".into()];
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("first of devices"), "{err}");
    config.devices = vec!["flex".into(), "flex".into()];
    config.batch_size = 1;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("cannot be split"), "{err}");
}

/// A data set that cannot be opened is `TrainError::Data` with wt-data's error (naming the
/// file) kept as its source, not flattened into a string.
#[test]
fn a_missing_data_set_is_a_data_error_with_its_source() {
    let mut config = mnist_config("bp", 1, 10);
    config.data.dir = "/nonexistent/wt-mnist".into();
    let err = match RunData::open(&config.data, 1) {
        Err(e) => e,
        Ok(_) => panic!("a missing folder opened"),
    };
    assert!(matches!(err, TrainError::Data(_)), "{err:?}");
    let source = std::error::Error::source(&err).expect("the data error is the source");
    assert!(
        source.to_string().contains("/nonexistent/wt-mnist"),
        "{source}"
    );
}

/// An ImageFolder run reaches the reader's options: undecodable images skipped and counted
/// (without the option the first one is an error naming it), and the flat ILSVRC validation
/// folder labelled by its JSON map.
#[test]
fn image_folder_options_skip_bad_images_and_read_a_flat_validation_folder() {
    let src = shared_data("imagenette-mini/train");
    let root = temp_run("folder-options");
    let wnids = ["n01440764", "n02102040"];
    let mut labels = serde_json::Map::new();
    for (c, wnid) in wnids.iter().enumerate() {
        let dir = root.join("train").join(wnid);
        std::fs::create_dir_all(&dir).unwrap();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(src.join(wnid))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        photos.sort();
        for (k, photo) in photos.iter().take(3).enumerate() {
            std::fs::copy(photo, dir.join(format!("{wnid}_{k}.JPEG"))).unwrap();
        }
        // The flat validation folder: one photo per class under ILSVRC's file names.
        let name = format!("ILSVRC2012_val_0000000{}.JPEG", c + 1);
        std::fs::create_dir_all(root.join("val")).unwrap();
        std::fs::copy(&photos[3], root.join("val").join(&name)).unwrap();
        let index = if c == 0 { 0 } else { 217 }; // tench, English springer
        labels.insert(name, index.into());
    }
    std::fs::write(
        root.join("train").join(wnids[1]).join("bad.JPEG"),
        b"not a JPEG",
    )
    .unwrap();
    let labels_file = root.join("val_labels.json");
    std::fs::write(&labels_file, serde_json::to_string(&labels).unwrap()).unwrap();

    let mut config = mnist_config("bp", 1, 10).data;
    config.dataset = DatasetKind::ImageFolder;
    config.dir = root.clone();
    config.train_subset = None;
    config.test_subset = None;
    config.image_size = Some(32);
    config.class_index = Some(shared_data("imagenet-classes").join("imagenet1k_classes.tsv"));
    config.val_labels = Some(labels_file);
    let device = Device::flex();
    let all = |split: &DataSplit| -> Result<usize, String> {
        let positions: Vec<usize> = (0..split.len()).collect();
        let batch = split
            .batch(0, &positions, &device)
            .map_err(|e| e.to_string())?;
        Ok(batch.targets.dims()[0])
    };

    // Strict: the bad file stops the batch with its name.
    let strict = RunData::open(&config, 1).unwrap();
    let err = all(&strict.train).unwrap_err();
    assert!(err.contains("bad.JPEG"), "{err}");
    assert!(strict.skipped.is_none());

    // The flat validation folder, labelled from the JSON map.
    assert_eq!(strict.test.len(), 2);
    let positions = [0, 1];
    let test = strict.test.batch(0, &positions, &device).unwrap();
    let targets: Vec<i64> = test
        .targets
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .unwrap();
    assert_eq!(targets, [0, 217]);

    // Skipping: 7 files, 6 images, 1 skip counted.
    config.skip_undecodable = true;
    let skipping = RunData::open(&config, 1).unwrap();
    assert_eq!(skipping.train.len(), 7);
    assert_eq!(all(&skipping.train).unwrap(), 6);
    let log = skipping.skipped.as_ref().expect("a skip log");
    assert_eq!(log.count(), 1);
    assert!(log.files()[0].0.ends_with("bad.JPEG"));

    // The options are refused for data sets other than image folders.
    let mut mnist = mnist_config("bp", 1, 10);
    mnist.data.skip_undecodable = true;
    let err = mnist.validate().unwrap_err().to_string();
    assert!(
        err.contains("skip_undecodable applies to image_folder"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// What MPI ranks compare at start: the same data gives the same checksum; another subset
/// (other items) or other files (Fashion-MNIST in MNIST's format) give another.
#[test]
fn the_data_checksum_tells_data_sets_apart() {
    let device = Device::flex();
    let config = mnist_config("bp", 1, 512);
    let sum = |c: &DataConfig| {
        let data = RunData::open(c, 11).unwrap();
        crate::distributed::data_checksum(&data, &device).unwrap()
    };
    let mnist = sum(&config.data);
    assert_eq!(mnist, sum(&config.data));
    let mut fewer = config.data.clone();
    fewer.train_subset = Some(511);
    assert_ne!(mnist, sum(&fewer));
    let mut fashion = config.data.clone();
    fashion.dataset = DatasetKind::FashionMnist;
    fashion.dir = shared_data("fashion-mnist");
    assert_ne!(mnist, sum(&fashion));
}

/// `--pretrained FILE` starts a ResNet-18 from a torchvision state dict (here written by wt's
/// own exporter, safetensors): after one step at a negligible rate the run's convolutions are
/// the file's; a file of another depth stops the run before training with the key it cannot
/// place.
#[test]
fn a_run_starts_from_a_torchvision_checkpoint() {
    use clap::Parser;
    use wt_models::torchvision::{torchvision_safetensors, torchvision_state_dict};
    let _serial = serial();
    let dir = temp_run("pretrained");
    std::fs::create_dir_all(&dir).unwrap();
    let device = Device::flex();
    device.seed(5);
    let file = |depth: wt_models::ResNetDepth, name: &str| {
        let r = wt_models::ResNetConfig::new(depth, 1000).init(&device);
        let path = dir.join(name);
        std::fs::write(&path, torchvision_safetensors(&r).unwrap()).unwrap();
        (path, torchvision_state_dict(&r).unwrap())
    };
    let (r18, state) = file(wt_models::ResNetDepth::R18, "r18.safetensors");
    let args = |checkpoint: &std::path::Path, out: &str| {
        let line = format!(
            "imagenet --data {} --image-size 32 --stem imagenet --train-subset 8 \
             --test-subset 10 --batch 8 --epochs 1 --lr 1e-12 --rule kp --quiet \
             --pretrained {} --pretrained-skip-fc --out {}",
            shared_data("imagenette-mini").display(),
            checkpoint.display(),
            dir.join(out).display()
        );
        crate::cli::TrainArgs::try_parse_from(line.split_whitespace()).unwrap()
    };
    crate::cli::run(crate::cli::Preset::imagenet(), &args(&r18, "run")).unwrap();
    let run = RunDir::existing(dir.join("run")).unwrap();
    let config = TrainConfig::load(&run.config()).unwrap();
    assert_eq!(
        config.pretrained.as_ref().map(|p| p.path.clone()),
        Some(r18)
    );
    let wt_models::Model::ResNet(model) = config.model.init(&device).load_file(run.model()) else {
        panic!("a ResNet")
    };
    let wt_models::ResNetBlock::Basic(block) = &model.blocks[1] else {
        panic!("basic blocks")
    };
    let trained: Vec<f32> = block
        .conv2
        .weight()
        .val()
        .into_data()
        .iter::<f32>()
        .collect();
    let want = &state.tensors["layer1.1.conv2.weight"].values;
    let worst = (trained.iter().zip(want))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-6,
        "layer1.1.conv2 moved {worst} from the checkpoint"
    );

    let (r34, _) = file(wt_models::ResNetDepth::R34, "r34.safetensors");
    let err = crate::cli::run(crate::cli::Preset::imagenet(), &args(&r34, "run34")).unwrap_err();
    assert!(err.to_string().contains("no place for `layer1.2."), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
