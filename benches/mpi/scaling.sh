#!/usr/bin/env bash
# One rank against two under `mpirun` on this machine (issue 31), and the gradient values every
# zoo model all-reduces a step. Needs the examples built with `--features mpi`:
#
#   cargo build --release --features mpi --example mnist --example cifar10 --example imagenet
#   benches/mpi/scaling.sh            # WT_DATA: the data folder (default ../shared/data)
#   PARTS=1 ROUNDS=5 benches/mpi/scaling.sh   # part 1 only, 5 rounds
#
# Part 1, for the MNIST MLP (784-1000-1000-10), LeNet-5 on MNIST and ResNet-20 on CIFAR-10 with
# KP: one epoch of a subset on one process with the global batch B (no MPI), then on 2 ranks of
# B/2 each (`mpirun -np 2`, which binds each rank to a core), three times each in turn; prints
# the median training images/s of each, their ratio, and rank 0's share of the step in the
# gradient all-reduce (staging included). Part 2: every zoo model under 2 ranks for one step,
# BP and KP: the values and bytes all-reduced a step, as the run reports them.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$HOME/.cache/wt-target}/release/examples
data=${WT_DATA:-$root/../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpi=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
rounds=${ROUNDS:-3}
parts=${PARTS:-12}   # PARTS=1 or PARTS=2: one part only

# run NAME RANKS EXAMPLE ARGS...: one run; prints "img/s share values".
run() {
  local name=$1 ranks=$2 example=$3; shift 3
  local log="$work/$name.log"
  if [ "$ranks" = 1 ]; then
    "$bin/$example" "$@" --out "$work/$name" > "$log" 2>&1
  else
    "${mpi[@]}" -np "$ranks" "$bin/$example" "$@" --out "$work/$name" > "$log" 2>&1
  fi || { cat "$log" >&2; echo "scaling: $name failed" >&2; exit 1; }
  rm -rf "${work:?}/$name"
  local ips share values
  ips=$(grep -o '[0-9]* img/s' "$log" | tail -1 | cut -d' ' -f1)
  share=$(grep -o 'all-reduce ([0-9.]* %)' "$log" | tail -1 | grep -o '[0-9.]*' || true)
  values=$(grep -o '[0-9]* values ([0-9.]* MB) a step' "$log" | tail -1 | cut -d' ' -f1 || true)
  echo "${ips:-?} ${share:--} ${values:--}"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [[ $parts == *1* ]]; then
echo "## Part 1: one process against two ranks, same global batch (KP, $rounds rounds)"
echo
echo "| model, global batch | 1 process img/s | 2 ranks img/s | ratio | rank 0 in all-reduce |"
echo "|---|---|---|---|---|"
mnist=(--data "$data/mnist" --rule kp --epochs 1 --test-subset 256 --no-error-alignment)
cifar=(--data "$data/cifar-10-approx" --rule kp --epochs 1 --test-subset 256 --no-error-alignment)
for case in "mlp 128 mnist 8192 ${mnist[*]}" "lenet 128 mnist 4096 ${mnist[*]} --model lenet" \
    "resnet20 64 cifar10 512 ${cifar[*]}"; do
  read -r name batch example subset rest <<< "$case"
  read -ra args <<< "$rest"
  one=() two=() shares=()
  for r in $(seq "$rounds"); do
    read -r ips _ _ < <(run "$name-1-$r" 1 "$example" "${args[@]}" --batch "$batch" --train-subset "$subset")
    one+=("$ips")
    read -r ips share _ < <(run "$name-2-$r" 2 "$example" "${args[@]}" --batch $((batch / 2)) --train-subset "$subset")
    two+=("$ips"); shares+=("$share")
  done
  m1=$(printf '%s\n' "${one[@]}" | median); m2=$(printf '%s\n' "${two[@]}" | median)
  ms=$(printf '%s\n' "${shares[@]}" | median)
  echo "| $name, $batch ($subset images) | $m1 | $m2 | $(awk -v a="$m2" -v b="$m1" 'BEGIN{printf "%.2f", a/b}') | $ms % |"
done

fi

[[ $parts == *2* ]] || exit 0
echo
echo "## Part 2: values all-reduced a step (2 ranks, one step)"
echo
echo "| model | rule | values a step | MB a step |"
echo "|---|---|---|---|"
imagenet=(--data "$data/imagenette-mini" --image-size 64 --train-subset 16 --test-subset 8
  --batch 8 --epochs 1 --no-error-alignment)
for case in "mlp mnist ${mnist[*]}" "lenet mnist ${mnist[*]} --model lenet" \
    "resnet20 cifar10 ${cifar[*]} --model resnet20" "resnet56 cifar10 ${cifar[*]} --model resnet56" \
    "resnet18 imagenet ${imagenet[*]} --model resnet18" "resnet50 imagenet ${imagenet[*]} --model resnet50"; do
  read -r name example rest <<< "$case"
  read -ra args <<< "$rest"
  for rule in bp kp; do
    extra=()
    [ "$example" != imagenet ] && extra=(--train-subset 16 --batch 8)
    read -r _ _ values < <(run "$name-$rule-values" 2 "$example" "${args[@]}" "${extra[@]}" --rule "$rule")
    echo "| $name | $rule | $values | $(awk -v v="$values" 'BEGIN{printf "%.2f", 4*v/1e6}') |"
  done
done
