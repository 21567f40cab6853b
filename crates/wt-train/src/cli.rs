//! The command line shared by the `mnist`, `cifar10` and `imagenet` examples.
//!
//! A run's config is resolved in this order: the example's [`Preset`], then `--config FILE`
//! (or, with `--resume`, the run folder's `config.toml`), then the flags given. The resolved
//! config is written to the run folder, so `--config <out>/config.toml` repeats the run.

use std::path::PathBuf;

use wt_models::wt_nn::wt_core::MirrorUpdate;
use wt_models::{Architecture, InitScheme, ModelConfig, Rule, Shortcut, Stem};

use crate::config::{
    DataConfig, DatasetKind, OptimizerConfig, OptimizerKind, Schedule, ScheduleConfig, TrainConfig,
};
use crate::data::RunData;
use crate::error::TrainError;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{FitOptions, Verbosity, final_json, fit};

/// Defaults of one example.
#[derive(Debug, Clone)]
pub struct Preset {
    /// Example name (for `--help` and the default run folder).
    pub name: &'static str,
    /// Data set read by default.
    pub dataset: DatasetKind,
    /// Default data folder.
    pub dir: &'static str,
    /// Default model.
    pub model: Architecture,
    /// Default epochs.
    pub epochs: usize,
    /// Default batch size.
    pub batch_size: usize,
    /// Default base learning rate.
    pub lr: f64,
    /// Default schedule: `true` steps at 40/60/80 % of the run (BioTorch's 100/150/200 of
    /// 250), `false` cosine.
    pub step_schedule: bool,
    /// Default images held out for validation.
    pub validation: usize,
    /// Default initialisation.
    pub init: InitScheme,
    /// Default class index file (ImageFolder).
    pub class_index: Option<&'static str>,
}

impl Preset {
    /// MNIST / Fashion-MNIST: MLP 784-1000-1000-10, SGD 0.01 momentum 0.9, cosine, batch 128.
    pub fn mnist() -> Self {
        Self {
            name: "mnist",
            dataset: DatasetKind::Mnist,
            dir: "../shared/data/mnist",
            model: Architecture::Mlp,
            epochs: 10,
            batch_size: 128,
            lr: 0.01,
            step_schedule: false,
            validation: 0,
            init: InitScheme::Default,
            class_index: None,
        }
    }

    /// CIFAR-10: ResNet-20, BioTorch's recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, steps
    /// at 40/60/80 %, Xavier init, 45k/5k split, crop + flip).
    pub fn cifar10() -> Self {
        Self {
            name: "cifar10",
            dataset: DatasetKind::Cifar10,
            dir: "../shared/data/cifar-10-approx",
            model: Architecture::Resnet20,
            epochs: 10,
            batch_size: 128,
            lr: 0.1,
            step_schedule: true,
            validation: 5000,
            init: InitScheme::Xavier,
            class_index: None,
        }
    }

    /// ImageNet-style folders: ResNet-18, SGD 0.1, steps at 40/60/80 %, batch 32.
    pub fn imagenet() -> Self {
        Self {
            name: "imagenet",
            dataset: DatasetKind::ImageFolder,
            dir: "../shared/data/imagenette-mini",
            model: Architecture::Resnet18,
            epochs: 10,
            batch_size: 32,
            lr: 0.1,
            step_schedule: true,
            validation: 0,
            // torchvision's: fan-out Kaiming-normal convolutions, PyTorch's default classifier.
            init: InitScheme::Default,
            class_index: Some("../shared/data/imagenet-classes/imagenet1k_classes.tsv"),
        }
    }

    fn schedule(&self, epochs: usize, step: bool) -> ScheduleConfig {
        ScheduleConfig {
            schedule: if step {
                Schedule::Step {
                    milestones: [0.4, 0.6, 0.8]
                        .iter()
                        .map(|f| ((f * epochs as f64).round() as usize).max(1))
                        .collect(),
                    gamma: 0.1,
                }
            } else {
                Schedule::Cosine
            },
            warmup_epochs: 0.0,
        }
    }
}

/// Usage text of the shared flags.
pub const USAGE: &str = "\
Run folder and config:
  --out DIR              run folder (default runs/<example>-<model>-<rule>-s<seed>)
  --config FILE          start from this config (.toml or .json), e.g. a run's config.toml
  --resume               continue the run in --out from its checkpoint (flags may extend --epochs)
  --overwrite            delete the run files in --out and start again
