use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use wt_core::DirectSignal;
use wt_core::named::assert_table;
use wt_nn::{Rule, weight_alignment};

use crate::*;

/// The backends' random generator is per process: tests that draw from it (model init,
/// random inputs) take turns, so a test's seed fixes what it draws.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    wt_nn::wt_core::device::device_test_lock()
}

fn config(arch: Architecture, classes: usize, channels: usize, side: usize) -> ModelConfig {
    ModelConfig::new(arch, classes, channels, side, "fa".parse().unwrap())
}

#[test]
fn every_conv_and_linear_layer_uses_the_rule_and_last_layer_can_stay_on_backprop() {
    let _serial = serial();
    let device = Device::flex();
    let mut cfg = config(Architecture::Resnet20, 10, 3, 32);
    let model = cfg.init(&device);
    let layers = weight_alignment(&model);
    // 1 stem + 18 block convs + 1 classifier.
    assert_eq!(layers.len(), 20);
    assert!(layers.iter().all(|l| l.rule == "fa"), "{layers:?}");
    assert!(layers.last().unwrap().path.ends_with("fc"), "{layers:?}");
    cfg.last_layer_backprop = true;
    let layers = weight_alignment(&cfg.init(&device));
    assert_eq!(layers.last().unwrap().rule, "bp");
    assert!(layers[..19].iter().all(|l| l.rule == "fa"));

    let mut b = config(Architecture::Resnet20, 10, 3, 32);
    b.shortcut = Shortcut::B;
    // Two projection convolutions (stages 2 and 3).
    assert_eq!(weight_alignment(&b.init(&device)).len(), 22);
    let r50 = config(Architecture::Resnet50, 1000, 3, 224).init(&device);
    // 1 stem + 16 blocks × 3 + 4 projections + fc.
    assert_eq!(weight_alignment(&r50).len(), 54);
}

#[test]
fn forward_shapes() {
    let _serial = serial();
    let device = Device::flex();
    let cases = [
        (Architecture::Mlp, 1, 28),
        (Architecture::Lenet, 1, 28),
        (Architecture::Lenet, 1, 32),
        (Architecture::Lenet, 3, 32),
        (Architecture::Resnet20, 3, 32),
        (Architecture::Resnet18, 3, 32),
        (Architecture::Resnet18, 3, 96),
    ];
    for (arch, c, side) in cases {
        let model = config(arch, 7, c, side).init(&device);
        let x = Tensor::<4>::random([2, c, side, side], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(model.forward(x).dims(), [2, 7], "{arch} {c}×{side}²");
    }
}

#[test]
fn option_a_shortcut_subsamples_and_pads_channels() {
    let _serial = serial();
    let device = Device::flex();
    let block = BasicBlock::new(2, 4, 2, Shortcut::A, Rule::default(), &None, &device);
    // Zero the residual branch (γ = β = 0 after conv2) so the output is relu(shortcut).
    let mut block = block;
    block.bn2.gamma = block.bn2.gamma.map(|g| g.zeros_like());
    block.bn2.beta = block.bn2.beta.map(|b| b.zeros_like());
    let data: Vec<f32> = (0..2 * 16).map(|v| v as f32 + 1.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [1, 2, 4, 4]), &device);
    let y = block.forward(x);
    assert_eq!(y.dims(), [1, 4, 2, 2]);
    let y: Vec<f32> = y.into_data().try_to_vec().unwrap();
    // Channel 0 and 3 are the zero padding; channels 1, 2 are x[:, :, ::2, ::2].
    assert_eq!(
        y,
        vec![
            0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 9.0, 11.0, 17.0, 19.0, 25.0, 27.0, 0.0, 0.0, 0.0, 0.0
        ]
    );
}

