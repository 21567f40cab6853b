#!/usr/bin/env python3
"""PyTorch's side of examples/bench_conv.rs: for every conv shape of ResNet-20 (batch 128),
ResNet-18 with the CIFAR stem (batch 32) and the Imagenette step's ResNet-18 (ImageNet stem,
64 × 64 pixels, batch 128), the forward `F.conv2d`, the input gradient
`torch.nn.grad.conv2d_input`, the weight gradient `torch.nn.grad.conv2d_weight`, and both
gradients as autograd computes them in training (`torch.autograd.grad` of a recorded conv2d:
oneDNN's backward kernels, op "backward"; compare with wt's input + weight), on the CPU with
2 threads (or --threads), medians of rounds of one call per op.

    /tmp/torch/bin/python benches/reference/pytorch_conv.py [--reps 9] [--warmup 2]

Prints a table and one JSON line per layer and op: {"model","layer","op","torch_ms","gflops"}.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

# Same list, same order as examples/bench_conv.rs.
LAYERS = [
    ("resnet20", "stem 3-16 32²", 128, 3, 16, 32, 3, 1),
    ("resnet20", "s1 16-16 32²", 128, 16, 16, 32, 3, 1),
    ("resnet20", "s2 16-32 /2", 128, 16, 32, 32, 3, 2),
    ("resnet20", "s2 32-32 16²", 128, 32, 32, 16, 3, 1),
    ("resnet20", "s3 32-64 /2", 128, 32, 64, 16, 3, 2),
    ("resnet20", "s3 64-64 8²", 128, 64, 64, 8, 3, 1),
    ("resnet18", "stem 3-64 32²", 32, 3, 64, 32, 3, 1),
    ("resnet18", "l1 64-64 32²", 32, 64, 64, 32, 3, 1),
    ("resnet18", "l2 64-128 /2", 32, 64, 128, 32, 3, 2),
    ("resnet18", "l2 128-128 16²", 32, 128, 128, 16, 3, 1),
    ("resnet18", "l2 1x1 64-128 /2", 32, 64, 128, 32, 1, 2),
    ("resnet18", "l3 128-256 /2", 32, 128, 256, 16, 3, 2),
    ("resnet18", "l3 256-256 8²", 32, 256, 256, 8, 3, 1),
    ("resnet18", "l3 1x1 128-256 /2", 32, 128, 256, 16, 1, 2),
    ("resnet18", "l4 256-512 /2", 32, 256, 512, 8, 3, 2),
    ("resnet18", "l4 512-512 4²", 32, 512, 512, 4, 3, 1),
    ("resnet18", "l4 1x1 256-512 /2", 32, 256, 512, 8, 1, 2),
    ("imagenette", "stem 7x7 3-64 /2", 128, 3, 64, 64, 7, 2),
    ("imagenette", "l1 64-64 16²", 128, 64, 64, 16, 3, 1),
    ("imagenette", "l2 64-128 /2", 128, 64, 128, 16, 3, 2),
    ("imagenette", "l2 128-128 8²", 128, 128, 128, 8, 3, 1),
    ("imagenette", "l2 1x1 64-128 /2", 128, 64, 128, 16, 1, 2),
    ("imagenette", "l3 128-256 /2", 128, 128, 256, 8, 3, 2),
    ("imagenette", "l3 256-256 4²", 128, 256, 256, 4, 3, 1),
    ("imagenette", "l3 1x1 128-256 /2", 128, 128, 256, 8, 1, 2),
    ("imagenette", "l4 256-512 /2", 128, 256, 512, 4, 3, 2),
    ("imagenette", "l4 512-512 2²", 128, 512, 512, 2, 3, 1),
    ("imagenette", "l4 1x1 256-512 /2", 128, 256, 512, 4, 1, 2),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if a.reps < 1:
        p.error("--reps must be at least 1")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = []
    print(f"{'model':<10}{'layer':<21}{'op':<8}{'torch_ms':>9}{'GFLOP/s':>9}")
    for model, layer, batch, cin, cout, side, k, stride in LAYERS:
        pad = k // 2
        x = torch.randn(batch, cin, side, side)
        w = torch.randn(cout, cin, k, k)
        y = F.conv2d(x, w, stride=stride, padding=pad)
        g = torch.randn_like(y)
        macs = y.numel() * cin * k * k
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        yr = F.conv2d(xr, wr, stride=stride, padding=pad)
        ops = {
            "forward": lambda: F.conv2d(x, w, stride=stride, padding=pad),
            "input": lambda: torch.nn.grad.conv2d_input(x.shape, w, g, stride=stride, padding=pad),
            "weight": lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, stride=stride, padding=pad),
            "backward": lambda: torch.autograd.grad(yr, [xr, wr], g, retain_graph=True),
        }
        times = {op: [] for op in ops}
        for r in range(a.warmup + a.reps):
            for op, run in ops.items():
                t = time.perf_counter()
                if op == "backward":
                    run()
                else:
                    with torch.no_grad():
                        run()
                if r >= a.warmup:
                    times[op].append(time.perf_counter() - t)
        for op in ops:
            s = statistics.median(times[op])
            gflops = (4 if op == "backward" else 2) * macs / s / 1e9
            print(f"{model:<10}{layer:<21}{op:<8}{s * 1e3:>9.2f}{gflops:>9.1f}")
            rows.append({"model": model, "layer": layer, "op": op,
                         "torch_ms": round(s * 1e3, 3), "gflops": round(gflops, 1)})
    for r in rows:
        print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    main()