Model:
  --model NAME           mlp, lenet, resnet20, resnet56, resnet18, resnet50
  --rule NAME            bp, fa, usf, brsf, frsf, kp, wm, dfa, dkp
  --last-layer-bp        keep the classifier (the last feedback layer) on backprop
  --rule-for P=R,..      rules of their own for the layers path pattern P names, e.g.
                         'conv1=bp,fc=bp', 'blocks.0=fa', 'fc*=bp' (model.rule_for in a config)
  --init NAME            default, pytorch, xavier, kaiming_normal, kaiming_normal_fan_out
  --hidden W,W,..        MLP hidden widths (default 1000,1000)
  --shortcut a|b         CIFAR ResNet shortcut (default a)
  --stem imagenet|cifar  ResNet-18/50 stem (default: imagenet above 64 pixels, cifar below)
  --kp-decay X           Kolen-Pollack: decay on B alone, added to the weight decay (0)
  --mirror-warmup N      weight-mirror steps before epoch 1 (default 500 with wm)
  --mirror-lr X  --mirror-decay X  --mirror-sigma X  --mirror-batch N  --mirror-steps N
  --mirror-update direct|gradient
                         weight-mirror settings (defaults 0.5, η_B·σ², 1, 128, 1, direct)
Data:
  --data DIR             data folder or archive
  --dataset NAME         mnist, fashion_mnist, cifar10, cifar100, image_folder
  --validation N         images held out of the training files for validation
  --train-subset N       train on N images only
  --test-subset N        evaluate on the first N test images only
  --no-augment           no training augmentation
  --class-index FILE     class index (.tsv) for image folders; `none`: sorted folder names
  --image-size N         image folders: RandomResizedCrop N, eval resize N·256/224, crop N (224)
Optimisation:
  --epochs N  --batch N  --eval-batch N  --lr X  --momentum X  --nesterov  --weight-decay X
  --optimizer sgd|adam|bm-sgd  --schedule constant|step|cosine  --milestones E,E,..  --gamma X
  --warmup EPOCHS        --label-smoothing X  --seed N
Running:
  --device NAME          flex, ndarray, wgpu, cuda[:N] (what this build has)
  --devices A,B,..       data-parallel on several devices, e.g. cuda:0,cuda:1 (batch split)
  --workers N            batch-preparing threads (default 2)
  --no-error-alignment   skip the per-epoch error- and update-angle measurement
  --alignment-batches K  probe batches the angles are averaged over (4)
  --tensorboard DIR      also write every scalar as TensorBoard event files into DIR
  --quiet                print only the final JSON line";

/// Parsed command line.
struct Cli {
    out: Option<PathBuf>,
    config: Option<PathBuf>,
    mode: RunMode,
    quiet: bool,
    flags: Vec<(String, Option<String>)>,
}

const SWITCHES: [&str; 8] = [
    "--resume",
    "--overwrite",
    "--last-layer-bp",
    "--no-augment",
    "--nesterov",
    "--no-error-alignment",
    "--quiet",
    "--help",
];

