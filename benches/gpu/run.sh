#!/usr/bin/env bash
# The GPU check (issue 30). Runs from the folder holding the bundle built by build.sh, on a GPU
# machine with no registry access (or, as CI does, `run.sh --quick --allow-software` on Mesa's
# software Vulkan driver). Steps, each under `timeout`, all run even when one fails:
#   adapters   the wgpu adapters; refuses (exit 3) with none, or a software one (device_type
#              Cpu: llvmpipe / lavapipe) unless --allow-software
#   gradients  every model's and rule's gradients on wgpu against flex (exit 1 past tolerance)
#   bench      bench_models on wgpu: MLP and ResNet-20, then ResNet-18 (ImageNet stem, 64 px,
#              1000 classes, batch 128); every row with its peak memory
#   pytorch    the same models in PyTorch on CUDA (pytorch_models.py), where torch sees a GPU
#   mnist      one epoch of the MNIST MLP with Kolen-Pollack on wgpu
# Writes gpu_check.txt (everything printed) and gpu_check.json (one document assembled from the
# steps' JSON lines). Exit status: 3 when the adapter check refused, 1 when any step failed or
# timed out (a gradient past tolerance included), 2 for a broken bundle or command line.
# Budgets, every step at its limit: 7 min 5 s (+75 s for a bundle with cuda); --quick (MLP
# only, bp and kp, 2 steps; an MNIST epoch of 512 images): 7 min at most, 2-3 min measured on
# CI's software driver.
set -uo pipefail
cd "$(dirname "$0")" || exit 2

usage() {
  cat <<'EOF'
usage: run.sh [--quick] [--allow-software] [--help]
  --quick           smoke test: MLP only, 1 warm-up and 2 timed steps, MNIST subsets (~3 min)
  --allow-software  go on when the selected wgpu adapter is a software driver (device_type Cpu)
  --help            this text
Environment: MNIST_DIR (MNIST's folder; else $WT_DATA/mnist, else ../../../../shared/data/mnist),
VK_DRIVER_FILES / VK_ICD_FILENAMES (the Vulkan driver; else NVIDIA's ICD where one is found).
Writes gpu_check.txt and gpu_check.json here.
EOF
}

quick=0 allow_software=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --allow-software) allow_software=1 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "run.sh: unknown option \`$arg\`" >&2; usage >&2; exit 2 ;;
  esac
done
if ! command -v python3 >/dev/null; then
  echo "run.sh: python3 not found (it assembles gpu_check.json and reads the adapters)" >&2
  exit 2
fi

log=$PWD/gpu_check.txt
work=$PWD/gpu_check.d # each step's output, the failures, the assembly script
rm -rf "$work" && mkdir -p "$work" && : > "$log" || { echo "run.sh: cannot write in $PWD" >&2; exit 2; }
: > "$work/failures.tsv"
start=$SECONDS

say() { printf '%s\n' "$*" | tee -a "$log"; }
# fail STEP STATUS REASON: records a failed step.
fail() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$work/failures.tsv"
  say "!! $1 failed: $3"
}
# step NAME BUDGET_S CMD...: runs CMD under timeout, its output (stdout and stderr) into the
# log and into $work/NAME.out; records a failure for a nonzero status; returns the status.
step() {
  local name=$1 budget=$2 t0=$SECONDS rc
  shift 2
  say "## $name (budget ${budget} s): $*"
  timeout -k 10 "$budget" "$@" 2>&1 | tee -a "$log" "$work/$name.out"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) ;;
    124) fail "$name" "$rc" "timed out after ${budget} s" ;;
    137) fail "$name" "$rc" "killed (SIGKILL: 10 s past its ${budget} s budget, or out of memory)" ;;
    *) fail "$name" "$rc" "exit status $rc" ;;
  esac
  say "## $name: status $rc, $((SECONDS - t0)) s"
  return "$rc"
}

# The assembly of the steps' JSON lines (mode `adapter`: the adapter check; `assemble`:
# gpu_check.json). Its exit status: adapter, 0 go / 3 refuse; assemble, 0 / 1 any failure.
cat > "$work/assemble.py" <<'PY'
import json, os, sys

