//! Data pipeline throughput: images per second through Burn's data loader for the CIFAR
//! training pipeline (batches of 128, crop + flip + normalise) and the ImageNet training
//! pipeline (decode + RandomResizedCrop 224 + flip + normalise) on any ImageFolder tree.
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

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use clap::Parser;
use wt::wt_train::DatasetKind;
use wt::wt_train::cli::positive;
use wt_data::{
    CifarBatcher, CifarDataset, CifarTransform, ImageBatch, ImageFolderDataset, ImageNetBatcher,
    ImageNetTransform, Indexed, SkipLog, Split,
};

/// Data pipeline throughput through Burn's data loader.
#[derive(Parser)]
struct Args {
    /// ImageNet-style training folder (a folder of class folders)
    #[arg(long = "imagenet-train", value_name = "DIR")]
    imagenet: Option<PathBuf>,
    /// CIFAR-10 folder or archive (default: found under $WT_DATA or the cache; `none` skips)
    #[arg(long, value_name = "DIR")]
    cifar: Option<PathBuf>,
    /// Data-loader worker threads
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

/// Runs one pass of `loader`, returning how many images it produced; a batch that failed to
/// load (an image that does not decode, say) ends the run with its error.
fn count_images(loader: &dyn DataLoader<ImageBatch>) -> Result<usize, String> {
    let mut n = 0;
    for batch in loader.iter() {
        n += batch.map_err(|e| e.to_string())?.targets.dims()[0];
    }
    Ok(n)
}

/// The ImageNet loader over `ds`: strict items (`ImageItem`) or skipping ones (`Option<ImageItem>`).
fn imagenet_loader<I, D>(
    args: &Args,
    batcher: &ImageNetBatcher,
    device: &Device,
    ds: D,
) -> Arc<dyn DataLoader<ImageBatch>>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    D: Dataset<I> + 'static,
    ImageNetBatcher: Batcher<(usize, I), ImageBatch>,
{
    DataLoaderBuilder::new(batcher.clone())
        .batch_size(args.batch)
        .shuffle(1)
        .num_workers(args.workers)
        .set_device(device.clone())
        .build(Indexed(ds))
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
        let loader = DataLoaderBuilder::new(batcher)
            .batch_size(128)
            .shuffle(1)
            .num_workers(args.workers)
            .set_device(device.clone())
            .build(Indexed(ds));
        let start = Instant::now();
        let n = count_images(loader.as_ref())?;
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
    let (loader, skips) = if args.skip_bad {
        let ds = ds.skip_undecodable();
        let log = ds.log().clone();
        (imagenet_loader(&args, &batcher, &device, ds), Some(log))
    } else {
        (imagenet_loader(&args, &batcher, &device, ds), None)
    };
    let (start, mut n) = (Instant::now(), 0usize);
    for epoch in 0..args.epochs {
        batcher.set_epoch(epoch as u64);
        n += count_images(loader.as_ref())?;
    }
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
