#!/usr/bin/env bash
# Data-parallel training over MPI ranks, checked end to end (issue 31) with the MNIST example
# built with `--features mpi`, under `mpirun -np 2` on this machine:
#  1. bp, kp, wm, brsf, dfa: 20 steps (an MLP 784-64-10, 1,280 images, 32 a rank): both ranks
#     end with bit-identical parameters (the run compares their checksums after every epoch),
#     equal bit for bit to one process with `--devices flex,flex` on the same global batch of
#     64 (the same two shards, summed in the same order), and to one process on one device
#     within 1e-5 (one backward over 64 images sums in another order than two over 32);
#  2. a rank started with another config: every rank stops at the start with an error naming
#     the rank;
#  3. a rank SIGKILLed mid-run: the job stops within 60 s, the launcher naming the rank; the
#     last checkpoint is whole (the run resumes from it);
#  4. the whole job SIGKILLed after its first checkpoint, then `--resume`d: the final model
#     equals the uninterrupted 2-rank run's bit for bit;
#  5. zoo conv nets, LeNet-5 and ResNet-20 (batch norm: each rank normalises its own part, as
#     each `--devices` shard does), 8 steps under `mpirun -np 2`: ranks identical, and equal bit
#     for bit to `--devices flex,flex` (running statistics: rank 0's, the first shard's).
#
#   scripts/mpi_check.sh MNIST_BINARY
#
# Exit status 0 when every check holds, 1 when one fails. Needs `mpirun` (OpenMPI) and WT_DATA
# (or MNIST_DIR); as root it passes --allow-run-as-root.
set -uo pipefail
mnist=${1:?usage: mpi_check.sh MNIST_BINARY}
data=${MNIST_DIR:-${WT_DATA:?set WT_DATA or MNIST_DIR}/mnist}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
launcher=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && launcher+=(--allow-run-as-root)
mpirun=("${launcher[@]}" -np 2)
fail=0
bad() { echo "mpi_check: FAIL: $*" >&2; fail=1; }

# Not --quiet: rank 0 prints the line saying the ranks' parameters are identical.
common=(--data "$data" --device flex --hidden 64 --train-subset 1280 --test-subset 256
  --no-error-alignment)

# compare A B TOLERANCE: the two models' tensors, bit for bit (TOLERANCE 0) or within it.
compare() { python3 "$here/compare_models.py" "$1" "$2" "$3" 2>&1; }

echo "== 1. two ranks against one process (20 steps)"
for rule in bp kp wm brsf dfa; do
  args=("${common[@]}" --rule "$rule" --epochs 1)
  if ! "${mpirun[@]}" "$mnist" "${args[@]}" --batch 32 --out "$work/$rule-mpi" \
      > "$work/$rule-mpi.log" 2>&1; then
    cat "$work/$rule-mpi.log"; bad "$rule: the 2-rank run failed"; continue
  fi
  grep -q "2 ranks' parameters are identical" "$work/$rule-mpi.log" \
    || bad "$rule: no identical-parameters line"
  "$mnist" "${args[@]}" --quiet --batch 64 --devices flex,flex --out "$work/$rule-dev" \
    > /dev/null 2>&1 || bad "$rule: the --devices run failed"
  "$mnist" "${args[@]}" --quiet --batch 64 --out "$work/$rule-one" > /dev/null 2>&1 \
    || bad "$rule: the one-device run failed"
  r1=$(compare "$work/$rule-mpi/model.bpk" "$work/$rule-dev/model.bpk" 0) \
    || bad "$rule: 2 ranks vs --devices flex,flex: $r1"
  r2=$(compare "$work/$rule-mpi/model.bpk" "$work/$rule-one/model.bpk" 1e-5) \
    || bad "$rule: 2 ranks vs one device: $r2"
  echo "$rule: ranks identical; vs --devices flex,flex: $r1; vs one device: $r2"
done

echo "== 2. a rank with another config"
"${launcher[@]}" -np 1 "$mnist" "${common[@]}" --rule kp --epochs 1 --batch 32 --out "$work/cfg" \
  : -np 1 "$mnist" "${common[@]}" --rule kp --epochs 1 --batch 32 --lr 0.5 --out "$work/cfg" \
  > "$work/cfg.log" 2>&1 && bad "two configs: the run did not fail"
