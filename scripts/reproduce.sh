#!/usr/bin/env bash
# Reruns one row of docs/results.md: scripts/reproduce.sh ROW [extra flags...]
#
# ROW is <table>-<rule>, with <rule> one of bp fa usf brsf frsf kp wm dfa dkp drtp sa aa ia and
# <table> one of
#   mnist-mlp       MNIST, 784-1000-1000-10 MLP, 10 epochs            (mnist example defaults)
#   fmnist-lenet    Fashion-MNIST, LeNet 6-16-120, 5 epochs
#   cifar-lenet     CIFAR-10 (approximate copy), BioTorch's LeNetCIFAR, BioTorch's recipe (lr 0.1,
#                   Xavier) shortened to 5 epochs like cifar-resnet20
#   cifar-resnet20  CIFAR-10 (approximate copy), ResNet-20, BioTorch recipe shortened to 5 epochs
#                   (lr 0.1, drops ×0.1 after epochs 2, 3, 4: the recipe's 100/150/200 of 250)
#   imagenette-resnet18
#                   the full Imagenette (scripts/get_imagenette.sh), ResNet-18 with the ImageNet
#                   stem at 64 pixels, 1,000 outputs, 15 epochs, cosine after 1 warm-up epoch,
#                   weight decay 5e-3 for every rule (docs/results.md, "ResNet-18 on Imagenette")
#   charlm          Tiny Shakespeare ($WT_DATA/tinyshakespeare/input.txt), examples/charlm.rs's
#                   defaults (4 blocks of 128, context 128, batch 32, 2,000 steps) at AdamW lr 3e-3,
#                   the rate BP's search on the training text's held-out tail chose
# A ROW ending in -wm-slow (e.g. imagenette-resnet18-wm-slow) is the table's WM row with the slow
# mirror (η_B = 0.005).
# e.g. scripts/reproduce.sh cifar-lenet-kp
#      scripts/reproduce.sh fmnist-lenet-bp --seeds 1,2,3
#
# The run folder is runs/<ROW> (seed 1), or runs/<ROW>/seed-<N> for each seed of
# `--seeds N,M,...` (one run after another; scripts/seed_table.py TABLE prints mean ± sd over
# them). Flags after ROW are appended to the row's own and a flag given twice takes its last
# value, so `--lr X` overrides the row's rate (a search). If a folder already holds a
# checkpoint the run continues from it (--resume), so a long row can be built up over several
# sittings; delete the folder to start again. Extra flags go to the example (e.g. --device wgpu).
#
# Data: $WT_DATA is the folder of data sets (the README's quick start sets it), holding
# mnist/, fashion-mnist/ and the approximate CIFAR-10 copy as cifar-10-approx/ (its README says
# how it differs from the official files); CIFAR10_DATA names another CIFAR-10 folder.
set -euo pipefail
cd "$(dirname "$0")/.."
row=${1:?usage: scripts/reproduce.sh ROW [--seeds N,M,...] [flags]   (see the top of this script)}
shift
if [ "${1:-}" = --seeds ]; then
  seeds=${2:?--seeds needs a comma-separated list, e.g. 1,2,3}
  shift 2
  IFS=, read -r -a list <<<"$seeds"
  for seed in "${list[@]}"; do
    case "$seed" in '' | *[!0-9]*)
      echo "--seeds: '$seed' is not a seed (a non-negative integer)" >&2
      exit 2
      ;;
    esac
  done
  for seed in "${list[@]}"; do
    echo "== $row, seed $seed"
    WT_REPRODUCE_OUT="runs/$row/seed-$seed" "$0" "$row" "$@" --seed "$seed"
  done
  exit 0
fi
rule=${row##*-}
table=${row%-*}
slow_mirror=
case "$row" in *-wm-slow) rule=wm table=${row%-wm-slow} slow_mirror=1 ;; esac
case "$rule" in bp | fa | usf | brsf | frsf | kp | wm | dfa | dkp | drtp | sa | aa | ia) ;; *)
  echo "unknown rule '$rule' in '$row': expected bp fa usf brsf frsf kp wm dfa dkp drtp sa aa ia" >&2
  exit 2
  ;;
esac
case "$table" in cifar-*)
  cifar=${CIFAR10_DATA:-${WT_DATA:?set WT_DATA to the folder of data sets (see the README)}/cifar-10-approx}
  ;;
