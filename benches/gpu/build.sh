#!/usr/bin/env bash
# Builds the model-level benchmark for an NVIDIA machine that cannot reach a package registry:
# run this on an x86-64 Linux machine with the registries, copy benches/gpu/out/ over, and run
# benches/gpu/run.sh there. The binary has the wgpu and cuda backends (CUDA is loaded at run
# time by cudarc; the build needs no CUDA toolkit). Stripped, it is well under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wt-target-gpu}"
cargo build --release --features wgpu,cuda --example bench_models --example bench_rules --example mnist
mkdir -p benches/gpu/out
for b in bench_models bench_rules mnist; do
  cp "$CARGO_TARGET_DIR/release/examples/$b" benches/gpu/out/
  strip benches/gpu/out/$b
done
cp benches/gpu/run.sh benches/gpu/out/
du -sh benches/gpu/out