work = os.path.dirname(os.path.abspath(__file__))
env = os.environ.get

def rows(name):
    """The JSON lines of a step's output; a line starting with `{` that does not parse is
    reported (a broken step, not a row)."""
    path = os.path.join(work, name + ".out")
    out, bad = [], []
    if not os.path.exists(path):
        return out, bad
    for n, line in enumerate(open(path, errors="replace"), 1):
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError as e:
                bad.append(f"{name}.out line {n} is not JSON ({e}): {line.strip()[:120]}")
    return out, bad

def refuse(reason):
    print(f"run.sh: {reason}", file=sys.stderr)
    with open(os.path.join(work, "refused.txt"), "w") as f:
        f.write(reason)
    return 3

def is_adapter(r):
    # gpu_check prints {"check":"adapter","name":null,"note":..} when wgpu finds none.
    return r.get("check") == "adapter" and r.get("name") is not None

def adapter():
    adapters = [r for r in rows("adapters")[0] if is_adapter(r)]
    for a in adapters:
        print(f"  {'*' if a.get('selected') else ' '} {a.get('name')} ({a.get('device_type')}, "
              f"{a.get('backend')}, driver {a.get('driver')} {a.get('driver_info')}, "
              f"vendor {a.get('vendor')})")
    selected = [a for a in adapters if a.get("selected")]
    if not adapters:
        return refuse("gpu_check found no wgpu adapter: no Vulkan driver this process can "
                      "load (see the ICD line above; NVIDIA's needs libGLX_nvidia.so.0, in a "
                      "container NVIDIA_DRIVER_CAPABILITIES with `graphics`)")
    if not selected:
        return refuse("gpu_check listed adapters but marked none as the one wgpu selects")
    a = selected[0]
    if a.get("device_type") == "Cpu" and env("ALLOW_SOFTWARE") != "1":
        return refuse(f"the selected adapter `{a.get('name')}` is a software driver (device_type "
                      f"Cpu, driver {a.get('driver')}): its timings say nothing about a GPU. "
                      "Point VK_DRIVER_FILES at NVIDIA's ICD json, or pass --allow-software for "
                      "a smoke test")
    print(f"  selected: {a.get('name')} ({a.get('device_type')}, {a.get('backend')})")
    if a.get("device_type") == "Cpu":
        print("  a software driver, allowed by --allow-software: a smoke test, not GPU timings")
    return 0

def assemble():
    failures = []
    for line in open(os.path.join(work, "failures.tsv")):
        name, status, reason = line.rstrip("\n").split("\t", 2)
        failures.append({"step": name, "status": int(status), "reason": reason})
    failed = {f["step"] for f in failures}
    def parsed(name):
        r, bad = rows(name)
        failures.extend({"step": name, "status": None, "reason": b} for b in bad)
        return r
    adapters = [r for r in parsed("adapters") if is_adapter(r)]
    gradients = [r for r in parsed("gradients") if r.get("check") == "gradients"]
    benches = sorted(f[:-4] for f in os.listdir(work) if f.startswith("bench") and f.endswith(".out"))
    bench = [r for n in benches for r in parsed(n) if "step_ms" in r]
    pytorch = [r for r in parsed("pytorch") if "step_ms" in r]
    mnist_rows = parsed("mnist")
    mnist = None
    if mnist_rows:  # the example's last JSON line: its final metrics
        mnist = {"check": "mnist"}
        mnist.update((k, v) for k, v in mnist_rows[-1].items() if k != "check")
    ran = lambda name: os.path.exists(os.path.join(work, name + ".out"))
    # A step that exits 0 but whose rows are missing or say otherwise is a broken check.
    if ran("gradients") and "gradients" not in failed:
        if not gradients:
            failures.append({"step": "gradients", "status": 0, "reason": "no gradient rows"})
        elif not all(r.get("ok") is True for r in gradients):
            failures.append({"step": "gradients", "status": 0,
                             "reason": "exit status 0 but a row has ok != true"})
    for n in benches + ["pytorch", "mnist"]:
        if ran(n) and n not in failed and not rows(n)[0]:
            failures.append({"step": n, "status": 0, "reason": "no JSON rows in its output"})
    bad_grads = [f"{r.get('model')}/{r.get('rule')}: {r.get('max_rel_error')}"
                 for r in gradients if r.get("ok") is not True]
    for f in failures:
        if f["step"] == "gradients" and bad_grads:
            f["reason"] += "; past tolerance (max_rel_error): " + ", ".join(bad_grads)
    doc = {
        "date": env("DATE"), "quick": env("QUICK") == "1",
        "allow_software": env("ALLOW_SOFTWARE") == "1", "features": env("FEATURES") or None,
        "icd": env("ICD") or None, "nvidia_smi": env("NVIDIA_SMI") or None,
        "adapters": adapters, "gradients": gradients, "bench": bench, "pytorch": pytorch,
        "mnist": mnist,
        "skipped": {k: v for k, v in (("pytorch", env("SKIP_PYTORCH")),
                                      ("mnist", env("SKIP_MNIST"))) if v},
        "seconds": int(env("SECONDS_TOTAL") or 0),
        "failures": failures,
    }
    with open("gpu_check.json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"gpu_check.json: {len(adapters)} adapters, {len(gradients)} gradient rows "
          f"({len(bad_grads)} past tolerance), "
          f"{len(bench)} wt rows, {len(pytorch)} PyTorch rows, mnist "
          f"{'recorded' if mnist else 'none'}, {len(failures)} failures")
    for f in failures:
        print(f"  failed: {f['step']}: {f['reason']}")
    return 1 if failures else 0