esac
case "$table" in imagenette-*)
  imagenette=${IMAGENETTE_DATA:-${WT_DATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wt-data}/imagenette}
  if [ ! -d "$imagenette/train" ]; then
    echo "no Imagenette at $imagenette (run scripts/get_imagenette.sh, or set IMAGENETTE_DATA)" >&2
    exit 2
  fi
  ;;
esac
case "$table" in
mnist-mlp) args=(--example mnist -- --rule "$rule" --epochs 10) ;;
fmnist-lenet) args=(--example mnist -- --dataset fashion_mnist --model lenet --rule "$rule"
  --epochs 5) ;;
cifar-lenet) args=(--example cifar10 -- --data "$cifar" --model lenet --rule "$rule" --epochs 5) ;;
cifar-resnet20) args=(--example cifar10 -- --data "$cifar" --model resnet20 --rule "$rule"
  --epochs 5) ;;
charlm) args=(--example charlm -- --rule "$rule" --lr 3e-3 --steps 2000) ;;
imagenette-resnet18) args=(--example imagenet -- --data "$imagenette" --model resnet18 --stem imagenet
  --image-size 64 --rule "$rule" --epochs 15 --batch 128 --lr 0.1 --momentum 0.9
  --weight-decay 5e-3 --schedule cosine --warmup 1) ;;
*)
  echo "unknown table '$table' in '$row': expected mnist-mlp fmnist-lenet cifar-lenet cifar-resnet20 imagenette-resnet18 charlm" >&2
  exit 2
  ;;
esac
# The MLP's table row for WM is the slow mirror (docs/results.md says why).
if [ "$row" = mnist-mlp-wm ] || [ -n "$slow_mirror" ]; then args+=(--mirror-lr 0.005); fi
# The direct rules' LeNet rows send e/P to each of a convolution's P output positions, at the
# rate each one's validation search chose (docs/results.md, "Conv DFA with the mean over
# positions").
case "$row" in
# Kunin et al.'s rules at the coefficients (and, on CIFAR, the rate) each validation search
# chose (docs/results.md): at the recipe's lr 0.1 every setting tried diverged on CIFAR LeNet.
mnist-mlp-sa | mnist-mlp-aa) args+=(--alpha 0.3 --beta 0.6) ;;
mnist-mlp-ia) args+=(--alpha 0.2 --beta 0.1 --gamma 0.1) ;;
cifar-lenet-sa) args+=(--alpha 0.03 --beta 0.06 --lr 0.01) ;;
cifar-lenet-aa) args+=(--alpha 0.3 --beta 0.6 --lr 0.01) ;;
cifar-lenet-ia) args+=(--lr 0.01) ;;
# DRTP's LeNet: e/P per conv position at the rate its search chose (1e-3 and 1e-2 diverged).
cifar-lenet-drtp) args+=(--dfa-position-mean --lr 1e-4) ;;
fmnist-lenet-dfa | cifar-lenet-dfa) args+=(--dfa-position-mean --lr 1e-3) ;;
fmnist-lenet-dkp) args+=(--dfa-position-mean --lr 1e-4) ;;
cifar-lenet-dkp) args+=(--dfa-position-mean --lr 1e-3) ;;
# Imagenette keeps the table's one rate (lr 0.1) for DFA too, with the mean over positions
# (without it a stage-1 convolution's update is 256 positions' errors summed).
imagenette-resnet18-dfa) args+=(--dfa-position-mean) ;;
esac
out=${WT_REPRODUCE_OUT:-runs/$row}
if [ -f "$out/checkpoint.wtck" ]; then
  echo "continuing $out from its checkpoint"
  args=("${args[0]}" "${args[1]}" -- --out "$out" --resume "$@")
else
  args+=(--out "$out" --overwrite "$@")
fi
# WT_EXAMPLES_DIR=DIR runs DIR/<example>, a binary built before (e.g. a copy of
# target/release/examples), instead of `cargo run`, so that edits made while a long row runs
# do not rebuild it.
if [ -n "${WT_EXAMPLES_DIR:-}" ]; then
  exec "$WT_EXAMPLES_DIR/${args[1]}" "${args[@]:3}"
fi
exec cargo run --release "${args[@]}"
