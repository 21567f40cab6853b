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
//! `imagenet-classes/imagenet1k_classes.tsv` under `$WT_DATA` or the cache folder, 1000
//! outputs); pass `--class-index none` to number the classes by sorted folder names instead.
//! Without `--data` the tree is `imagenet`, `imagenette` or `imagenette-mini` under `$WT_DATA`
//! (`../shared/data/imagenette-mini` here). `--help` lists every option.

fn main() {
    wt::wt_train::cli::main(wt::wt_train::cli::Preset::imagenet());
}
