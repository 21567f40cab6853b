//! Data pipeline throughput: images per second through the trainer's own data path (the
//! sources and the ordered loader `wt_train::fit` reads its batches from, with the same
//! worker threads) for the CIFAR training pipeline (batches of 128, crop + flip + normalise)
//! and the ImageNet training pipeline (decode + RandomResizedCrop 224 + flip + normalise) on
//! any ImageFolder tree.
//!
//! ```text
//! cargo run --release --example data_throughput -- --imagenet-train ../shared/data/imagenette-mini/train --workers 2
//! ```
//! `--help` lists the options (`--imagenet-train DIR`, `--cifar DIR|none`, workers, batch,
//! passes, `--skip-bad`). Ends with one JSON line for the ImageNet pipeline,
//! `{"images":N,"images_per_s":X,"skipped":K}`: N images loaded and K skipped over all passes
//! (a bad file counts once per pass); the skipped files are listed on stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use clap::Parser;
use wt::wt_train::DatasetKind;
use wt::wt_train::cli::positive;
use wt::wt_train::data::{
    BatchSource, CifarSource, DataSplit, ImageFolderSource, SkippingImageFolderSource, permutation,
};
use wt::wt_train::loader::OrderedLoader;
use wt_data::{
    CifarBatcher, CifarDataset, CifarTransform, ImageFolderDataset, ImageNetBatcher,
    ImageNetTransform, SkipLog, Split,
};

/// Data pipeline throughput through the trainer's data path.
#[derive(Parser)]
struct Args {
    /// ImageNet-style training folder (a folder of class folders)
    #[arg(long = "imagenet-train", value_name = "DIR")]
    imagenet: Option<PathBuf>,
    /// CIFAR-10 folder or archive (default: found under $WT_DATA or the cache; `none` skips)
    #[arg(long, value_name = "DIR")]
    cifar: Option<PathBuf>,
    /// Loader worker threads (as `--workers` of the training examples)
    #[arg(long, default_value_t = 2, value_parser = positive)]
    workers: usize,
    /// ImageNet batch size
    #[arg(long, default_value_t = 64, value_parser = positive)]
    batch: usize,
    /// Passes over the ImageNet tree
    #[arg(long, default_value_t = 2, value_parser = positive)]
    epochs: usize,
    /// Skip images that do not decode and count them (without it the first one stops the run
    /// with an error naming the file)
    #[arg(long)]
    skip_bad: bool,
}

fn parse() -> Args {
    let mut a = Args::parse();
    a.cifar = match a.cifar.take() {
        Some(dir) if dir.as_os_str() == "none" => None,
        Some(dir) => Some(dir),
        None => wt_data::locate::find(DatasetKind::Cifar10.usual_names()),
    };
    a
}

/// Runs `passes` shuffled passes over `source` in batches of `batch` through the trainer's
/// ordered loader (each pass augmented for its epoch), returning how many images came out; a
/// batch that failed to load (an image that does not decode, say) ends the run with its error.
fn count_images(
    source: Arc<dyn BatchSource>,
    batch: usize,
    passes: usize,
    workers: usize,
    device: &Device,
) -> Result<usize, String> {
    let split = DataSplit::all(source);
    let mut n = 0;
    for epoch in 0..passes as u64 {
        let order = permutation(split.len(), 1 + epoch);
        for b in OrderedLoader::new(&split, &order, batch, epoch, device, workers) {
            n += b.map_err(|e| e.to_string())?.targets.dims()[0];
        }
    }
    Ok(n)
}

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = parse();
    let device = Device::flex();
    println!("pipeline                 workers  images  seconds  images/s");
    if let Some(dir) = &args.cifar {
        let ds = CifarDataset::cifar10(dir, Split::Train).map_err(|e| e.to_string())?;
        let batcher = CifarBatcher::new(CifarTransform::train(), 1);
        let source = Arc::new(CifarSource::new(Arc::new(ds), batcher));
        let start = Instant::now();
        let n = count_images(source, 128, 1, args.workers, &device)?;
        let s = start.elapsed().as_secs_f64();
        println!(
            "cifar10 train (b128)     {:>7}  {n:>6}  {s:>7.2}  {:>8.0}",
            args.workers,
            n as f64 / s
        );
    }
    let Some(dir) = &args.imagenet else {
        return Ok(());
    };
    let ds = ImageFolderDataset::from_dir(dir, None).map_err(|e| e.to_string())?;
    let batcher = ImageNetBatcher::new(ImageNetTransform::train(), 1);
    let (source, skips): (Arc<dyn BatchSource>, _) = if args.skip_bad {
        let ds = ds.skip_undecodable();
        let log = ds.log().clone();
        let source = SkippingImageFolderSource::new(Arc::new(ds), batcher);
        (Arc::new(source), Some(log))
    } else {
        (
            Arc::new(ImageFolderSource::new(Arc::new(ds), batcher)),
            None,
        )
    };
    let start = Instant::now();
    let n = count_images(source, args.batch, args.epochs, args.workers, &device)?;
    let s = start.elapsed().as_secs_f64();
    println!(
        "imagenet train (b{:<3})   {:>7}  {n:>6}  {s:>7.2}  {:>8.0}",
        args.batch,
        args.workers,
        n as f64 / s
    );
    let skipped = skips.as_ref().map_or(0, SkipLog::count);
    if let Some(log) = &skips {
        for (file, why) in log.files() {
            eprintln!("skipped {}: {why}", file.display());
        }
    }
    println!(
        "{{\"images\":{n},\"images_per_s\":{:.1},\"skipped\":{skipped}}}",
        n as f64 / s
    );
    Ok(())
}