/// Twenty plain SGD steps on one fixed random batch lower the loss of every zoo model that can
/// run in a test's time as far as each rule took it when measured (with a margin), with
/// backprop, a rule that learns B (KP), one that does not (FA) and the direct rules (DFA, DKP).
#[test]
fn a_few_steps_lower_the_loss() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(3);
    for (arch, lr) in [
        (Architecture::Mlp, 0.05),
        (Architecture::Lenet, 0.1),
        (Architecture::Resnet20, 0.05),
    ] {
        for rule in ["bp", "fa", "kp", "dfa", "dkp", "drtp", "sa", "aa", "ia"] {
            // The direct rules' LeNet, without normalisation, does not learn a random batch at
            // any one SGD rate (it diverges at lr 0.01 and stalls at 0.005): its convolutions'
            // gradients grow with their output size. It learns real MNIST in wt-train's tests.
            if arch == Architecture::Lenet && matches!(rule, "dfa" | "dkp" | "drtp") {
                continue;
            }
            // DRTP's target signal never shrinks: on a random batch ResNet-20's loss rose at
            // every rate tried (×7.4 at lr/10, ×1.04 at lr/100; docs/rules.md). Its MLP fits.
            if arch == Architecture::Resnet20 && rule == "drtp" {
                continue;
            }
            let (first, last) = sgd_steps(arch, rule, direct_rule_lr(arch, rule, lr), &device);
            // What each rule reached here (Flex, seed 3, 2026-12-07), with a margin: the MLP
            // fits the batch (BP 3 %, FA 17 %, KP 5 %, DFA and DKP under 1 %, DRTP 0.0004 %,
            // SA 17 %, AA 15 %, IA 15 % of the first loss), LeNet barely starts in 20 steps
            // (BP 97 %, FA 98 %, KP 98 %, SA, AA, IA 98 %), ResNet-20 fits it with BP (2 %) and
            // moves with the rest (FA 80 %, KP 54 %, DFA 88 %, DKP 92 %, SA 79 %, AA 77 %,
            // IA 72 %).
            let most = match (arch, rule) {
                (Architecture::Mlp, "fa") => 0.35,
                (Architecture::Mlp, "sa" | "aa" | "ia") => 0.25,
                (Architecture::Mlp, "kp") => 0.15,
                (Architecture::Mlp, _) => 0.1,
                (Architecture::Lenet, "fa") => 0.995,
                (Architecture::Lenet, _) => 0.99,
                (_, "bp") => 0.1,
                (_, "fa") => 0.85,
                (_, "kp") => 0.6,
                (_, "dfa") => 0.92,
                (_, "sa" | "aa" | "ia") => 0.85,
                _ => 0.95,
            };
            assert!(
                last < first * most,
                "{arch} {rule}: {first} → {last}, more than {most} of the first loss"
            );
        }
    }
}

/// Twenty plain SGD steps of `arch` under `rule` at `lr` on one fixed random batch of 16
/// `[3, 32, 32]` images; the loss before and after.
fn sgd_steps(arch: Architecture, rule: &str, lr: f64, device: &Device) -> (f64, f64) {
    let cfg = ModelConfig::new(arch, 10, 3, 32, rule.parse().unwrap());
    let mut model = cfg.init(device);
    let x = Tensor::<4>::random([16, 3, 32, 32], Distribution::Normal(0.0, 1.0), device);
    let labels: Vec<i64> = (0..16).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [16]), device);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut optim = SgdConfig::new().init();
    let loss = |m: &Model| {
        let logits = m.forward(x.clone());
        // DRTP's layers take the target part of the mean loss's error (nothing otherwise).
        wt_nn::direct_targets(y.clone(), 1.0 / 16.0);
        loss_fn.forward(logits, y.clone())
    };
    let first = loss(&model).into_scalar::<f64>();
    for _ in 0..20 {
        let l = loss(&model);
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    (first, loss(&model).into_scalar::<f64>())
}

/// The learning rate for `rule`: the direct rules' conv nets take 1/10 of it. Their error
/// reaches every output position of a convolution undivided, so the weight gradient is a sum
/// of coherent terms over positions (BioTorch trains its DFA LeNet at lr 1e-4, its BP at 0.1).
fn direct_rule_lr(arch: Architecture, rule: &str, lr: f64) -> f64 {
    let rule = rule.parse::<Rule>().unwrap();
    match (rule.direct_signal(), arch) {
        (_, Architecture::Mlp) | (None, _) => lr,
        (Some(DirectSignal::OutputError), _) => lr / 10.0,
        (Some(DirectSignal::Targets), _) => lr / 100.0,
    }
}

