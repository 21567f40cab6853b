//! The flags given applied onto a config ([`TrainArgs::apply`]): each flag that was given
//! overrides the preset's or the `--config` file's value.

use wt_models::Rule;

use super::TrainArgs;
use crate::config::{Schedule, TrainConfig};
use crate::error::TrainError;

impl TrainArgs {
    /// Applies the given flags to `c`: the model's and rules' first (the rules' own flags
    /// need their rule), then data, optimisation and running.
    pub fn apply(&self, c: &mut TrainConfig) -> Result<(), TrainError> {
        let cfg = |m: String| Err(TrainError::Config(m));
        let m = &self.model;
        set(&mut c.model.architecture, m.model);
        set(&mut c.model.rule, m.rule);
        c.model.last_layer_backprop |= m.last_layer_bp;
        c.model.rule_for.extend(m.rule_for.iter().cloned());
        set(&mut c.model.init, m.init);
        if !m.hidden.is_empty() {
            c.model.hidden = m.hidden.clone();
        }
        set(&mut c.model.shortcut, m.shortcut);
        if m.stem.is_some() {
            c.model.stem = m.stem;
        }
        set(&mut c.mirror_warmup, m.mirror_warmup);
        if let Some(path) = &m.pretrained {
            c.pretrained = Some(crate::config::Pretrained {
                path: path.clone(),
                classifier: !m.pretrained_skip_fc,
                feedback: m.pretrained_feedback.unwrap_or_default(),
            });
        } else if m.pretrained_skip_fc || m.pretrained_feedback.is_some() {
            return cfg(
                "--pretrained-skip-fc and --pretrained-feedback need --pretrained FILE".into(),
            );
        }
        if let Some(decay) = m.kp_decay {
            let Rule::KolenPollack(kp) = &mut c.model.rule else {
                return cfg(format!(
                    "--kp-decay needs --rule kp (the rule is {})",
                    c.model.rule.name()
                ));
            };
            kp.feedback_decay = decay;
        }
        if m.dfa_position_mean {
            let (Rule::DirectFeedbackAlignment(d)
            | Rule::DirectKolenPollack(d)
            | Rule::DirectRandomTargetProjection(d)) = &mut c.model.rule
            else {
                return cfg(format!(
                    "--dfa-position-mean needs --rule dfa, dkp or drtp (the rule is {})",
                    c.model.rule.name()
                ));
            };
            d.conv_position_mean = true;
        }
        for (name, given) in [("alpha", m.alpha), ("beta", m.beta), ("gamma", m.gamma)] {
            let Some(value) = given else { continue };
            let rule = c.model.rule.name();
            let mut coefficients = c.model.rule.alignment_coefficients_mut();
            let Some((_, slot)) = coefficients.iter_mut().find(|(n, _)| *n == name) else {
                let needs = if name == "gamma" {
                    "ia"
                } else {
                    "sa, aa or ia"
                };
                return cfg(format!(
                    "--{name} needs --rule {needs} (the rule is {rule})"
                ));
            };
            **slot = value;
        }
        let mirror_flags = [
            ("--mirror-lr", m.mirror_lr.is_some()),
            ("--mirror-decay", m.mirror_decay.is_some()),
            ("--mirror-sigma", m.mirror_sigma.is_some()),
            ("--mirror-batch", m.mirror_batch.is_some()),
            ("--mirror-steps", m.mirror_steps.is_some()),
            ("--mirror-update", m.mirror_update.is_some()),
            ("--mirror-samples", m.mirror_samples.is_some()),
        ];
        if let Some((flag, _)) = mirror_flags.iter().find(|(_, given)| *given) {
            let rule = c.model.rule.name();
            let Rule::WeightMirror(wm) = &mut c.model.rule else {
                return cfg(format!("{flag} needs --rule wm (the rule is {rule})"));
            };
            set(&mut wm.mirror_lr, m.mirror_lr);
            if m.mirror_decay.is_some() {
                wm.mirror_decay = m.mirror_decay;
            }
            set(&mut wm.sigma, m.mirror_sigma);
            set(&mut wm.mirror_batch, m.mirror_batch);
            set(&mut wm.mirror_steps, m.mirror_steps);
            set(&mut wm.update, m.mirror_update);
            set(&mut wm.samples, m.mirror_samples);
        }

        let d = &self.data;
        if let Some(dir) = &d.data {
            c.data.dir = dir.clone();
        }
        set(&mut c.data.dataset, d.dataset);
        set(&mut c.data.validation, d.validation);
        if d.train_subset.is_some() {
            c.data.train_subset = d.train_subset;
        }
        if d.test_subset.is_some() {
            c.data.test_subset = d.test_subset;
        }
        c.data.augment &= !d.no_augment;
        if let Some(index) = &d.class_index {
            c.data.class_index = (index.as_os_str() != "none").then(|| index.clone());
        }
        if d.image_size.is_some() {
            c.data.image_size = d.image_size;
        }
        c.data.skip_undecodable |= d.skip_undecodable;
        if d.val_labels.is_some() {
            c.data.val_labels = d.val_labels.clone();
        }

        let o = &self.optim;
        set(&mut c.epochs, o.epochs);
        set(&mut c.batch_size, o.batch);
        set(&mut c.eval_batch_size, o.eval_batch);
        set(&mut c.optimizer.lr, o.lr);
        set(&mut c.optimizer.momentum, o.momentum);
        c.optimizer.nesterov |= o.nesterov;
        set(&mut c.optimizer.weight_decay, o.weight_decay);
        set(&mut c.optimizer.kind, o.optimizer);
        if let Some(schedule) = &o.schedule {
            let keep = matches!(
                (&c.schedule.schedule, schedule),
                (Schedule::Step { .. }, Schedule::Step { .. })
            );
            if !keep {
                c.schedule.schedule = match schedule {
                    Schedule::Step { .. } => Schedule::Step {
                        milestones: vec![c.epochs * 2 / 5, c.epochs * 3 / 5, c.epochs * 4 / 5],
                        gamma: 0.1,
                    },
                    other => other.clone(),
                };
            }
        }
        if !o.milestones.is_empty() || o.step_gamma.is_some() {
            let Schedule::Step { milestones, gamma } = &mut c.schedule.schedule else {
                let flag = if o.step_gamma.is_some() {
                    "--step-gamma"
                } else {
                    "--milestones"
                };
                return cfg(format!("{flag} needs --schedule step"));
            };
            if !o.milestones.is_empty() {
                *milestones = o.milestones.clone();
            }
            set(gamma, o.step_gamma);
        }
        set(&mut c.schedule.warmup_epochs, o.warmup);
        if o.label_smoothing.is_some() {
            c.label_smoothing = o.label_smoothing;
        }
        set(&mut c.seed, o.seed);

        let r = &self.running;
        if let Some(device) = &r.device {
            c.device = device.clone();
        }
        if !r.devices.is_empty() {
            c.devices = r.devices.clone();
            c.device = c.devices[0].clone();
        }
        set(&mut c.workers, r.workers);
        set(&mut c.kernels, r.kernels);
        c.error_alignment &= !r.no_error_alignment;
        set(&mut c.alignment_batches, r.alignment_batches);
        if r.tensorboard.is_some() {
            c.tensorboard = r.tensorboard.clone();
        }
        Ok(())
    }
}

