#!/usr/bin/env python3
"""PyTorch reference for wt's model-level benchmark (examples/bench_models.rs).

Same models, batches and step as `bench_models`: MLP 784-1000-1000-10 (batch 128), ResNet-20
with option-A shortcuts (batch 128), ResNet-18 with the CIFAR stem (batch 32); forward,
cross-entropy, backward, SGD-momentum step; random inputs; median of --steps steps after
--warmup. Rules (`pytorch_feedback.py`): bp (PyTorch's own F.linear / F.conv2d), fa and usf
(custom autograd Functions: dx = g·B for linear, conv2d_input(g, B) for conv, with B fixed and
random for fa, s·sign(W) formed at each backward pass for usf).

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch
    /tmp/torch/bin/python benches/reference/pytorch_models.py --threads 2

Prints one JSON line per row, as bench_models does, with "backend":"pytorch".
Not a dependency of the crates or of CI.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from pytorch_feedback import RULES, mlp, resnet18_cifar, resnet20


MODELS = {
    "mlp": (mlp, 128, (1, 28)),
    "resnet20": (resnet20, 128, (3, 32)),
    "resnet18": (resnet18_cifar, 32, (3, 32)),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default="mlp,resnet20,resnet18")
    p.add_argument("--rules", default="bp,fa")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    for name in a.models.split(","):
        if name not in MODELS:
            p.error(f"--models: unknown model `{name}` (expected {', '.join(MODELS)})")
        build, batch, (c, side) = MODELS[name]
        x = torch.randn(batch, c, side, side)
        y = torch.arange(batch) % 10
        cases = []
        for rule in a.rules.split(","):
            if rule not in RULES:
                p.error(f"--rules: unknown rule `{rule}` (expected {', '.join(RULES)})")
            m = build(rule)
            cases.append((rule, m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), []))
        for r in range(a.warmup + a.steps):
            for rule, m, opt, times in cases:
                t = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(x), y).backward()
                opt.step()
                if r >= a.warmup:
                    times.append(time.perf_counter() - t)
        for rule, _, _, times in cases:
            s = statistics.median(times)
            print(json.dumps({"model": name, "rule": rule, "backend": "pytorch", "batch": batch,
                              "step_ms": round(s * 1e3, 2), "images_per_s": round(batch / s, 1),
                              "threads": a.threads, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
