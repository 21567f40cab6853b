//! Trains a model of the zoo on CIFAR-10 (or CIFAR-100 with `--dataset cifar100`) with any
//! rule: BioTorch's recipe (ResNet-20, SGD lr 0.1, momentum 0.9, weight decay 1e-4, Xavier
//! init, 45k/5k split, crop + flip, lr ÷10 at 40/60/80 % of the epochs), writing a run folder
//! and ending with one JSON line.
//!
//! ```text
//! cargo run --release --example cifar10 -- --data ../shared/data/cifar-10-approx --model resnet20 --rule kp --epochs 20 --out runs/r20-kp
//! cargo run --release --example cifar10 -- --out runs/r20-kp --resume
//! cargo run --release --example cifar10 -- --config runs/r20-kp/config.toml --out runs/r20-kp-again
//! ```
//! `--data` takes `cifar-10-binary.tar.gz`, `cifar-10-batches-bin/` or its parent; without it
//! the data is looked for under `$WT_DATA` and the cache folder, and `--download` fetches the
//! official archive (docs/training.md). `../shared/data/cifar-10-approx` is an approximate copy
//! (see its README). `--help` lists every option.

fn main() {
    wt::wt_train::cli::main(wt::wt_train::cli::Preset::cifar10());
}