/// The direct and local alignment rules on every test backend: twenty plain SGD steps lower
/// the MLP's loss (their conv ops' gradients are checked on every backend in wt-core; LeNet and
/// ResNet-20 train on Flex above).
#[test]
fn direct_and_local_alignment_rules_train_the_mlp_on_every_backend() {
    let _serial = serial();
    for (name, device) in wt_nn::wt_core::device::test_devices() {
        let device = device.autodiff();
        device.seed(5);
        for arch in [Architecture::Mlp] {
            for rule in ["dfa", "dkp", "drtp", "sa", "aa", "ia"] {
                let lr = direct_rule_lr(arch, rule, 0.05);
                let (first, last) = sgd_steps(arch, rule, lr, &device);
                assert!(
                    last < first * 0.99,
                    "{name} {arch} {rule}: {first} → {last}"
                );
            }
        }
    }
}

/// `rule_for` puts the layers a pattern names on their own rule, the longest pattern winning,
/// and `last_layer_backprop` the last layer; a pattern naming no layer is an error.
#[test]
fn layer_rules_override_the_default_by_path() {
    let _serial = serial();
    let device = Device::flex();
    let mut cfg = config(Architecture::Resnet20, 10, 3, 32);
    cfg.rule = "kp".parse().unwrap();
    for (pattern, rule) in [
        ("conv1", "bp"),
        ("blocks", "fa"),
        ("blocks.0", "dfa"),
        ("blocks.0.conv2", "usf"),
    ] {
        cfg.rule_for.insert(pattern.into(), rule.parse().unwrap());
    }
    cfg.last_layer_backprop = true;
    let layers = weight_alignment(&cfg.init(&device));
    // Paths leave out the zoo enum's variant: `conv1`, not `CifarResNet.conv1`.
    let rule_of = |path: &str| {
        let l = layers.iter().find(|l| l.path == path);
        l.unwrap_or_else(|| panic!("{path}: {layers:?}")).rule
    };
    assert_eq!(rule_of("conv1"), "bp");
    assert_eq!(rule_of("blocks.0.conv1"), "dfa");
    assert_eq!(rule_of("blocks.0.conv2"), "usf");
    assert_eq!(rule_of("blocks.5.conv1"), "fa");
    assert_eq!(rule_of("fc"), "bp");
    // A DFA layer got its direct matrix ([classes, c_in, 3, 3]), a KP-free layer no B.
    let model = cfg.init(&device);
    let Model::CifarResNet(net) = &model else {
        unreachable!()
    };
    assert_eq!(
        net.blocks[0].conv1.feedback().as_ref().unwrap().dims(),
        [10, 16, 3, 3]
    );
    assert!(net.conv1.feedback().is_none());
    // Applying the rules again changes nothing; an unknown pattern is an error.
    let again = cfg.apply_layer_rules(model).unwrap();
    assert_eq!(
        weight_alignment(&again)
            .iter()
            .map(|l| l.rule)
            .collect::<Vec<_>>(),
        layers.iter().map(|l| l.rule).collect::<Vec<_>>()
    );
    cfg.rule_for.insert("fc9".into(), "bp".parse().unwrap());
    let err = cfg.apply_layer_rules(again).unwrap_err().to_string();
    assert!(
        err.contains("`fc9`") && err.contains("blocks.0.conv1"),
        "{err}"
    );
}

#[test]
fn model_config_round_trips_through_json_and_parses_names() {
    let mut cfg = config(Architecture::Resnet56, 100, 3, 32);
    cfg.init = InitScheme::Xavier;
    cfg.last_layer_backprop = true;
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    let json_name = |v: serde_json::Value| v.as_str().unwrap().to_string();
    assert_table::<Architecture>(|a| json_name(serde_json::to_value(a).unwrap()));
    assert_table::<InitScheme>(|i| json_name(serde_json::to_value(i).unwrap()));
    assert_table::<Stem>(|s| json_name(serde_json::to_value(s).unwrap()));
    assert_table::<Shortcut>(|s| json_name(serde_json::to_value(s).unwrap()));
    // Configs written before the stem's short name still load.
    assert_eq!(
        serde_json::from_str::<Stem>("\"image_net\"").unwrap(),
        Stem::ImageNet
    );
    let err = "resnet99".parse::<Architecture>().unwrap_err().to_string();
    assert!(err.contains("resnet20"), "{err}");
}

