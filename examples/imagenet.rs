//! Trains ResNet-18 (or `--model resnet50`) on an ImageNet-style folder tree
//! (`train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`) with any rule: RandomResizedCrop 224 + flip
//! for training, resize 256 + centre crop 224 for evaluation, top-1 and top-5 accuracy,
//! writing a run folder and ending with one JSON line.
//!
//! ```text
//! cargo run --release --example imagenet -- --rule kp --epochs 2
//! cargo run --release --example imagenet -- --data /data/imagenet --rule wm --device cuda --batch 256 --epochs 90
//! ```
//! Labels follow the ILSVRC class index (`--class-index`, default
//! `../shared/data/imagenet-classes/imagenet1k_classes.tsv`, 1000 outputs); pass
//! `--class-index none` to number the classes by sorted folder names instead. The default
//! data is the small `../shared/data/imagenette-mini` tree. `--help` lists every option.

fn main() {
    wt::wt_train::cli::main(wt::wt_train::cli::Preset::imagenet());
}
