#!/usr/bin/env python3
"""PyTorch reference for wt's model-level benchmark (examples/bench_models.rs).

Same models, batches and step as `bench_models`: MLP 784-1000-1000-10 (batch 128), ResNet-20
with option-A shortcuts (batch 128), ResNet-18 with the CIFAR stem (batch 32); forward,
cross-entropy, backward, SGD-momentum step; random inputs; median of --steps steps after
--warmup. Rules: bp (PyTorch's own layers) and fa (feedback alignment through a custom
autograd Function: dx = g·B for linear, conv_transpose2d(g, B) for conv).

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
import torch.nn as nn
import torch.nn.functional as F


class FALinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, fb):
        ctx.save_for_backward(x, fb)
        return F.linear(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, fb = ctx.saved_tensors
        return g @ fb, g.t() @ x, g.sum(0), None


class FAConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, fb, stride, padding):
        ctx.save_for_backward(x, fb)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, w, None, stride, padding)

    @staticmethod
    def backward(ctx, g):
        x, fb = ctx.saved_tensors
        gx = torch.nn.grad.conv2d_input(x.shape, fb, g, ctx.stride, ctx.padding)
        gw = torch.nn.grad.conv2d_weight(x, fb.shape, g, ctx.stride, ctx.padding)
        return gx, gw, None, None, None


class Linear(nn.Linear):
    def __init__(self, i, o, fa):
        super().__init__(i, o)
        self.fa = fa
        if fa:
            self.register_buffer("fb", torch.empty_like(self.weight))
            nn.init.kaiming_uniform_(self.fb, a=5 ** 0.5)

    def forward(self, x):
        if self.fa:
            return FALinearFn.apply(x, self.weight, self.bias, self.fb)
        return super().forward(x)


class Conv(nn.Conv2d):
    def __init__(self, i, o, k, stride, padding, fa):
        super().__init__(i, o, k, stride, padding, bias=False)
        self.fa = fa
        if fa:
            self.register_buffer("fb", torch.empty_like(self.weight))
            nn.init.kaiming_uniform_(self.fb, a=5 ** 0.5)

    def forward(self, x):
        if self.fa:
            return FAConvFn.apply(x, self.weight, self.fb, self.stride, self.padding)
        return super().forward(x)


def mlp(fa):
    return nn.Sequential(nn.Flatten(), Linear(784, 1000, fa), nn.ReLU(), Linear(1000, 1000, fa),
                         nn.ReLU(), Linear(1000, 10, fa))


class Basic(nn.Module):
    def __init__(self, i, o, stride, fa, option):
        super().__init__()
        self.c1, self.b1 = Conv(i, o, 3, stride, 1, fa), nn.BatchNorm2d(o)
        self.c2, self.b2 = Conv(o, o, 3, 1, 1, fa), nn.BatchNorm2d(o)
        self.option, self.pad, self.proj = option, (o - i) // 2, None
        if (stride != 1 or i != o) and option == "B":
            self.proj = nn.Sequential(Conv(i, o, 1, stride, 0, fa), nn.BatchNorm2d(o))
        self.changes = stride != 1 or i != o

    def forward(self, x):
        out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        if self.proj is not None:
            short = self.proj(x)
        elif self.changes:
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            short = x
        return F.relu(out + short)


class ResNet(nn.Module):
    def __init__(self, widths, counts, fa, option, stem_width):
        super().__init__()
        self.conv1, self.bn1 = Conv(3, stem_width, 3, 1, 1, fa), nn.BatchNorm2d(stem_width)
        blocks, c = [], stem_width
        for stage, (w, n) in enumerate(zip(widths, counts)):
            for b in range(n):
                blocks.append(Basic(c, w, 2 if stage > 0 and b == 0 else 1, fa, option))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = Linear(c, 10, fa)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


MODELS = {
    "mlp": (lambda fa: mlp(fa), 128, (1, 28)),
    "resnet20": (lambda fa: ResNet([16, 32, 64], [3, 3, 3], fa, "A", 16), 128, (3, 32)),
    "resnet18": (lambda fa: ResNet([64, 128, 256, 512], [2, 2, 2, 2], fa, "B", 64), 32, (3, 32)),
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
        build, batch, (c, side) = MODELS[name]
        x = torch.randn(batch, c, side, side)
        y = torch.arange(batch) % 10
        cases = []
        for rule in a.rules.split(","):
            m = build(rule == "fa")
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
