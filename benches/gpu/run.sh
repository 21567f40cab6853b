#!/usr/bin/env bash
# Runs on the GPU machine, from the folder holding the binaries built by build.sh; writes
# gpu_bench.txt (tables) and gpu_bench.jsonl (one JSON line per row). About 10 minutes.
set -uo pipefail
cd "$(dirname "$0")"
out=gpu_bench.txt
{
  echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
  for dev in cuda wgpu; do
    echo "## bench_models --device $dev"
    timeout 240 ./bench_models --device "$dev" --steps 10 --warmup 3 || echo "bench_models $dev failed: $?"
    echo "## bench_rules --device $dev"
    timeout 120 ./bench_rules --device "$dev" --reps 20 || echo "bench_rules $dev failed: $?"
  done
  # Data-parallel check: one epoch of the MNIST MLP on one GPU and on every GPU (--devices).
  mnist=${MNIST_DIR:-../../../../shared/data/mnist}
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  if [ "$gpus" -ge 2 ] && [ -d "$mnist" ]; then
    all=$(seq -s, -f 'cuda:%g' 0 $((gpus - 1)))
    echo "## mnist, one epoch: cuda:0 alone, then --devices $all"
    timeout 120 ./mnist --data "$mnist" --device cuda:0 --epochs 1 --no-error-alignment \
      --out runs/ddp-one --overwrite || echo "mnist cuda:0 failed: $?"
    timeout 120 ./mnist --data "$mnist" --devices "$all" --epochs 1 --no-error-alignment \
      --out runs/ddp-all --overwrite || echo "mnist --devices $all failed: $?"
  else
    echo "## data-parallel check skipped: $gpus GPU(s), MNIST at $mnist"
  fi
} 2>&1 | tee "$out"
grep '^{' "$out" > gpu_bench.jsonl
