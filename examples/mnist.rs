//! Trains a model of the zoo on MNIST or Fashion-MNIST with any rule, writing a run folder
//! (config, metrics CSV/JSON lines, plots, checkpoints) and ending with one JSON line.
//!
//! ```text
//! cargo run --release --example mnist -- --rule kp --epochs 10
//! cargo run --release --example mnist -- --dataset fashion_mnist --model lenet --rule usf
//! cargo run --release --example mnist -- --out runs/mnist-mlp-kp-s1 --resume
//! ```
//! Defaults: MLP 784-1000-1000-10, SGD lr 0.01, momentum 0.9, weight decay 1e-4, cosine
//! schedule, batch 128, 10 epochs, device flex. `--help` lists every option.

fn main() {
    wt::wt_train::cli::main(wt::wt_train::cli::Preset::mnist());
}
