//! A character-level transformer language model trained with any learning rule: Tiny
//! Shakespeare's first 90 % trains, the last 10 % gives the validation bits per character, and
//! the trained model writes a sample at the end.
//!
//! ```text
//! cargo run --release --example charlm -- --rule kp --steps 2000
//! cargo run --release --example charlm -- --rule dfa --data /path/to/input.txt --device wgpu
//! cargo run --release --example charlm -- --rule kp --rule-for 'blocks.*.attn.*=bp'
//! ```
//! The text is `--data`, else `$WT_DATA/tinyshakespeare/input.txt`. `--help` lists the options
//! (4 pre-norm causal blocks of width 128, 4 heads, MLP 512, context 128, batch 32, AdamW lr
//! 1e-3 with 100 warm-up steps and a cosine to a tenth, weight decay 0.1). The run folder
//! (`--out`, default `runs/charlm-<rule>-s<seed>`) gets `config.json`, `metrics.csv` (one row
//! an evaluation: training loss, validation loss and bits per character, B–W and error angles
//! averaged over the layers), the checkpoint (`--resume` continues bit for bit: each step's
//! windows and random draws come from the seed and the step), `model.bpk` and `sample.txt`.
//! Ends with one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use wt::wt_core::device::parse_device;
use wt::wt_models::{CharTransformer, CharTransformerConfig, TransformerShape};
use wt::wt_nn::{
    FeedbackOptimizer, LayerRules, Positions, Rule, direct_targets, gradient_alignment,
    set_layer_rules, weight_alignment,
};
use wt::wt_train::checkpoint::{self, Progress};
use wt::wt_train::cli::{one_of, rule_override};
use wt::wt_train::{RunDir, RunMode, TrainError};
use wt_data::{CharCorpus, CharWindows};

#[derive(Parser, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[command(
    about = "Trains a character-level transformer with a learning rule",
    args_override_self = true
)]
struct Args {
    /// The text (UTF-8); default $WT_DATA/tinyshakespeare/input.txt
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Fraction of the text, from its end, held out for validation
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// Learning rule of every feedback layer
    #[arg(long, default_value = "bp", value_parser = one_of::<Rule>())]
    rule: Rule,
    /// Hold out the last F of the training text as the validation text (the real validation
    /// text is then never read): for choosing a recipe
    #[arg(long, value_name = "F")]
    holdout: Option<f64>,
    /// Rules of their own for the layers a path pattern names, e.g. 'blocks.*.attn.*=bp'
    #[arg(long, value_name = "PATTERN=RULE", value_delimiter = ',', value_parser = rule_override)]
    rule_for: Vec<(String, Rule)>,
    /// Characters a position sees (itself included)
    #[arg(long, default_value_t = 128)]
    context: usize,
    /// Width of the tokens
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Transformer blocks
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Attention heads
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Hidden width of the blocks' MLPs
    #[arg(long, default_value_t = 512)]
    d_ff: usize,
    /// Positions: learned or sinusoidal
    #[arg(long, default_value = "learned", value_parser = ["learned", "sinusoidal"])]
    positions: String,
    /// Windows a training step
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Training steps
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// AdamW's peak learning rate
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Linear warm-up steps
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// AdamW's decoupled weight decay
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Evaluate (and checkpoint) every N steps
    #[arg(long, default_value_t = 250)]
    eval_every: u64,
    /// Validation windows read at each evaluation (0: all of them)
    #[arg(long, default_value_t = 0)]
    eval_windows: usize,
    /// Characters sampled at the end
    #[arg(long, default_value_t = 500)]
    sample: usize,
    /// Start of the sample
    #[arg(long, default_value = "ROMEO:")]
    prompt: String,
    /// Sampling temperature
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Seed of the initialisation, the windows and every random draw
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// flex, ndarray, wgpu, cuda[:N] (what this build has)
    #[arg(long, default_value = "flex")]
    device: String,
    /// Run folder (default runs/charlm-<rule>-s<seed>)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint with the run's saved settings
    /// (`config.json`); flags given beside it override them (e.g. a larger --steps)
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Delete the run files in --out and start again
    #[arg(long)]
    overwrite: bool,
    /// Print only the final JSON line
    #[arg(long)]
    quiet: bool,
}

/// One evaluation's row of `metrics.csv`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    step: u64,
    lr: f64,
    train_loss: f64,
    valid_loss: f64,
    valid_bpc: f64,
    /// Mean B–W angle over the feedback layers (degrees; NaN where undefined, left out).
    weight_angle: f64,
    /// Mean error angle against backprop over the feedback layers, on one training batch.
    error_angle: f64,
    seconds: f64,
}

