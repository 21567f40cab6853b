//! torchvision ResNet weights in and out of wt.
//!
//! ```text
//! # logits of a torchvision checkpoint (.pth or .safetensors) on an input tensor, in wt
//! cargo run --release --example torchvision -- logits --checkpoint r18.pth --depth 18 \
//!     --input x.safetensors --out wt-logits.safetensors
//! # a trained run's model as torchvision safetensors (its keys, its layouts)
//! cargo run --release --example torchvision -- export --run runs/imagenet-resnet18-kp-s1 \
//!     --out r18-kp.safetensors
//! # a torchvision checkpoint read into wt and written back (the same path as a run's export)
//! cargo run --release --example torchvision -- export --checkpoint r18.pth --depth 18 \
//!     --out back.safetensors
//! ```
//!
//! Fine-tuning from torchvision weights is a flag of the training examples: `--pretrained
//! FILE` (`imagenet`, `cifar10`), with `--pretrained-skip-fc` for another class count.
//! `benches/reference/torchvision_check.py` runs this example against torchvision.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use clap::{Parser, Subcommand};
use wt::wt_models::torchvision::{
    PretrainedFeedback, StateDict, load_torchvision, torchvision_safetensors,
};
use wt::wt_models::{ImageClassifier, ResNet, ResNetConfig, ResNetDepth, Stem};
use wt::wt_train::{RunDir, TrainConfig};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluation-mode logits of a torchvision checkpoint, loaded into wt's ResNet
    Logits {
        #[command(flatten)]
        source: Checkpoint,
        /// safetensors file holding the input `[n, 3, h, w]` as its tensor `input` (f32)
        #[arg(long)]
        input: PathBuf,
        /// safetensors file to write the logits `[n, classes]` to, as `logits`
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a model as torchvision safetensors: a run folder's final model (`--run`), or a
    /// checkpoint read into wt (`--checkpoint`)
    Export {
        /// Run folder (its config.toml and model.bpk)
        #[arg(long, conflicts_with = "checkpoint")]
        run: Option<PathBuf>,
        #[command(flatten)]
        source: Option<Checkpoint>,
        /// Output file (.safetensors)
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct Checkpoint {
    /// torchvision state dict (.pth / .pt, or .safetensors)
    #[arg(long)]
    checkpoint: PathBuf,
    /// ResNet depth: 18, 34, 50, 101 or 152
    #[arg(long, default_value_t = 18)]
    depth: usize,
    /// Classes of the checkpoint's classifier
    #[arg(long, default_value_t = 1000)]
    classes: usize,
}

impl Checkpoint {
    /// The checkpoint in a wt ResNet (ImageNet stem, backprop).
    fn load(&self, device: &Device) -> Result<ResNet, String> {
        let depth = match self.depth {
            18 => ResNetDepth::R18,
            34 => ResNetDepth::R34,
            50 => ResNetDepth::R50,
            101 => ResNetDepth::R101,
            152 => ResNetDepth::R152,
            d => return Err(format!("--depth {d}: expected 18, 34, 50, 101 or 152")),
        };
        let state = StateDict::read(&self.checkpoint).map_err(|e| e.to_string())?;
        let model = ResNetConfig::new(depth, self.classes)
            .with_stem(Stem::ImageNet)
            .init(device);
        load_torchvision(model, &state, true, PretrainedFeedback::Rule).map_err(|e| e.to_string())
    }
}

fn read_input(path: &Path, device: &Device) -> Result<Tensor<4>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let view = file
        .tensor("input")
        .map_err(|e| format!("{}: no tensor `input` ({e})", path.display()))?;
    let (safetensors::Dtype::F32, &[n, c, h, w]) = (view.dtype(), view.shape()) else {
        return Err(format!(
            "{}: `input` is {:?} {:?}; expected f32 [n, 3, h, w]",
            path.display(),
            view.dtype(),
            view.shape()
        ));
    };
    let values: Vec<f32> = (view.data().chunks_exact(4))
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Tensor::from_data(
        TensorData::new(values, [n, c, h, w]),
        device,
    ))
}

fn write_logits(path: &Path, logits: Tensor<2>) -> Result<(), String> {
    let shape = logits.dims().to_vec();
    let raw: Vec<u8> = (logits.into_data().iter::<f32>())
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &raw)
        .map_err(|e| e.to_string())?;
    let bytes = safetensors::serialize([("logits", view)], None).map_err(|e| e.to_string())?;
    RunDir::write_atomic(path, &bytes).map_err(|e| e.to_string())
}

/// A run folder's final model (its config rebuilds the architecture, `model.bpk` the values).
fn run_model(dir: &Path, device: &Device) -> Result<ResNet, String> {
    let run = RunDir::existing(dir).map_err(|e| e.to_string())?;
    let config = TrainConfig::load(&run.config()).map_err(|e| e.to_string())?;
    let model = config
        .model
        .init(device)
        .try_load_file(run.model())
        .map_err(|e| format!("{}: {e:?}", run.model().display()))?;
    match model {
        wt::wt_models::Model::ResNet(r) => Ok(r),
        _ => Err(format!(
            "{}: the run trained {}, not a ResNet-18/34/50/101/152",
            dir.display(),
            config.model.architecture
        )),
    }
}

fn main() -> Result<(), String> {
    let cli = Cli::parse();
    let device = Device::flex();
    match cli.command {
        Command::Logits { source, input, out } => {
            let model = source.load(&device)?.valid();
            let logits = model.forward(read_input(&input, &device)?);
            write_logits(&out, logits)?;
            println!(
                "logits of {} → {}",
                source.checkpoint.display(),
                out.display()
            );
        }
        Command::Export { run, source, out } => {
            let model = match (run, source) {
                (Some(dir), _) => run_model(&dir, &device)?,
                (None, Some(source)) => source.load(&device)?,
                (None, None) => return Err("export needs --run DIR or --checkpoint FILE".into()),
            };
            let bytes = torchvision_safetensors(&model).map_err(|e| e.to_string())?;
            RunDir::write_atomic(&out, &bytes).map_err(|e| e.to_string())?;
            println!(
                "{} (torchvision's keys, {} bytes)",
                out.display(),
                bytes.len()
            );
        }
    }
    Ok(())
}
