#!/usr/bin/env python3
"""PyTorch reference for wt's model-level benchmark (examples/bench_models.rs).

Same models, batches and step as `bench_models`: MLP 784-1000-1000-10 (batch 128), ResNet-20
with option-A shortcuts (batch 128), ResNet-18 with the CIFAR stem (batch 32), and
`resnet18-imagenet64`: ResNet-18 with the ImageNet stem at 64 px, 1000 classes, batch 128
(`bench_models --models resnet18 --image-size 64 --stem imagenet --classes 1000 --batch 128`);
forward, cross-entropy, backward, SGD-momentum step; random inputs (labels cycle through the
first 10 classes, as bench_models'); rules interleaved round by round; median of --steps steps
after --warmup. Rules (`pytorch_feedback.py`): bp (PyTorch's own F.linear / F.conv2d), fa and
usf (custom autograd Functions: dx = g·B for linear, conv2d_input(g, B) for conv, with B fixed
and random for fa, s·sign(W) formed at each backward pass for usf).

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch
    /tmp/torch/bin/python benches/reference/pytorch_models.py --threads 2
    python3 pytorch_models.py --device cuda --models mlp,resnet20,resnet18-imagenet64

On cuda: TF32 off (full f32 matrix products and convolutions, as wt's), cuDNN's autotuner on
(hence 5 warm-up steps by default), the clock read after torch.cuda.synchronize(). Exits 3 when
--device cuda is asked and PyTorch sees no CUDA device.

Prints one JSON line per row, as bench_models does, with "backend":"pytorch", plus "device",
"gpu" (the CUDA device's name, or null), "ratio_to_bp" (null without bp) and
"peak_memory_bytes" with "memory_kind": on cuda ("device"), the most memory PyTorch's
allocator held during the row's steps, less what the other rows' models, gradients and
optimizer state held (so: this row's model, gradients, optimizer state, the input batch and
the step's activations and workspaces); on cpu ("resident"), the process's peak resident set
so far (ru_maxrss), which covers every row run until then.
Not a dependency of the crates or of CI.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from pytorch_feedback import RULES, mlp, resnet18_cifar, resnet18_imagenet, resnet20


# name: (model builder taking the rule, batch, (channels, side))
MODELS = {
    "mlp": (mlp, 128, (1, 28)),
    "resnet20": (resnet20, 128, (3, 32)),
    "resnet18": (resnet18_cifar, 32, (3, 32)),
    "resnet18-imagenet64": (lambda rule: resnet18_imagenet(rule, classes=1000), 128, (3, 64)),
}


def storage_bytes(tensors):
    """Bytes of the distinct storages behind `tensors` (None entries skipped)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()
    return total


def case_bytes(m, opt):
    """What one row keeps between steps: parameters, gradients, buffers, optimizer state."""
    state = [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
    return storage_bytes([*m.parameters(), *(p.grad for p in m.parameters()), *m.buffers(),
                          *state])


def resident_peak_bytes():
    """The process's peak resident set (ru_maxrss: kilobytes on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def main():
    p = argparse.ArgumentParser(
        description="PyTorch reference for wt's bench_models: one JSON line per model and rule.")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--models", default="mlp,resnet20,resnet18",
                   help=f"comma-separated, of {', '.join(MODELS)}")
    p.add_argument("--rules", default="bp,fa", help=f"comma-separated, of {', '.join(RULES)}")
    p.add_argument("--steps", type=int, default=5, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first (default: 5 on cuda, for cuDNN's autotuner; 2 on cpu)")
    a = p.parse_args()
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    rules = [r.strip() for r in a.rules.split(",") if r.strip()]
    for name in models:
        if name not in MODELS:
            p.error(f"--models: unknown model `{name}` (expected {', '.join(MODELS)})")
    for rule in rules:
        if rule not in RULES:
            p.error(f"--rules: unknown rule `{rule}` (expected {', '.join(RULES)})")
    if not models or not rules:
        p.error("--models and --rules need at least one entry each")
    if len(set(models)) < len(models) or len(set(rules)) < len(rules):
        p.error("--models and --rules: each entry at most once")
    warmup = a.warmup if a.warmup is not None else (5 if a.device == "cuda" else 2)
    if a.steps < 1 or warmup < 0 or a.threads < 1:
        p.error("--steps and --threads must be at least 1, --warmup at least 0")
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print(f"pytorch_models.py: --device cuda, but PyTorch {torch.__version__} sees no CUDA "
              f"device (built for CUDA {torch.version.cuda}; check the driver, nvidia-smi and "
              "CUDA_VISIBLE_DEVICES)", file=sys.stderr)
        sys.exit(3)
    if cuda:
        # Full f32, as wt's kernels: no TF32 in matrix products or convolutions.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    device = torch.device(a.device)
    gpu = torch.cuda.get_device_name(device) if cuda else None
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    for name in models:
        build, batch, (c, side) = MODELS[name]
        x = torch.randn(batch, c, side, side).to(device)
        y = (torch.arange(batch) % 10).to(device)
        cases = []
        for rule in rules:
            m = build(rule).to(device)
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            cases.append({"rule": rule, "m": m, "opt": opt, "times": [], "peak": 0})
        for r in range(warmup + a.steps):
            for case in cases:
                m, opt = case["m"], case["opt"]
                if cuda:
                    # The other rows' resident memory, left out of this row's peak.
                    torch.cuda.synchronize(device)
                    others = torch.cuda.memory_allocated(device) - case_bytes(m, opt)
                    torch.cuda.reset_peak_memory_stats(device)
                t = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(x), y).backward()
                opt.step()
                if cuda:
                    torch.cuda.synchronize(device)
                dt = time.perf_counter() - t
                if r >= warmup:
                    case["times"].append(dt)
                if cuda:
                    case["peak"] = max(case["peak"],
                                       torch.cuda.max_memory_allocated(device) - others)
        medians = {case["rule"]: statistics.median(case["times"]) for case in cases}
        for case in cases:
            s = medians[case["rule"]]
            peak = case["peak"] if cuda else resident_peak_bytes()
            print(json.dumps({"model": name, "rule": case["rule"], "backend": "pytorch",
                              "batch": batch, "step_ms": round(s * 1e3, 2),
                              "images_per_s": round(batch / s, 1),
                              "ratio_to_bp": round(s / medians["bp"], 3) if "bp" in medians
                              else None,
                              "threads": a.threads, "torch": torch.__version__,
                              "device": a.device, "gpu": gpu, "peak_memory_bytes": peak,
                              "memory_kind": "device" if cuda else "resident"}), flush=True)
        # Free this model's rows before the next model's are built.
        cases = case = m = opt = x = y = None
        if cuda:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