sys.exit({"adapter": adapter, "assemble": assemble}[sys.argv[1]]())
PY

icd="" nvsmi="" skip_pytorch="" skip_mnist=""
# finish STATUS: writes gpu_check.json and exits with STATUS, or 1 if that is 0 and any step
# failed (or the assembly did).
finish() {
  say "## gpu_check.json"
  DATE=$(date -u +%FT%TZ) QUICK=$quick ALLOW_SOFTWARE=$allow_software ICD=$icd \
    NVIDIA_SMI=$nvsmi FEATURES=$(cat FEATURES 2>/dev/null) SKIP_PYTORCH=$skip_pytorch \
    SKIP_MNIST=$skip_mnist SECONDS_TOTAL=$((SECONDS - start)) \
    python3 "$work/assemble.py" assemble 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]} status=$1
  [ "$status" -eq 0 ] && [ "$rc" -ne 0 ] && status=1
  say "## done in $((SECONDS - start)) s, exit status $status"
  exit "$status"
}

say "# gpu_check $(date -u +%FT%TZ) on $(uname -n), bundle features: $(cat FEATURES 2>/dev/null || echo unknown)$([ "$quick" = 1 ] && echo ', --quick')"

# The binaries travel xz-compressed; Python's lzma unpacks them where xz is missing.
unxz_to() { # unxz_to FILE.xz FILE
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}
for b in gpu_check bench_models mnist; do
  if [ -e "$b.xz" ]; then
    if ! { unxz_to "$b.xz" "$b" && chmod +x "$b"; }; then fail bundle 2 "cannot unpack $b.xz"; finish 2; fi
  fi
  [ -x "$b" ] || { fail bundle 2 "no $b (or $b.xz) here: rebuild the bundle with build.sh"; finish 2; }
done