/// ResNet-18's default init is torchvision's: every convolution `N(0, 2/fan_out)` (and FA's
/// `B` drawn alike), the classifier PyTorch's default `U(−1/√fan_in, 1/√fan_in)`; `pytorch`
/// gives Kaiming-uniform convolutions instead.
#[test]
fn imagenet_resnets_default_to_torchvisions_fan_out_init() {
    let _serial = serial();
    let device = Device::flex();
    let stats = |t: Tensor<4>| {
        let v: Vec<f32> = t.into_data().iter::<f32>().collect();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let max = v.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
        (sd, max)
    };
    let build = |init: InitScheme| {
        let mut cfg = config(Architecture::Resnet18, 10, 3, 224);
        cfg.init = init;
        match cfg.init(&device) {
            Model::ResNet(r) => r,
            _ => unreachable!("resnet18 builds a ResNet"),
        }
    };
    let model = build(InitScheme::Default);
    // Stage 4's first 3×3 convolution, 256 → 512: fan_out = 512·9, fan_in = 256·9.
    let ResNetBlock::Basic(block) = &model.blocks[6] else {
        panic!("ResNet-18 has basic blocks")
    };
    let (fan_out, fan_in): (f64, f64) = (512.0 * 9.0, 256.0 * 9.0);
    for (what, t) in [
        ("W", block.conv1.weight().val()),
        ("FA's B", block.conv1.feedback().as_ref().unwrap().val()),
        ("stem W", model.conv1.weight().val()),
    ] {
        let fan_out = if what == "stem W" {
            64.0 * 49.0
        } else {
            fan_out
        };
        let (sd, _) = stats(t);
        let want = (2.0 / fan_out).sqrt();
        assert!(
            (sd / want - 1.0).abs() < 0.02,
            "{what}: sd {sd}, want {want}"
        );
    }
    // The classifier keeps PyTorch's default: uniform, bound 1/√512.
    let fc: Vec<f32> = model.fc.weight().val().into_data().iter::<f32>().collect();
    let bound = 1.0 / 512f64.sqrt();
    assert!(fc.iter().all(|&w| (w as f64).abs() <= bound * (1.0 + 1e-6)));
    let pytorch = build(InitScheme::Pytorch);
    let ResNetBlock::Basic(block) = &pytorch.blocks[6] else {
        panic!("ResNet-18 has basic blocks")
    };
    let (sd, max) = stats(block.conv1.weight().val());
    let bound = 1.0 / f64::sqrt(fan_in);
    assert!(
        max <= bound * (1.0 + 1e-6),
        "Kaiming-uniform max {max} > {bound}"
    );
    assert!((sd / (bound / 3f64.sqrt()) - 1.0).abs() < 0.02, "sd {sd}");
}

/// ResNet-18's stem follows the image side unless the config names it: a 64-pixel model gets
/// the CIFAR stem by default, the ImageNet stem (7×7 stride 2 and max pooling) when asked.
#[test]
fn resnet_stem_is_chosen_by_side_or_named() {
    let _serial = serial();
    let device = Device::flex();
    let stem_of = |stem: Option<Stem>| {
        let mut cfg = config(Architecture::Resnet18, 10, 3, 64);
        cfg.stem = stem;
        match cfg.init(&device) {
            Model::ResNet(r) => (r.conv1.weight().dims(), r.pool.is_some()),
            _ => unreachable!("resnet18 builds a ResNet"),
        }
    };
    assert_eq!(stem_of(None), ([64, 3, 3, 3], false));
    assert_eq!(stem_of(Some(Stem::ImageNet)), ([64, 3, 7, 7], true));
    assert_eq!(stem_of(Some(Stem::Cifar)), ([64, 3, 3, 3], false));
}