/// `*field = value` when a value was given.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;
    use wt_core::{MirrorSamples, MirrorUpdate, WeightMirror};
    use wt_models::Stem;

    use super::*;
    use crate::cli::Preset;
    use crate::config::{DatasetKind, OptimizerKind};

    fn parse(line: &str) -> Result<TrainArgs, TrainError> {
        let words = std::iter::once("example").chain(line.split_whitespace());
        TrainArgs::try_parse_from(words).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The preset's config with `line`'s flags applied.
    fn applied(preset: &Preset, line: &str) -> Result<TrainConfig, TrainError> {
        let mut c = preset.config();
        parse(line)?.apply(&mut c)?;
        Ok(c)
    }

    #[test]
    fn flags_override_the_preset_and_errors_name_the_flag() {
        let line = "--rule kp --epochs 20 --lr 0.05 --hidden 500,300 --schedule step --milestones 5,10 --last-layer-bp --out x";
        let c = applied(&Preset::mnist(), line).unwrap();
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
        assert_eq!(parse(line).unwrap().run.out, Some(PathBuf::from("x")));
        let line = "--image-size 64 --stem imagenet --optimizer bm-sgd --dataset fashion-mnist";
        let mut c = applied(&Preset::imagenet(), line).unwrap();
        assert_eq!(c.data.dataset, DatasetKind::FashionMnist);
        c.data.dataset = DatasetKind::ImageFolder;
        assert_eq!(c.data.image_size, Some(64));
        assert_eq!(c.model.stem, Some(Stem::ImageNet));
        assert_eq!(c.optimizer.kind, OptimizerKind::BmSgd);
        c.validate().unwrap();
        let mut mnist = Preset::mnist().config();
        mnist.data.image_size = Some(64);
        let err = mnist.validate().unwrap_err().to_string();
        assert!(err.contains("image_folder"), "{err}");
        for (bad, expect) in [
            ("--stem tiny", "--stem"),
            ("--lr fast", "--lr"),
            (
                "--rule xx",
                "[possible values: bp, fa, usf, brsf, frsf, kp, wm, dfa, dkp, drtp, sa, aa, ia]",
            ),
            ("--frobnicate 1", "unexpected argument '--frobnicate'"),
            ("--model vgg", "vgg"),
            ("--epochs", "a value is required for '--epochs <N>'"),
            ("--milestones 1,2", "needs --schedule step"),
            ("--resume --overwrite", "cannot be used with"),
        ] {
            let err = applied(&Preset::mnist(), bad).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }

    /// clap's own consistency checks (a long name given twice, as `--gamma` once was by the step
    /// schedule and information alignment, passes a release build silently); the step factor and
    /// IA's γ each reach their own field.
    #[test]
    fn every_flag_has_one_name_and_gamma_is_ia_s() {
        use clap::CommandFactory;
        TrainArgs::command().debug_assert();
        let c = applied(
            &Preset::mnist(),
            "--schedule step --milestones 2 --step-gamma 0.5 --rule ia --gamma 0.3",
        )
        .unwrap();
        assert_eq!(
            c.schedule.schedule,
            Schedule::Step {
                milestones: vec![2],
                gamma: 0.5
            }
        );
        let wt_core::Rule::InformationAlignment(ia) = &c.model.rule else {
            panic!("rule ia expected, got {:?}", c.model.rule);
        };
        assert_eq!(ia.gamma.value, 0.3);
    }

    /// A repeated flag takes its last value, as `scripts/reproduce.sh ROW --lr X` relies on.
    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        let line = "--lr 1e-3 --dfa-position-mean --rule dfa --lr 0.05 --dfa-position-mean";
        let c = applied(&Preset::mnist(), line).unwrap();
        assert_eq!(c.optimizer.lr, 0.05);
        assert_eq!(c.model.rule.name(), "dfa");
        let c = applied(&Preset::mnist(), "--epochs 3 --epochs 7").unwrap();
        assert_eq!(c.epochs, 7);
    }

    /// Mirror and KP flags apply to their rule wherever they stand on the line, and need it.
    #[test]
    fn rule_flags_set_their_rule_and_need_it() {
        let c = applied(
            &Preset::mnist(),
            "--mirror-lr 0.2 --mirror-batch 64 --rule wm --mirror-decay 0.1 --mirror-sigma 0.5 --mirror-steps 2 --mirror-update gradient --mirror-samples fan-in:1.5 --devices flex,flex",
        )
        .unwrap();
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
                samples: MirrorSamples::PerFanIn { ratio: 1.5 },
            }
        );
        assert_eq!(c.devices, vec!["flex".to_string(), "flex".into()]);
        assert_eq!(c.device, "flex");
        let c = applied(
            &Preset::mnist(),
            "--rule-for conv1=bp,fc*=fa --rule kp --rule-for blocks.0=dfa",
        )
        .unwrap();
        let names: Vec<(&str, &str)> = (c.model.rule_for.iter())
            .map(|(p, r)| (p.as_str(), r.name()))
            .collect();
        assert_eq!(names, [("blocks.0", "dfa"), ("conv1", "bp"), ("fc*", "fa")]);
        let c = applied(&Preset::mnist(), "--rule dkp --dfa-position-mean").unwrap();
        assert!(c.model.rule.direct().unwrap().conv_position_mean);
        let c = applied(&Preset::mnist(), "--kp-decay 0.003 --rule kp").unwrap();
        assert_eq!(
            c.model.rule,
            Rule::KolenPollack(wt_core::KolenPollack {
                feedback_decay: 0.003
            })
        );
        for (bad, expect) in [
            ("--rule wm --kp-decay 0.1", "--kp-decay needs --rule kp"),
            (
                "--rule kp --dfa-position-mean",
                "--dfa-position-mean needs --rule dfa",
            ),
            ("--rule-for fc", "not PATTERN=RULE"),
            ("--rule-for fc=sgd", "unknown learning rule `sgd`"),
            (
                "--rule wm --mirror-update later",
                "[possible values: direct, gradient]",
            ),
            ("--rule kp --kp-decay lots", "--kp-decay"),
            ("--rule kp --mirror-lr 0.1", "--mirror-lr needs --rule wm"),
            ("--rule wm --mirror-batch many", "--mirror-batch"),
        ] {
            let err = applied(&Preset::mnist(), bad).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }
}
