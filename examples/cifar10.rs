//! Trains a model of the zoo on CIFAR-10 (or CIFAR-100 with `--dataset cifar100`) with any
//! rule: BioTorch's recipe (ResNet-20, SGD lr 0.1, momentum 0.9, weight decay 1e-4, Xavier
//! init, 45k/5k split, crop + flip, lr ÷10 at 40/60/80 % of the epochs), writing a run folder
//! and ending with one JSON line.
//!
//! ```text
//! cargo run --release --example cifar10 -- --model resnet20 --rule kp --epochs 20 --out runs/r20-kp
//! cargo run --release --example cifar10 -- --out runs/r20-kp --resume
//! cargo run --release --example cifar10 -- --config runs/r20-kp/config.toml --out runs/r20-kp-again
//! ```
//! The default data is `../shared/data/cifar-10-approx` (an approximate copy of CIFAR-10; see
//! its README); point `--data` at `cifar-10-binary.tar.gz` or `cifar-10-batches-bin/`.
//! `--help` lists every option.

fn main() {
    wt::wt_train::cli::main(wt::wt_train::cli::Preset::cifar10());
}