/// A small shape of the zoo's transformers for tests: 2 blocks of width 32, 2 heads, MLP 64.
fn small_transformer() -> TransformerShape {
    TransformerShape {
        patch: 4,
        d_model: 32,
        depth: 2,
        n_heads: 2,
        d_ff: 64,
        positions: wt_nn::Positions::Learned,
    }
}

/// `steps` AdamW steps (lr `lr`, no decay) through `FeedbackOptimizer` on one fixed batch;
/// `loss(model)` computes the batch's loss (and hands DRTP its targets). The loss before and
/// after.
fn adamw_steps<M: burn::module::Module>(
    mut model: M,
    steps: usize,
    lr: f64,
    loss: impl Fn(&M) -> Tensor<1>,
) -> (f64, f64) {
    let mut optim = wt_nn::FeedbackOptimizer::wrap(
        burn::optim::AdamWConfig::new()
            .with_weight_decay(0.0)
            .init(),
        0.0,
    );
    let first = loss(&model).into_scalar::<f64>();
    for _ in 0..steps {
        let l = loss(&model);
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = optim
            .try_step(lr, model, grads)
            .expect("the direct rules' signal");
    }
    (first, loss(&model).into_scalar::<f64>())
}

/// Rules of the transformer tests: every rule on Flex, BP, FA, KP, WM and DFA elsewhere.
fn transformer_rules(backend: &str) -> Vec<&'static str> {
    if backend == "flex" {
        <Rule as wt_nn::wt_core::Named>::all()
            .into_iter()
            .map(|r| wt_nn::wt_core::Named::name(&r))
            .collect()
    } else {
        vec!["bp", "fa", "kp", "wm", "dfa"]
    }
}

/// The ViT on 32 real CIFAR-10 training images (the approximate copy), 15 AdamW steps at lr
/// 2e-3: every rule lowers the loss of the batch by the factor measured for it, with a margin.
#[test]
fn vit_lowers_the_loss_of_real_cifar_images_with_every_rule() {
    use wt_data::{CifarDataset, Split};
    let _serial = serial();
    let dir = wt_data::testdata::shared_data("cifar-10-approx");
    let cifar = CifarDataset::cifar10(&dir, Split::Train).unwrap();
    let n = 32;
    let pixels: Vec<f32> = (0..n)
        .flat_map(|i| cifar.image(i).iter().map(|&p| p as f32 / 255.0 - 0.5))
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| cifar.labels()[i] as i64).collect();
    for (backend, device) in wt_nn::wt_core::device::test_devices() {
        let device = device.autodiff();
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [n, 3, 32, 32]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [n]), &device);
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        for rule in transformer_rules(backend) {
            device.seed(7);
            let mut cfg = ModelConfig::new(Architecture::Vit, 10, 3, 32, rule.parse().unwrap());
            cfg.transformer = small_transformer();
            let Model::Vit(vit) = cfg.init(&device) else {
                unreachable!()
            };
            // The alignment metrics reach every feedback layer of the ViT: the patch
            // convolution, six per block, the head (a direct rule's `D` has no angle).
            let angles = weight_alignment(&vit);
            assert_eq!(angles.len(), 2 + 6 * 2, "vit {backend} {rule}");
            if rule == "bp" {
                assert!(angles.iter().all(|a| a.weight.angle_deg == 0.0));
            } else if rule == "fa" {
                assert!(
                    angles.iter().all(|a| a.weight.angle_deg > 60.0),
                    "{angles:?}"
                );
            }
            let (first, last) = adamw_steps(vit, 15, 2e-3, |m: &Vit| {
                let logits = m.forward(x.clone());
                wt_nn::direct_targets(y.clone(), 1.0 / n as f64);
                loss_fn.forward(logits, y.clone())
            });
            // Measured (2026-12-07, last / first): Flex BP 0.565, uSF 0.630, brSF 0.679, frSF
            // 0.666, WM 0.638, FA 0.916, KP 0.907, DFA 0.908, DKP 0.899, SA 0.882, AA 0.904,
            // IA 0.903, DRTP 0.996; NdArray the same to 1e-4; wgpu BP 0.676, FA 0.944, KP 0.928,
            // WM 0.629, DFA 0.937.
            let most = match rule {
                "bp" | "usf" | "brsf" | "frsf" | "wm" => 0.75,
                "drtp" => 0.999,
                _ => 0.97,
            };
            eprintln!(
                "vit {backend} {rule}: {first:.4} → {last:.4} ({:.3})",
                last / first
            );
            assert!(
                last < first * most,
                "vit {backend} {rule}: {first} → {last}, more than {most} of the first loss"
            );
        }
    }
}