grep -m1 "rank(s) 1 started with a config other than rank 0's" "$work/cfg.log" \
  || { cat "$work/cfg.log"; bad "two configs: no error naming rank 1"; }

long=("${common[@]}" --rule kp --epochs 3 --batch 32 --train-subset 16384)

echo "== 3. rank 1 SIGKILLed mid-run"
"${mpirun[@]}" "$mnist" "${long[@]}" --out "$work/dead" > "$work/dead.log" 2>&1 &
job=$!
while kill -0 "$job" 2>/dev/null && [ ! -e "$work/dead/checkpoint.wtck" ]; do sleep 0.05; done
rank1=""
for p in $(pgrep -f -- "--out $work/dead"); do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then rank1=$p; fi
done
if [ -z "$rank1" ]; then
  bad "rank 1's process not found (the run ended first?)"
else
  kill -KILL "$rank1"
  start=$(date +%s)
  while kill -0 "$job" 2>/dev/null && [ $(( $(date +%s) - start )) -lt 60 ]; do sleep 0.2; done
  if kill -0 "$job" 2>/dev/null; then
    bad "the job still runs 60 s after rank 1 was killed"; pkill -KILL -f -- "--out $work/dead"
  fi
  wait "$job" && bad "the job exited 0 after rank 1 was killed"
  echo "stopped $(( $(date +%s) - start )) s after the kill; the launcher said:"
  grep -m2 -i "rank 1\|signal 9\|killed" "$work/dead.log" || { cat "$work/dead.log"; bad "no message naming rank 1"; }
  "${mpirun[@]}" "$mnist" "${long[@]}" --out "$work/dead" --resume > "$work/dead-resume.log" 2>&1 \
    || { tail -5 "$work/dead-resume.log"; bad "the run did not resume from its last checkpoint"; }
fi

echo "== 4. the whole job SIGKILLed in epoch 2, then --resume"
"${mpirun[@]}" "$mnist" "${long[@]}" --out "$work/whole" > "$work/whole.log" 2>&1 \
  || { cat "$work/whole.log"; bad "the uninterrupted 2-rank run failed"; }
"${mpirun[@]}" "$mnist" "${long[@]}" --out "$work/cut" > "$work/cut.log" 2>&1 &
job=$!
while kill -0 "$job" 2>/dev/null && [ ! -e "$work/cut/checkpoint.wtck" ]; do sleep 0.02; done
pkill -KILL -f -- "--out $work/cut" || bad "the run ended before it could be killed"
wait "$job" 2>/dev/null
[ -e "$work/cut/model.bpk" ] && bad "the killed run had already written its final model"
"${mpirun[@]}" "$mnist" "${long[@]}" --out "$work/cut" --resume > "$work/resume.log" 2>&1 \
  || { cat "$work/resume.log"; bad "the resumed run failed"; }
grep -m1 '^resumed from' "$work/resume.log"
r=$(compare "$work/whole/model.bpk" "$work/cut/model.bpk" 0) && echo "killed and resumed: $r" \
  || bad "killed and resumed vs uninterrupted: $r"

echo "== 5. zoo conv nets under mpirun -np 2: LeNet-5, ResNet-20 (batch norm)"
for model in lenet resnet20; do
  args=("${common[@]}" --model "$model" --rule kp --epochs 1 --train-subset 256)
  "${mpirun[@]}" "$mnist" "${args[@]}" --batch 16 --out "$work/$model" > "$work/$model.log" 2>&1 \
    || { cat "$work/$model.log"; bad "$model under MPI failed"; continue; }
  grep -q "2 ranks' parameters are identical" "$work/$model.log" \
    || bad "$model: no identical-parameters line"
  "$mnist" "${args[@]}" --quiet --batch 32 --devices flex,flex --out "$work/$model-dev" \
    > /dev/null 2>&1 || bad "$model: the --devices run failed"
  r=$(compare "$work/$model/model.bpk" "$work/$model-dev/model.bpk" 0) \
    && echo "$model: 8 steps, ranks identical; vs --devices flex,flex: $r" \
    || bad "$model: 2 ranks vs --devices flex,flex: $r"
done

[ "$fail" = 0 ] && echo "mpi_check: all checks hold"
exit "$fail"
