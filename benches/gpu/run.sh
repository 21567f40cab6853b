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
} 2>&1 | tee "$out"
grep '^{' "$out" > gpu_bench.jsonl