fn main() {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = resolved(args, &matches).and_then(|args| run(&args)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The settings a run goes by: the flags as given, or with `--resume` the run folder's saved
/// `config.json` with the flags given on the command line laid over it (a flag left at its
/// default does not reset a saved setting).
fn resolved(args: Args, matches: &clap::ArgMatches) -> Result<Args, Box<dyn std::error::Error>> {
    if !args.resume {
        return Ok(args);
    }
    let out = args
        .out
        .clone()
        .ok_or("--resume needs --out DIR (the run folder)")?;
    let path = out.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("--resume: cannot read {}: {e}", path.display()))?;
    let serde_json::Value::Object(mut saved) = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a charlm config: {e}", path.display()))?
    else {
        return Err(format!(
            "{}: not a charlm config (expected a JSON object)",
            path.display()
        )
        .into());
    };
    let serde_json::Value::Object(given) = serde_json::to_value(&args)? else {
        unreachable!("Args serialises to an object")
    };
    for (key, value) in given {
        if matches.value_source(&key) == Some(ValueSource::CommandLine) {
            saved.insert(key, value);
        }
    }
    let merged: Args = serde_json::from_value(serde_json::Value::Object(saved))
        .map_err(|e| format!("{}: not a charlm config: {e}", path.display()))?;
    Ok(Args {
        resume: true,
        overwrite: false,
        out: Some(out),
        ..merged
    })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let path = match &args.data {
        Some(p) => p.clone(),
        None => PathBuf::from(std::env::var_os("WT_DATA").ok_or(
            "no --data, and WT_DATA is not set to the folder of data sets \
             (tinyshakespeare/input.txt)",
        )?)
        .join("tinyshakespeare/input.txt"),
    };
    for (flag, value) in [
        ("--batch", args.batch),
        ("--context", args.context),
        ("--d-model", args.d_model),
        ("--depth", args.depth),
        ("--heads", args.heads),
        ("--d-ff", args.d_ff),
    ] {
        if value == 0 {
            return Err(format!("{flag} must be at least 1").into());
        }
    }
    let mut corpus = CharCorpus::read(&path, args.validation)?;
    if let Some(f) = args.holdout {
        corpus = corpus.holdout(f)?;
    }
    if corpus.valid.len() <= args.context {
        return Err(format!(
            "{}: {} validation characters, a window needs {} (lower --context or raise \
             --validation)",
            path.display(),
            corpus.valid.len(),
            args.context + 1
        )
        .into());
    }
    if corpus.train.len() <= args.context + 1 {
        return Err(format!(
            "{}: {} training characters, a window needs {}",
            path.display(),
            corpus.train.len(),
            args.context + 2
        )
        .into());
    }
    let device = parse_device(&args.device)?;
    let ad = device.clone().autodiff();
    let vocab = corpus.vocab.len();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!("runs/charlm-{}-s{}", args.rule.name(), args.seed))
    });
    let run_dir = RunDir::open(&out, RunMode::from_flags(args.resume, args.overwrite))?;

    ad.seed(args.seed);
    let shape = TransformerShape {
        patch: 1,
        d_model: args.d_model,
        depth: args.depth,
        n_heads: args.heads,
        d_ff: args.d_ff,
        positions: if args.positions == "sinusoidal" {
            Positions::Sinusoidal
        } else {
            Positions::Learned
        },
    };
    if !args.d_model.is_multiple_of(args.heads) {
        return Err(format!(
            "--d-model {} is not a multiple of --heads {}",
            args.d_model, args.heads
        )
        .into());
    }
    let model = CharTransformerConfig::new(vocab, args.context)
        .with_shape(shape)
        .with_rule(args.rule)
        .init(&ad);
    let overrides: LayerRules = (args.rule_for.iter())
        .map(|(p, r)| (p.clone(), r.with_outputs(vocab)))
        .collect();
    let model = set_layer_rules(model, &overrides)?;
    let optim = FeedbackOptimizer::wrap(
        AdamWConfig::new()
            .with_weight_decay(args.weight_decay as f32)
            .init(),
        0.0,
    );
    let (mut model, mut optim, mut step, mut rows) = if args.resume {
        let path = run_dir.checkpoint();
        let (model, optim, progress) = checkpoint::restore(&path, model, optim)?;
        let step = progress.global_step;
        let rows: Vec<Row> = read_rows(&run_dir.metrics_csv())?
            .into_iter()
            .filter(|r| r.step <= step)
            .collect();
        say(
            args,
            format!("resumed from {} at step {step}", path.display()),
        );
        (model, optim, step, rows)
    } else {
        (model, optim, 0u64, Vec::new())
    };
    // Written once the checkpoint (if any) has loaded, so a failed resume leaves it as it was.
    RunDir::write_atomic(
        &run_dir.root().join("config.json"),
        serde_json::to_string_pretty(args)?.as_bytes(),
    )?;
    let params = model.num_params();
    say(
        args,
        format!(
            "charlm: {} characters ({} train, {} valid), vocab {vocab}, {params} parameters \
             (B included), rule {}, device {}",
            corpus.train.len() + corpus.valid.len(),
            corpus.train.len(),
            corpus.valid.len(),
            args.rule.name(),
            args.device
        ),
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let tokens_per_step = (args.batch * args.context) as f64;
    let started = Instant::now();
    let mut window_loss = (0.0, 0u64);
    let (mut since, mut steps_since) = (Instant::now(), 0u64);
    let offset = rows.last().map_or(0.0, |r| r.seconds);
    while step < args.steps {
        // The step's windows and draws (brSF's B, the mirror's noise) from (seed, step) alone.
        let step_seed = mix(args.seed, step);
        ad.seed(step_seed);
        let w = CharWindows::random(&corpus.train, args.batch, args.context, step_seed);
        let (x, y) = tensors(&w, &ad);
        let lr = learning_rate(args, step);
        let loss = lm_loss(&model, &loss_fn, &x, &y, vocab);
        let value = loss.clone().into_scalar::<f64>();
        if !value.is_finite() {
            return Err(format!(
                "training diverged: loss {value} at step {step}; the last checkpoint is kept \
                 (lower --lr and --resume, or start again)"
            )
            .into());
        }
        window_loss = (window_loss.0 + value, window_loss.1 + 1);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.try_step(lr, model, grads)?;
        step += 1;
        steps_since += 1;
        if step.is_multiple_of(args.eval_every.max(1)) || step == args.steps {
            let (valid_loss, valid_bpc) = evaluate(&model.valid(), &corpus, args, &device);
            let (weight_angle, error_angle) = angles(&model, &corpus, args, &loss_fn, &ad);
            let row = Row {
                step,
                lr,
                train_loss: window_loss.0 / window_loss.1.max(1) as f64,
                valid_loss,
                valid_bpc,
                weight_angle,
                error_angle,
                seconds: offset + started.elapsed().as_secs_f64(),
            };
            window_loss = (0.0, 0);
            say(
                args,
                format!(
                    "step {step}: train loss {:.4}, valid {:.4} nats = {:.4} bits/char, B–W {:.1}°, \
                     error {:.1}°, {:.0} chars/s",
                    row.train_loss,
                    valid_loss,
                    valid_bpc,
                    weight_angle,
                    error_angle,
                    tokens_per_step * steps_since as f64 / since.elapsed().as_secs_f64().max(1e-9)
                ),
            );
            rows.push(row);
            (since, steps_since) = (Instant::now(), 0);
            write_rows(&run_dir.metrics_csv(), &rows)?;
            let progress = Progress {
                epochs_done: rows.len(),
                global_step: step,
                history: Vec::new(),
            };
            checkpoint::save(&run_dir.checkpoint(), &progress, &model, &optim)?;
        }
    }
    let model = model.valid();
    RunDir::write_atomic(&run_dir.model(), &checkpoint::record_bytes(&model)?)?;
    let text = sample(&model, &corpus, args, &device);
    RunDir::write_atomic(&run_dir.root().join("sample.txt"), text.as_bytes())?;
    say(
        args,
        format!("sample ({} characters):\n{text}", args.sample),
    );
    let last = rows.last();
    println!(
        "{}",
        serde_json::json!({
            "example": "charlm",
            "rule": args.rule.name(),
            "steps": step,
            "params": params,
            "valid_loss": last.map(|r| r.valid_loss),
            "valid_bpc": last.map(|r| r.valid_bpc),
            "out": out,
        })
    );
    Ok(())
}