fn parse(args: &[String]) -> Result<Cli, TrainError> {
    let mut cli = Cli {
        out: None,
        config: None,
        mode: RunMode::New,
        quiet: false,
        flags: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !flag.starts_with("--") {
            return Err(TrainError::Config(format!(
                "unexpected argument `{flag}` (try --help)"
            )));
        }
        if SWITCHES.contains(&flag.as_str()) {
            match flag.as_str() {
                "--resume" => cli.mode = RunMode::Resume,
                "--overwrite" => cli.mode = RunMode::Overwrite,
                "--quiet" => cli.quiet = true,
                _ => cli.flags.push((flag.clone(), None)),
            }
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| TrainError::Config(format!("{flag} needs a value")))?
            .clone();
        match flag.as_str() {
            "--out" => cli.out = Some(value.into()),
            "--config" => cli.config = Some(value.into()),
            _ => cli.flags.push((flag.clone(), Some(value))),
        }
    }
    Ok(cli)
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, TrainError> {
    v.parse()
        .map_err(|_| TrainError::Config(format!("{flag}: `{v}` is not a valid number")))
}

fn list(flag: &str, v: &str) -> Result<Vec<usize>, TrainError> {
    v.split(',').map(|x| number(flag, x.trim())).collect()
}

/// Applies the rules' own flags to `c`'s rule (after `--rule`, wherever they stood): KP's
/// `--kp-decay`, then the weight mirror's.
fn apply_rule_flags(
    c: &mut TrainConfig,
    flags: &[&(String, Option<String>)],
) -> Result<(), TrainError> {
    let (kp, flags): (Vec<_>, Vec<_>) =
        (flags.iter().copied()).partition(|(f, _)| f.as_str() == "--kp-decay");
    for (f, v) in kp {
        let Rule::KolenPollack(rule) = &mut c.model.rule else {
            return Err(TrainError::Config(format!(
                "{f} needs --rule kp (the rule is {})",
                c.model.rule.name()
            )));
        };
        rule.feedback_decay = number(f, v.as_deref().unwrap_or(""))?;
    }
    let Some(first) = flags.first() else {
        return Ok(());
    };
    let Rule::WeightMirror(wm) = &mut c.model.rule else {
        return Err(TrainError::Config(format!(
            "{} needs --rule wm (the rule is {})",
            first.0,
            c.model.rule.name()
        )));
    };
    for (flag, value) in flags {
        let (f, v) = (flag.as_str(), value.as_deref().unwrap_or(""));
        match f {
            "--mirror-lr" => wm.mirror_lr = number(f, v)?,
            "--mirror-decay" => wm.mirror_decay = Some(number(f, v)?),
            "--mirror-sigma" => wm.sigma = number(f, v)?,
            "--mirror-batch" => wm.mirror_batch = number(f, v)?,
            "--mirror-steps" => wm.mirror_steps = number(f, v)?,
            _ => {
                wm.update = match v {
                    "direct" => MirrorUpdate::Direct,
                    "gradient" => MirrorUpdate::Gradient,
                    _ => {
                        return Err(TrainError::Config(format!(
                            "--mirror-update: `{v}` is not direct or gradient"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

const RULE_FLAGS: [&str; 7] = [
    "--kp-decay",
    "--mirror-lr",
    "--mirror-decay",
    "--mirror-sigma",
    "--mirror-batch",
    "--mirror-steps",
    "--mirror-update",
];

/// Applies `flags` to `c`.
fn apply(c: &mut TrainConfig, flags: &[(String, Option<String>)]) -> Result<(), TrainError> {
    let cfg = |m: String| TrainError::Config(m);
    let (rule_flags, flags): (Vec<_>, Vec<_>) = flags
        .iter()
        .partition(|(f, _)| RULE_FLAGS.contains(&f.as_str()));
    for (flag, value) in flags {
        let v = value.as_deref().unwrap_or("");
        let f = flag.as_str();
        match f {
            "--model" => c.model.architecture = v.parse().map_err(cfg)?,
            "--rule" => c.model.rule = v.parse::<Rule>().map_err(|e| cfg(e.to_string()))?,
            "--last-layer-bp" => c.model.last_layer_backprop = true,
            "--rule-for" => {
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let (pattern, rule) = item.split_once('=').ok_or_else(|| {
                        cfg(format!("--rule-for: `{item}` is not PATTERN=RULE (e.g. fc=bp)"))
                    })?;
                    let rule = rule
                        .trim()
                        .parse::<Rule>()
                        .map_err(|e| cfg(format!("--rule-for {item}: {e}")))?;
                    c.model.rule_for.insert(pattern.trim().to_string(), rule);
                }
            }
            "--init" => c.model.init = v.parse().map_err(cfg)?,
            "--stem" => {
                c.model.stem = Some(match v {
                    "imagenet" => Stem::ImageNet,
                    "cifar" => Stem::Cifar,
                    _ => return Err(cfg(format!("--stem: `{v}` is not imagenet or cifar"))),
                })
            }
            "--image-size" => c.data.image_size = Some(number(f, v)?),
            "--hidden" => c.model.hidden = list(f, v)?,
            "--shortcut" => {
                c.model.shortcut = match v {
                    "a" | "A" => Shortcut::A,
                    "b" | "B" => Shortcut::B,
                    _ => return Err(cfg(format!("--shortcut: `{v}` is not a or b"))),
                }
            }
            "--mirror-warmup" => c.mirror_warmup = number(f, v)?,
            "--data" => c.data.dir = v.into(),
            "--dataset" => {
                c.data.dataset = serde_json::from_value(serde_json::Value::String(v.replace('-', "_")))
                    .map_err(|_| {
                        cfg(format!(
                            "--dataset: `{v}` is not one of mnist, fashion_mnist, cifar10, cifar100, image_folder"
                        ))
                    })?
            }
            "--validation" => c.data.validation = number(f, v)?,
            "--train-subset" => c.data.train_subset = Some(number(f, v)?),
            "--test-subset" => c.data.test_subset = Some(number(f, v)?),
            "--no-augment" => c.data.augment = false,
            "--class-index" => {
                c.data.class_index = (v != "none").then(|| PathBuf::from(v));
            }
            "--epochs" => c.epochs = number(f, v)?,
            "--batch" => c.batch_size = number(f, v)?,
            "--eval-batch" => c.eval_batch_size = number(f, v)?,
            "--lr" => c.optimizer.lr = number(f, v)?,
            "--momentum" => c.optimizer.momentum = number(f, v)?,
            "--nesterov" => c.optimizer.nesterov = true,
            "--weight-decay" => c.optimizer.weight_decay = number(f, v)?,
            "--optimizer" => {
                c.optimizer.kind = match v {
                    "sgd" => OptimizerKind::Sgd,
                    "adam" => OptimizerKind::Adam,
                    "bm-sgd" | "bm_sgd" => OptimizerKind::BmSgd,
                    _ => {
                        return Err(cfg(format!(
                            "--optimizer: `{v}` is not sgd, adam or bm-sgd"
                        )));
                    }
                }
            }
            "--schedule" => {
                c.schedule.schedule = match v {
                    "constant" => Schedule::Constant,
                    "cosine" => Schedule::Cosine,
                    "step" => match &c.schedule.schedule {
                        s @ Schedule::Step { .. } => s.clone(),
                        _ => Schedule::Step {
                            milestones: vec![c.epochs * 2 / 5, c.epochs * 3 / 5, c.epochs * 4 / 5],
                            gamma: 0.1,
                        },
                    },
                    _ => {
                        return Err(cfg(format!(
                            "--schedule: `{v}` is not constant, step or cosine"
                        )));
                    }
                }
            }
            "--milestones" | "--gamma" => {
                let Schedule::Step { milestones, gamma } = &mut c.schedule.schedule else {
                    return Err(cfg(format!("{f} needs --schedule step")));
                };
                if f == "--gamma" {
                    *gamma = number(f, v)?;
                } else {
                    *milestones = list(f, v)?;
                }
            }
            "--warmup" => c.schedule.warmup_epochs = number(f, v)?,
            "--label-smoothing" => c.label_smoothing = Some(number(f, v)?),
            "--seed" => c.seed = number(f, v)?,
            "--device" => c.device = v.into(),
            "--devices" => {
                c.devices = v.split(',').map(|d| d.trim().to_string()).collect();
                c.device = c.devices[0].clone();
            }
            "--workers" => c.workers = number(f, v)?,
            "--no-error-alignment" => c.error_alignment = false,
            "--alignment-batches" => c.alignment_batches = number(f, v)?,
            "--tensorboard" => c.tensorboard = Some(v.into()),
            _ => return Err(cfg(format!("unknown option {f} (try --help)"))),
        }
    }
    apply_rule_flags(c, &rule_flags)
}

/// The preset's config for a rule, before the data is known (`num_classes` etc. are filled in
/// from the data).
fn preset_config(p: &Preset) -> TrainConfig {
    let mut model = ModelConfig::new(p.model, 10, 1, 28, Rule::default());
    model.init = p.init;
    TrainConfig {
        model,
        data: DataConfig {
            dataset: p.dataset,
            dir: p.dir.into(),
            validation: p.validation,
            train_subset: None,
            test_subset: None,
            augment: true,
            class_index: p.class_index.map(PathBuf::from),
            image_size: None,
        },
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: p.lr,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            betas: (0.9, 0.999),
        },
        schedule: p.schedule(p.epochs, p.step_schedule),
        epochs: p.epochs,
        batch_size: p.batch_size,
        eval_batch_size: 500,
        seed: 1,
        device: "flex".into(),
        devices: Vec::new(),
        workers: 2,
        mirror_warmup: 500,
        label_smoothing: None,
        error_alignment: true,
        alignment_batches: 4,
        tensorboard: None,
    }
}

/// Runs an example: parses `args` (without the program name), trains, prints progress and
/// ends with one JSON line of the final metrics.
pub fn run(preset: Preset, args: &[String]) -> Result<(), TrainError> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "cargo run --release --example {} -- [options]\n\n{USAGE}",
            preset.name
        );
        return Ok(());
    }
    let cli = parse(args)?;
    let mut config = match (&cli.config, cli.mode, &cli.out) {
        (_, RunMode::Resume, Some(out)) => TrainConfig::load(&out.join("config.toml"))?,
        (_, RunMode::Resume, None) => {
            return Err(TrainError::Config(
                "--resume needs --out DIR (the run folder)".into(),
            ));
        }
        (Some(file), _, _) => TrainConfig::load(file)?,
        (None, _, _) => {
            let mut c = preset_config(&preset);
            // A step schedule follows --epochs unless milestones are given.
            let epochs_flag = cli.flags.iter().find(|(f, _)| f == "--epochs");
            if let Some((_, Some(e))) = epochs_flag {
                let e: usize = number("--epochs", e)?;
                c.schedule = preset.schedule(e, preset.step_schedule);
            }
            c
        }
    };
    apply(&mut config, &cli.flags)?;
    if config.model.rules().all(|r| r.weight_mirror().is_none()) {
        config.mirror_warmup = 0;
    }
    let data = RunData::open(&config.data, config.seed)?;
    config.model.num_classes = data.num_classes;
    config.model.in_channels = data.channels;
    config.model.image_side = data.side;
    config.validate()?;
    let out = cli.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}-{}-s{}",
            preset.name,
            config.model.architecture,
            config.model.rule.name(),
            config.seed
        ))
    });
    let run = RunDir::open(&out, cli.mode)?;
    if !cli.quiet {
        println!(
            "{}: {} train / {} validation / {} test images from {}, {} classes; run folder {}",
            preset.name,
            data.train.len(),
            data.validation.as_ref().map_or(0, |v| v.len()),
            data.test.len(),
            config.data.dir.display(),
            data.num_classes,
            out.display()
        );
    }
    let options = FitOptions {
        resume: cli.mode == RunMode::Resume,
        verbosity: if cli.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        },
        stop_after: None,
    };
    let model_config = config.model.clone();
    let trained = fit(&config, &data, &run, options, |d| model_config.init(d))?;
    println!("{}", final_json(&config, &trained));
    Ok(())
}