# The system's Vulkan loader first; the one carried in lib/ where the image has none.
[ -d lib ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$PWD/lib"
# NVIDIA's Vulkan driver, unless the caller chose one.
if [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  icd=${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}
  say "# Vulkan ICD from the environment: $icd"
else
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d \
    /usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/icd.d; do
    for f in "$d"/nvidia*.json; do
      [ -f "$f" ] && [ -z "$icd" ] && icd=$f
    done
  done
  if [ -n "$icd" ]; then
    export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd # the second for loaders before 1.3.207
    say "# Vulkan ICD: $icd (NVIDIA's)"
  else
    say "# Vulkan ICD: no nvidia*.json found; the loader's default search is used"
  fi
fi
if command -v nvidia-smi >/dev/null; then
  nvsmi=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)
  say "# nvidia-smi: $nvsmi"
else
  say "# nvidia-smi: not found"
fi

# The adapters; refuses with none or a software one.
step adapters 20 ./gpu_check adapters
ALLOW_SOFTWARE=$allow_software python3 "$work/assemble.py" adapter 2>&1 | tee -a "$log"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
  fail adapters 3 "refused: $(cat "$work/refused.txt" 2>/dev/null || echo 'the adapter check failed')"
  finish 3
fi

# Budgets (s) and sizes; warm-up steps enough for Burn's autotune and cuDNN's.
if [ "$quick" = 1 ]; then
  # Sized for CI's software driver, where every new kernel compiles on the CPU (autotune
  # compiles each candidate): the MLP under two rules, an MNIST epoch of 512 images.
  grad_models=(--models mlp) small=mlp wu=1 steps=2 t_grad=120 t_bench=150 t_torch=40 t_mnist=150
  subsets=(--train-subset 512 --test-subset 256)
else
  grad_models=() small=mlp,resnet20 wu=5 steps=10 t_grad=60 t_bench=75 t_torch=75 t_mnist=75
  subsets=()
fi
rules=bp,fa,kp,wm,dfa
[ "$quick" = 1 ] && rules=bp,kp

# (a) Gradients on wgpu against flex.
step gradients "$t_grad" ./gpu_check gradients --device wgpu --reference flex \
  ${grad_models[@]+"${grad_models[@]}"}

# (b) Training-step throughput and peak memory on wgpu; on cuda too where the bundle has it.
step bench-wgpu "$t_bench" ./bench_models --device wgpu --models "$small" --rules "$rules" \
  --warmup "$wu" --steps "$steps"
if [ "$quick" = 0 ]; then
  step bench-wgpu-resnet18-imagenet64 120 ./bench_models --device wgpu --models resnet18 \
    --image-size 64 --stem imagenet --classes 1000 --batch 128 --rules "$rules" \
    --warmup "$wu" --steps "$steps"
fi
if grep -qw cuda FEATURES 2>/dev/null; then
  step bench-cuda "$t_bench" ./bench_models --device cuda --models "$small" --rules "$rules" \
    --warmup "$wu" --steps "$steps"
fi

# (c) PyTorch on CUDA, the reference, where torch sees a GPU.
if why=$(timeout 30 python3 -c '
import sys
try:
    import torch
except Exception as e:
    sys.exit(f"PyTorch is not importable ({type(e).__name__}: {e})")
if not torch.cuda.is_available():
    sys.exit(f"PyTorch {torch.__version__} sees no CUDA device (built for CUDA {torch.version.cuda})")
' 2>&1); then
  torch_models=$small
  [ "$quick" = 0 ] && torch_models=$small,resnet18-imagenet64
  step pytorch "$t_torch" python3 pytorch_models.py --device cuda --models "$torch_models" \
    --rules bp,fa --warmup "$wu" --steps "$steps"
else
  skip_pytorch=${why:-the PyTorch check timed out or was killed}
  say "## pytorch: skipped: $skip_pytorch"
fi

# (d) One epoch of the MNIST MLP with Kolen-Pollack on wgpu.
mnist_dir=""
if [ -n "${MNIST_DIR:-}" ]; then
  if [ -d "$MNIST_DIR" ]; then mnist_dir=$MNIST_DIR; else fail mnist 2 "MNIST_DIR=$MNIST_DIR is not a folder"; fi
elif [ -n "${WT_DATA:-}" ] && [ -d "$WT_DATA/mnist" ]; then
  mnist_dir=$WT_DATA/mnist
elif [ -d ../../../../shared/data/mnist ]; then
  mnist_dir=../../../../shared/data/mnist
fi
if [ -n "$mnist_dir" ]; then
  step mnist "$t_mnist" ./mnist --data "$mnist_dir" --device wgpu --rule kp --epochs 1 \
    --no-error-alignment --out runs/gpu-mnist-kp --overwrite ${subsets[@]+"${subsets[@]}"}
elif [ -z "${MNIST_DIR:-}" ]; then
  skip_mnist="no MNIST folder (MNIST_DIR unset, no \$WT_DATA/mnist, no ../../../../shared/data/mnist)"
  say "## mnist: skipped: $skip_mnist"
fi

finish 0