fn say(args: &Args, line: String) {
    if !args.quiet {
        eprintln!("{line}");
    }
}

/// SplitMix64 of `seed` and `step`: one stream a step.
fn mix(seed: u64, step: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(step.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Linear warm-up to `lr` over `warmup` steps, then a cosine to `lr / 10` at the last step.
fn learning_rate(args: &Args, step: u64) -> f64 {
    if step < args.warmup {
        return args.lr * (step + 1) as f64 / args.warmup as f64;
    }
    let span = args.steps.saturating_sub(args.warmup).max(1) as f64;
    let t = (step - args.warmup) as f64 / span;
    let floor = args.lr / 10.0;
    floor + (args.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

fn tensors(w: &CharWindows, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let shape = [w.batch, w.context];
    (
        Tensor::from_data(TensorData::new(w.inputs.clone(), shape), device),
        Tensor::from_data(TensorData::new(w.targets.clone(), shape), device),
    )
}

/// The mean cross-entropy (nats) of the next characters; DRTP's layers get the targets.
fn lm_loss(
    model: &CharTransformer,
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
    x: &Tensor<2, Int>,
    y: &Tensor<2, Int>,
    vocab: usize,
) -> Tensor<1> {
    let [batch, context] = x.dims();
    let logits = model.forward(x.clone());
    direct_targets(y.clone(), 1.0 / (batch * context) as f64);
    loss_fn.forward(
        logits.reshape([batch * context, vocab]),
        y.clone().reshape([batch * context]),
    )
}

/// Validation loss (nats a character) and bits per character over the validation windows.
fn evaluate(
    model: &CharTransformer,
    corpus: &CharCorpus,
    args: &Args,
    device: &Device,
) -> (f64, f64) {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut windows = CharWindows::sequential(&corpus.valid, args.batch, args.context);
    if args.eval_windows > 0 {
        let keep = args.eval_windows.div_ceil(args.batch);
        windows.truncate(keep);
    }
    let (mut sum, mut count) = (0.0, 0usize);
    for w in &windows {
        let (x, y) = tensors(w, device);
        let n = w.batch * w.context;
        let loss = lm_loss(model, &loss_fn, &x, &y, corpus.vocab.len()).into_scalar::<f64>();
        sum += loss * n as f64;
        count += n;
    }
    let nats = sum / count.max(1) as f64;
    (nats, nats / std::f64::consts::LN_2)
}

/// Mean B–W angle and mean error angle (against backprop, on one training batch) over the
/// feedback layers whose angles are defined.
fn angles(
    model: &CharTransformer,
    corpus: &CharCorpus,
    args: &Args,
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
    device: &Device,
) -> (f64, f64) {
    let mean = |v: Vec<f64>| {
        let v: Vec<f64> = v.into_iter().filter(|a| a.is_finite()).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let weight = mean(
        weight_alignment(model)
            .into_iter()
            .map(|l| l.weight.angle_deg)
            .collect(),
    );
    let w = CharWindows::random(
        &corpus.train,
        args.batch.min(16),
        args.context,
        args.seed ^ 0xa11,
    );
    let (x, y) = tensors(&w, device);
    let vocab = corpus.vocab.len();
    let probe = gradient_alignment(model, |m: &CharTransformer| {
        lm_loss(m, loss_fn, &x, &y, vocab)
    });
    let error = mean(probe.layers.iter().map(|l| l.error_angle_deg).collect());
    (weight, error)
}

/// `args.sample` characters after `args.prompt`, drawn at `args.temperature` from the seed.
fn sample(model: &CharTransformer, corpus: &CharCorpus, args: &Args, device: &Device) -> String {
    let mut tokens: Vec<u32> = args
        .prompt
        .chars()
        .filter_map(|c| corpus.token(c))
        .collect();
    if tokens.is_empty() {
        tokens.push(corpus.train[0]);
    }
    let start = tokens.len();
    let mut state = mix(args.seed, u64::MAX);
    let vocab = corpus.vocab.len();
    for _ in 0..args.sample {
        let window = &tokens[tokens.len().saturating_sub(model.context())..];
        let x = Tensor::<2, Int>::from_data(
            TensorData::new(
                window.iter().map(|&t| t as i64).collect(),
                [1, window.len()],
            ),
            device,
        );
        let logits: Vec<f32> = model
            .forward(x)
            .slice([0..1, window.len() - 1..window.len(), 0..vocab])
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 logits");
        let t = args.temperature.max(1e-6);
        let top = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| ((l as f64 - top) / t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        state = mix(state, 1);
        let mut u = (state >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut next = vocab - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                next = i;
                break;
            }
            u -= w;
        }
        tokens.push(next as u32);
    }
    format!("{}{}", args.prompt, corpus.decode(&tokens[start..]))
}

fn write_rows(path: &std::path::Path, rows: &[Row]) -> Result<(), TrainError> {
    let mut csv =
        String::from("step,lr,train_loss,valid_loss,valid_bpc,weight_angle,error_angle,seconds\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{:.3}\n",
            r.step,
            r.lr,
            r.train_loss,
            r.valid_loss,
            r.valid_bpc,
            r.weight_angle,
            r.error_angle,
            r.seconds
        ));
    }
    RunDir::write_atomic(path, csv.as_bytes())
}

fn read_rows(path: &std::path::Path) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |k: usize| -> Result<f64, String> {
            f.get(k).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| {
                format!(
                    "{}: line {}: field {k} is not a number",
                    path.display(),
                    i + 1
                )
            })
        };
        rows.push(Row {
            step: num(0)? as u64,
            lr: num(1)?,
            train_loss: num(2)?,
            valid_loss: num(3)?,
            valid_bpc: num(4)?,
            weight_angle: num(5)?,
            error_angle: num(6)?,
            seconds: num(7)?,
        });
    }
    Ok(rows)
}