/// The character model on 16 real windows of 32 characters of Tiny Shakespeare, 15 AdamW
/// steps at lr 3e-3: every rule lowers the batch's loss by the factor measured for it, with a
/// margin; the direct rules' signal reaches each position (DRTP's targets `[batch, tokens]`).
#[test]
fn char_transformer_lowers_the_loss_of_real_text_with_every_rule() {
    use wt_data::{CharCorpus, CharWindows};
    let _serial = serial();
    let dir = wt_data::testdata::shared_data("tinyshakespeare");
    let corpus = CharCorpus::read(dir.join("input.txt"), 0.1).unwrap();
    let (batch, context) = (16, 32);
    let w = CharWindows::random(&corpus.train, batch, context, 3);
    for (backend, device) in wt_nn::wt_core::device::test_devices() {
        let device = device.autodiff();
        let x = Tensor::<2, Int>::from_data(
            TensorData::new(w.inputs.clone(), [batch, context]),
            &device,
        );
        let y = Tensor::<2, Int>::from_data(
            TensorData::new(w.targets.clone(), [batch, context]),
            &device,
        );
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        for rule in transformer_rules(backend) {
            device.seed(7);
            let model = CharTransformerConfig::new(corpus.vocab.len(), context)
                .with_shape(small_transformer())
                .with_rule(rule.parse().unwrap())
                .init(&device);
            let (first, last) = adamw_steps(model, 15, 3e-3, |m: &CharTransformer| {
                let logits = m.forward(x.clone());
                wt_nn::direct_targets(y.clone(), 1.0 / (batch * context) as f64);
                let vocab = corpus.vocab.len();
                loss_fn.forward(
                    logits.reshape([batch * context, vocab]),
                    y.clone().reshape([batch * context]),
                )
            });
            // Measured (2026-12-07, last / first): Flex BP 0.703, uSF 0.714, brSF 0.807, frSF
            // 0.765, WM 0.750, FA 0.883, KP 0.834, DFA 0.881, DKP 0.854, DRTP 0.900, SA 0.852,
            // AA 0.887, IA 0.884; NdArray the same; wgpu BP 0.692, FA 0.866, KP 0.799, WM 0.743,
            // DFA 0.889.
            let most = match rule {
                "bp" | "usf" => 0.78,
                "brsf" | "frsf" | "wm" => 0.85,
                _ => 0.94,
            };
            eprintln!(
                "charlm {backend} {rule}: {first:.4} → {last:.4} ({:.3})",
                last / first
            );
            assert!(
                last < first * most,
                "charlm {backend} {rule}: {first} → {last}, more than {most} of the first loss"
            );
        }
    }
}

/// The ViT's parameters, counted from its shape by hand: the default CIFAR ViT has 1,806,154
/// (patch conv 9,408, positions 12,288, six blocks of 297,024, final norm 384, head 1,930).
#[test]
fn vit_parameter_count_follows_its_shape() {
    use burn::module::Module;
    let _serial = serial();
    let device = Device::flex();
    let cfg = ModelConfig::new(Architecture::Vit, 10, 3, 32, Rule::default());
    let model = cfg.init(&device);
    let (d, ff, p, c) = (192, 384, 4, 3);
    let block = 2 * d + 4 * (d * d + d) + 2 * d + (d * ff + ff) + (ff * d + d);
    let expected = (c * p * p * d + d) + 64 * d + 6 * block + 2 * d + (d * 10 + 10);
    assert_eq!(expected, 1_806_154);
    assert_eq!(model.num_params(), expected);
}
