#!/usr/bin/env bash
# Builds the GPU benchmark bundle for an NVIDIA machine that cannot reach a package registry:
# run this on an x86-64 Linux machine with the registries, carry benches/gpu/out/ over, and run
# benches/gpu/run.sh there (it is copied into out/).
#
#   benches/gpu/build.sh          # wgpu (Vulkan on the NVIDIA driver) + the CPU backends
#   benches/gpu/build.sh --cuda   # also Burn's cuda backend (needs github.com, see below)
#
# The default build uses the same features as the tests (ndarray, wgpu), so a warm target
# directory (CARGO_TARGET_DIR) is reused. Burn 0.22.1's `cuda` backend (cubecl-cuda 0.11.3)
# links LLVM 23 for PTX, which the build script of `tracel-llvm-bundler` downloads from
# github.com/tracel-ai/tracel-llvm into ~/.local/share/tracel: a machine that reaches only the
# package registries cannot build it, so --cuda checks that first. libvulkan.so.1 (the Vulkan
# loader) travels in out/lib for GPU machines whose image lacks it. The binaries are 65-77 MB
# each stripped (Flex, NdArray, wgpu and autodiff in each), so they travel gzipped (about
# 51 MB for the three; the device tool carries at most 64 MiB) and run.sh unpacks them.
set -euo pipefail
cd "$(dirname "$0")/../.."
features=ndarray,wgpu
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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --features "$features" --example bench_models --example bench_rules \
  --example mnist
rm -rf benches/gpu/out
mkdir -p benches/gpu/out/lib
for b in bench_models bench_rules mnist; do
  cp "$CARGO_TARGET_DIR/release/examples/$b" benches/gpu/out/
  strip benches/gpu/out/$b
  gzip -9 benches/gpu/out/$b
done
loader=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 .*x86-64/ && !found {print $NF; found = 1}')
if [ -n "$loader" ]; then
  cp -L "$loader" benches/gpu/out/lib/libvulkan.so.1
else
  echo "build.sh: no libvulkan.so.1 here (apt install libvulkan1); the GPU machine must have it" >&2
fi
cp benches/gpu/run.sh benches/gpu/out/
echo "$features" > benches/gpu/out/FEATURES
du -sh benches/gpu/out
