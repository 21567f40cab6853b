//! Running an example: [`main`] parses the command line and [`run`] resolves the config
//! (preset, then `--config` or the resumed run's, then the flags), finds and opens the data,
//! opens the run folder, trains with [`fit`] and prints the final JSON line.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};

use super::{Preset, TrainArgs};
use crate::config::TrainConfig;
use crate::data::{RunData, locate_data};
use crate::distributed::World;
use crate::error::TrainError;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{FitOptions, Verbosity, final_json, fit};

/// Runs an example with parsed flags: trains, prints progress and ends with one JSON line
/// of the final metrics. Under MPI (`--distributed`, [`World::from_env`]) every rank runs
/// this; rank 0 prints and writes the run folder, and an error on any rank is printed with
/// its rank and stops the whole job (MPI's abort), so no rank waits for one that has stopped.
pub fn run(preset: Preset, args: &TrainArgs) -> Result<(), TrainError> {
    let world = World::from_env(args.running.distributed)?;
    match run_in(preset, args, &world) {
        Err(e) if world.is_distributed() => {
            eprintln!("error: rank {} of {}: {e}", world.rank(), world.size());
            world.abort(2)
        }
        done => done,
    }
}

/// [`run`] in `world`.
fn run_in(preset: Preset, args: &TrainArgs, world: &World) -> Result<(), TrainError> {
    let mode = args.mode();
    let out = args.run.out.as_ref();
    let mut config = match (&args.run.config, mode, out) {
        (_, RunMode::Resume, Some(out)) => TrainConfig::load(&out.join("config.toml"))?,
        (_, RunMode::Resume, None) => {
            return Err(TrainError::Config(
                "--resume needs --out DIR (the run folder)".into(),
            ));
        }
        (Some(file), _, _) => TrainConfig::load(file)?,
        (None, _, _) => {
            let mut c = preset.config();
            // A step schedule follows --epochs unless milestones are given.
            if let Some(epochs) = args.optim.epochs {
                c.schedule = preset.schedule(epochs, preset.step_schedule);
            }
            c
        }
    };
    args.apply(&mut config)?;
    if config.model.rules().all(|r| r.weight_mirror().is_none()) {
        config.mirror_warmup = 0;
    }
    if config.data.dir.as_os_str().is_empty() {
        config.data.dir = locate_data(config.data.dataset, args.data.download)?;
    }
    let data = RunData::open(&config.data, config.seed)?;
    config.model.num_classes = data.num_classes;
    config.model.in_channels = data.channels;
    config.model.image_side = data.side;
    config.validate()?;
    let out = out.cloned().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}-{}-s{}",
            preset.name,
            config.model.architecture,
            config.model.rule.name(),
            config.seed
        ))
    });
    // Rank 0 prepares the folder; the other ranks only read its checkpoint when resuming.
    let run = if world.is_main() {
        RunDir::open(&out, mode)?
    } else {
        RunDir::reading(&out)
    };
    let quiet = args.run.quiet || !world.is_main();
    if !quiet {
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
        resume: mode == RunMode::Resume,
        verbosity: if quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        },
        stop_after: None,
        world: world.clone(),
    };
    let model_config = config.model.clone();
    // A torchvision checkpoint, checked against the model before training (a resumed run's
    // own checkpoint holds everything).
    let pretrained = match (&config.pretrained, mode) {
        (Some(p), RunMode::New | RunMode::Overwrite) => {
            let bad = |e: wt_models::CheckpointError| TrainError::Config(e.to_string());
            let state = wt_models::StateDict::read(&p.path).map_err(bad)?;
            let cpu = wt_nn::wt_core::device::parse_device("flex").map_err(TrainError::Config)?;
            model_config
                .init(&cpu)
                .load_torchvision(&state, p.classifier, p.feedback)
                .map_err(bad)?;
            if !quiet {
                println!(
                    "pretrained: {} tensors from {} ({}B {})",
                    state.tensors.len(),
                    p.path.display(),
                    if p.classifier {
                        "classifier loaded; "
                    } else {
                        "classifier left at its initialisation; "
                    },
                    p.feedback
                );
            }
            Some((state, p.classifier, p.feedback))
        }
        _ => None,
    };
    let trained = fit(&config, &data, &run, options, |d| {
        let model = model_config.init(d);
        match &pretrained {
            Some((state, classifier, feedback)) => model
                .load_torchvision(state, *classifier, *feedback)
                .expect("the checkpoint was checked against this model above"),
            None => model,
        }
    })?;
    if let Some(log) = &data.skipped {
        let files = log.files();
        eprintln!(
            "skipped {} undecodable image loads ({} files){}",
            log.count(),
            files.len(),
            if files.is_empty() { "" } else { ":" }
        );
        for (file, why) in files {
            eprintln!("  {}: {why}", file.display());
        }
    }
    if world.is_main() {
        println!("{}", final_json(&config, &trained));
    }
    Ok(())
}

/// `main` of an example: parses the command line (`--help` prints the generated help; a bad
/// flag exits with status 2 and clap's message), runs, and exits with status 2 and the
/// message on error.
pub fn main(preset: Preset) {
    // CPU steps free and reallocate the same large temporaries: keep them (see the module).
    crate::allocator::keep_freed_memory();
    let args = TrainArgs::command()
        .name(preset.name)
        .bin_name(format!("cargo run --release --example {} --", preset.name))
        .get_matches();
    let args = TrainArgs::from_arg_matches(&args).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(preset, &args) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