/// `main` of an example: runs and exits with status 2 and the message on error.
pub fn main(preset: Preset) {
    // CPU steps free and reallocate the same large temporaries: keep them (see the module).
    wt_models::wt_nn::wt_core::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(preset, &args) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wt_models::wt_nn::wt_core::WeightMirror;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_override_the_preset_and_errors_name_the_flag() {
        let cli = parse(&args("--rule kp --epochs 20 --lr 0.05 --hidden 500,300 --schedule step --milestones 5,10 --last-layer-bp --out x")).unwrap();
        let mut c = preset_config(&Preset::mnist());
        apply(&mut c, &cli.flags).unwrap();
        assert_eq!(c.model.rule.name(), "kp");
        assert_eq!((c.epochs, c.optimizer.lr), (20, 0.05));
        assert_eq!(c.model.hidden, vec![500, 300]);
        assert!(c.model.last_layer_backprop);
        assert_eq!(
            c.schedule.schedule,
            Schedule::Step {
                milestones: vec![5, 10],
                gamma: 0.1
            }
        );
        assert_eq!(cli.out, Some(PathBuf::from("x")));
        let cli = parse(&args("--image-size 64 --stem imagenet --optimizer bm-sgd")).unwrap();
        let mut c = preset_config(&Preset::imagenet());
        apply(&mut c, &cli.flags).unwrap();
        assert_eq!(c.data.image_size, Some(64));
        assert_eq!(c.model.stem, Some(Stem::ImageNet));
        assert_eq!(c.optimizer.kind, OptimizerKind::BmSgd);
        c.validate().unwrap();
        let mut mnist = preset_config(&Preset::mnist());
        mnist.data.image_size = Some(64);
        let err = mnist.validate().unwrap_err().to_string();
        assert!(err.contains("image_folder"), "{err}");
        for (bad, expect) in [
            ("--stem tiny", "--stem"),
            ("--lr fast", "--lr"),
            ("--rule xx", "xx"),
            ("--frobnicate 1", "unknown option --frobnicate"),
            ("--model vgg", "vgg"),
            ("--epochs", "needs a value"),
            ("--milestones 1,2", "needs --schedule step"),
        ] {
            let err = parse(&args(bad))
                .and_then(|cli| {
                    let mut c = preset_config(&Preset::mnist());
                    apply(&mut c, &cli.flags)
                })
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }

    /// Mirror and KP flags apply to their rule wherever they stand on the line, and need it.
    #[test]
    fn rule_flags_set_their_rule_and_need_it() {
        let cli = parse(&args(
            "--mirror-lr 0.2 --mirror-batch 64 --rule wm --mirror-decay 0.1 --mirror-sigma 0.5 --mirror-steps 2 --mirror-update gradient --devices flex,flex",
        ))
        .unwrap();
        let mut c = preset_config(&Preset::mnist());
        apply(&mut c, &cli.flags).unwrap();
        let wm = *c.model.rule.weight_mirror().expect("rule wm");
        assert_eq!(
            wm,
            WeightMirror {
                sigma: 0.5,
                mirror_lr: 0.2,
                mirror_decay: Some(0.1),
                mirror_batch: 64,
                mirror_steps: 2,
                update: MirrorUpdate::Gradient,
            }
        );
        assert_eq!(c.devices, vec!["flex".to_string(), "flex".into()]);
        assert_eq!(c.device, "flex");
        let cli = parse(&args(
            "--rule-for conv1=bp,fc*=fa --rule kp --rule-for blocks.0=dfa",
        ))
        .unwrap();
        let mut c = preset_config(&Preset::mnist());
        apply(&mut c, &cli.flags).unwrap();
        let names: Vec<(&str, &str)> = (c.model.rule_for.iter())
            .map(|(p, r)| (p.as_str(), r.name()))
            .collect();
        assert_eq!(names, [("blocks.0", "dfa"), ("conv1", "bp"), ("fc*", "fa")]);
        let cli = parse(&args("--kp-decay 0.003 --rule kp")).unwrap();
        let mut c = preset_config(&Preset::mnist());
        apply(&mut c, &cli.flags).unwrap();
        assert_eq!(
            c.model.rule,
            Rule::KolenPollack(wt_models::wt_nn::wt_core::KolenPollack {
                feedback_decay: 0.003
            })
        );
        for (bad, expect) in [
            ("--rule wm --kp-decay 0.1", "--kp-decay needs --rule kp"),
            ("--rule-for fc", "not PATTERN=RULE"),
            ("--rule-for fc=sgd", "unknown learning rule `sgd`"),
            ("--rule kp --kp-decay lots", "--kp-decay"),
            ("--rule kp --mirror-lr 0.1", "--mirror-lr needs --rule wm"),
            ("--rule wm --mirror-update later", "not direct or gradient"),
            ("--rule wm --mirror-batch many", "--mirror-batch"),
        ] {
            let cli = parse(&args(bad)).unwrap();
            let mut c = preset_config(&Preset::mnist());
            let err = apply(&mut c, &cli.flags).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }

    #[test]
    fn cifar_preset_is_biotorchs_recipe_shortened_proportionally() {
        let p = Preset::cifar10();
        let c = preset_config(&p);
        assert_eq!(
            (
                c.optimizer.lr,
                c.optimizer.momentum,
                c.optimizer.weight_decay
            ),
            (0.1, 0.9, 1e-4)
        );
        assert_eq!(c.data.validation, 5000);
        assert_eq!(c.model.init, InitScheme::Xavier);
        assert_eq!(
            p.schedule(250, true).schedule,
            Schedule::Step {
                milestones: vec![100, 150, 200],
                gamma: 0.1
            }
        );
    }
}
