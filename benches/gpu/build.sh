#!/usr/bin/env bash
# Builds the GPU check bundle (issue 30) for an NVIDIA machine that cannot reach a package
# registry: run this on an x86-64 Linux machine with the registries, carry benches/gpu/out/
# over, and run run.sh there (it is copied into out/ with the PyTorch reference scripts).
#
#   benches/gpu/build.sh          # wgpu on Vulkan (NVIDIA's driver) + the CPU backends
#   benches/gpu/build.sh --cuda   # also Burn's cuda backend (needs github.com, see below)
#   FEATURES=ndarray,wgpu benches/gpu/build.sh   # another feature set
#
# The default features are the tests' on CI (ndarray, wgpu, vulkan; flex is a default
# feature: gpu_check's reference), so the warm target directory .ci/run uses
# (CARGO_TARGET_DIR, default ~/.cache/wt-target) is reused. Burn 0.22.1's `cuda` backend
# (cubecl-cuda 0.11.3) links LLVM 23 for PTX, which the build script of `tracel-llvm-bundler`
# downloads from github.com/tracel-ai/tracel-llvm into ~/.local/share/tracel: a machine that
# reaches only the package registries cannot build it, so --cuda checks that first.
# libvulkan.so.1 (the Vulkan loader) travels in out/lib for GPU machines whose image lacks it.
# The binaries are 65-77 MB each stripped (Flex, NdArray, wgpu and autodiff in each), so they
# travel xz-compressed (with fusion and autotune they are 110-130 MB stripped, 21-25 MB gzipped,
# 12-14 MB with xz) and run.sh unpacks them; the whole of out/ must stay under 60 MiB (the device
# tool carries at most 64 MiB with the rest of the tree).
set -euo pipefail
cd "$(dirname "$0")/../.."
features=${FEATURES:-ndarray,wgpu,vulkan}
if [ "${1:-}" = "--cuda" ]; then
  llvm="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed"
  if [ ! -e "$llvm" ] && ! timeout 10 bash -c 'exec 3<>/dev/tcp/github.com/443' 2>/dev/null; then
    echo "build.sh --cuda: Burn's cuda backend needs LLVM 23 from github.com/tracel-ai/tracel-llvm" >&2
    echo "  (tracel-llvm-bundler's build script downloads it; not cached at $llvm)," >&2
    echo "  and github.com cannot be reached from here. Run build.sh without --cuda (wgpu)." >&2
    exit 2
  fi
  features=$features,cuda
elif [ -n "${1:-}" ]; then
  echo "build.sh: unknown option $1 (expected --cuda or nothing)" >&2
  exit 2
fi
bins=(gpu_check bench_models mnist)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wt-target}"
# The same command as the tests (`.ci/run`): its feature resolution, hence its artifacts, are the
# tests' own, so a warm test build is reused as is (a `cargo build -p wt --example` resolves
# Burn's features differently and rebuilds it). It builds the examples with the tests.
cargo test --release --workspace --features "$features" --no-run
out=benches/gpu/out
rm -rf "$out"
mkdir -p "$out/lib"
for b in "${bins[@]}"; do
  cp "$CARGO_TARGET_DIR/release/examples/$b" "$out/"
  strip "$out/$b"
  xz -9 -T0 "$out/$b"
done
loader=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 .*x86-64/ && !found {print $NF; found = 1}')
if [ -n "$loader" ]; then
  cp -L "$loader" "$out/lib/libvulkan.so.1"
else
  echo "build.sh: no libvulkan.so.1 here (apt install libvulkan1); the GPU machine must have it" >&2
fi
cp benches/gpu/run.sh benches/reference/pytorch_models.py benches/reference/pytorch_feedback.py \
  "$out/"
echo "$features" > "$out/FEATURES"
# The device tool carries at most 64 MiB with the rest of the tree: 60 MiB for the bundle.
limit=$((60 * 1024 * 1024))
size=$(du -sb "$out" | cut -f1)
if [ "$size" -gt "$limit" ]; then
  echo "build.sh: $out is $((size / 1024 / 1024)) MiB, over the 60 MiB the device tool can carry" >&2
  echo "  with the tree; build fewer features (FEATURES=...) or carry it some other way:" >&2
  du -ab "$out" | sort -rn | head -n 8 | awk '{printf "    %6.1f MiB  %s\n", $1 / 1048576, $2}' >&2
  exit 1
fi
echo "build.sh: $out: $(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1048576}') MiB, features $features"
ls -l "$out"
