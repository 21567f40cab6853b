#!/usr/bin/env bash
# The transformers end to end (issue 35): `cifar10 --model vit` and `examples/charlm.rs` train
# a few steps under every rule and under a mixed rule (attention on backprop, the MLPs on KP),
# on real CIFAR-10 images and real Tiny Shakespeare; then a charlm run SIGKILLed after its
# first checkpoint and resumed ends with the uninterrupted run's tensors, bit for bit
# (brSF: a fresh random B at every step).
#
#   scripts/transformer_check.sh CIFAR10_BINARY CHARLM_BINARY
#
# CI runs it with the test build's examples (`WT_DATA` set). Exit status 0 when every run
# trained and the resume was exact, 1 otherwise.
set -euo pipefail
cifar10=${1:?usage: transformer_check.sh CIFAR10_BINARY CHARLM_BINARY}
charlm=${2:?usage: transformer_check.sh CIFAR10_BINARY CHARLM_BINARY}
data=${WT_DATA:?set WT_DATA to the folder of data sets}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

vit=(--data "$data/cifar-10-approx" --model vit --train-subset 64 --validation 32 --test-subset 32
  --epochs 1 --batch 32 --optimizer adamw --lr 1e-3 --weight-decay 0.05 --workers 1 --quiet)
lm=(--data "$data/tinyshakespeare/input.txt" --steps 4 --eval-every 2 --eval-windows 8 --batch 8
  --context 32 --d-model 32 --depth 2 --heads 2 --d-ff 64 --sample 20 --quiet)
for rule in bp fa usf brsf frsf kp wm dfa dkp drtp sa aa ia; do
  echo "== $rule: cifar10 --model vit, charlm"
  "$cifar10" "${vit[@]}" --rule "$rule" --out "$work/vit-$rule"
  "$charlm" "${lm[@]}" --rule "$rule" --out "$work/lm-$rule"
done
echo "== mixed: kp with the attention projections on bp"
"$cifar10" "${vit[@]}" --rule kp --rule-for 'blocks.*.attn.*=bp' --out "$work/vit-mixed"
"$charlm" "${lm[@]}" --rule kp --rule-for 'blocks.*.attn.*=bp' --out "$work/lm-mixed"

echo "== charlm killed after its first checkpoint, then resumed"
args=("${lm[@]}" --rule brsf --steps 40 --eval-every 10)
"$charlm" "${args[@]}" --out "$work/whole" > "$work/whole.log" 2>&1
"$charlm" "${args[@]}" --out "$work/cut" > "$work/cut.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null && [ ! -e "$work/cut/checkpoint.wtck" ]; do sleep 0.02; done
if ! kill -KILL "$pid" 2>/dev/null || [ -e "$work/cut/model.bpk" ]; then
  echo "transformer_check: the run ended before it could be killed" >&2
  exit 1
fi
wait "$pid" 2>/dev/null || true
# --resume alone: the run's saved config.json supplies every other setting.
"$charlm" --out "$work/cut" --resume > "$work/resume.log" 2>&1
here=$(cd "$(dirname "$0")" && pwd)
if ! gap=$(python3 "$here/compare_models.py" "$work/whole/model.bpk" "$work/cut/model.bpk" 0 2>&1); then
  echo "transformer_check: the resumed charlm differs from the uninterrupted one: $gap" >&2
  exit 1
fi
echo "transformer_check: every rule trained; charlm killed and resumed: $gap"
