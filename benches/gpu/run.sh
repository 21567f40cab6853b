#!/usr/bin/env bash
# Runs on the GPU machine, from the folder holding the bundle built by build.sh; writes
# gpu_bench.txt (tables, the adapter found) and gpu_bench.jsonl (one JSON line per row).
# About 10 minutes; `run.sh --quick` is a one-minute smoke test (MLP only, 2 steps).
set -uo pipefail
cd "$(dirname "$0")"
for z in bench_models.gz bench_rules.gz mnist.gz; do
  [ -e "$z" ] && { gunzip -kf "$z" && chmod +x "${z%.gz}" || { echo "run.sh: cannot unpack $z" >&2; exit 2; }; }
done
# The system's Vulkan loader first; the one carried in lib/ where the image has none.
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$PWD/lib"
quick=${1:-}
models=(); rules=(--reps 20); steps=(--steps 10 --warmup 3); t_models=240; t_rules=120
if [ "$quick" = "--quick" ]; then
  models=(--models mlp); rules=(--reps 2 --warmup 1); steps=(--steps 2 --warmup 1)
  t_models=120; t_rules=120
elif [ -n "$quick" ]; then
  echo "run.sh: unknown option $quick (expected --quick or nothing)" >&2
  exit 2
fi
devices=wgpu
grep -q cuda FEATURES 2>/dev/null && devices="cuda wgpu"
out=gpu_bench.txt
{
  echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
  echo "# bundle features: $(cat FEATURES 2>/dev/null); Vulkan ICDs: $(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | grep json | tr '\n' ' ')"
  for dev in $devices; do
    echo "## bench_models --device $dev"
    timeout "$t_models" ./bench_models --device "$dev" "${models[@]}" "${steps[@]}" \
      || echo "bench_models $dev failed: $?"
    echo "## bench_rules --device $dev"
    timeout "$t_rules" ./bench_rules --device "$dev" "${rules[@]}" || echo "bench_rules $dev failed: $?"
  done
  # Data-parallel check: one epoch of the MNIST MLP on one GPU and on every GPU (--devices).
  mnist=${MNIST_DIR:-../../../../shared/data/mnist}
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  dev=${devices%% *}
  if [ "$quick" != "--quick" ] && [ "$gpus" -ge 2 ] && [ -d "$mnist" ]; then
    all=$(seq -s, -f "$dev:%g" 0 $((gpus - 1)))
    echo "## mnist, one epoch: $dev:0 alone, then --devices $all"
    timeout 120 ./mnist --data "$mnist" --device "$dev:0" --epochs 1 --no-error-alignment \
      --out runs/ddp-one --overwrite || echo "mnist $dev:0 failed: $?"
    timeout 120 ./mnist --data "$mnist" --devices "$all" --epochs 1 --no-error-alignment \
      --out runs/ddp-all --overwrite || echo "mnist --devices $all failed: $?"
  else
    echo "## data-parallel check skipped: $gpus GPU(s), MNIST at $mnist"
  fi
} 2>&1 | tee "$out"
grep '^{' "$out" > gpu_bench.jsonl
