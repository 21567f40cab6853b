#!/usr/bin/env bash
# A data-parallel run killed with SIGKILL and resumed ends bit for bit where the uninterrupted
# run ends (issue 30). Runs the MNIST example (an MLP 784-64-10, KP, a subset) on the devices
# given, three epochs: once uninterrupted; once SIGKILLed as soon as its first checkpoint is on
# disk (so in epoch 2), then `--resume`d. The two final models' tensors must be equal, bit for bit.
#
#   scripts/kill_resume_check.sh MNIST_BINARY [DEVICES]     # DEVICES default: wgpu,wgpu:cpu
#
# CI runs it after the tests with the test build's `mnist` example. Exit status 0 when the
# models are identical, 1 when they differ or the kill came too late, 2 on a failed run.
set -uo pipefail
mnist=${1:?usage: kill_resume_check.sh MNIST_BINARY [DEVICES]}
devices=${2:-wgpu,wgpu:cpu}
first=${devices%%,*}
data=${MNIST_DIR:-${WT_DATA:?set WT_DATA or MNIST_DIR}/mnist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--data "$data" --device "$first" --devices "$devices" --rule kp --hidden 64 --epochs 3
  --batch 64 --train-subset 16384 --test-subset 256 --no-error-alignment --quiet)

echo "== uninterrupted: $mnist ${args[*]}"
"$mnist" "${args[@]}" --out "$work/whole" > "$work/whole.log" 2>&1 \
  || { cat "$work/whole.log"; echo "kill_resume_check: the uninterrupted run failed" >&2; exit 2; }

echo "== killed after its first checkpoint, then resumed"
"$mnist" "${args[@]}" --out "$work/cut" > "$work/cut.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null && [ ! -e "$work/cut/checkpoint.wtck" ]; do sleep 0.02; done
if ! kill -KILL "$pid" 2>/dev/null; then
  cat "$work/cut.log"
  echo "kill_resume_check: the run ended before it could be killed (no checkpoint seen in time)" >&2
  exit 1
fi
wait "$pid" 2>/dev/null
if [ -e "$work/cut/model.bpk" ]; then
  echo "kill_resume_check: the killed run had already written its final model" >&2
  exit 1
fi
"$mnist" "${args[@]}" --out "$work/cut" --resume > "$work/resume.log" 2>&1 \
  || { cat "$work/resume.log"; echo "kill_resume_check: the resumed run failed" >&2; exit 2; }
grep -m1 '^resumed from' "$work/resume.log" || true

# The tensors, not the files' bytes (scripts/compare_models.py).
here=$(cd "$(dirname "$0")" && pwd)
if ! gap=$(python3 "$here/compare_models.py" "$work/whole/model.bpk" "$work/cut/model.bpk" 0 2>&1); then
  echo "kill_resume_check: $devices: against the uninterrupted run's: $gap" >&2
  exit 1
fi
echo "kill_resume_check: $devices: killed in epoch 2 and resumed, equal to the uninterrupted run: $gap"
