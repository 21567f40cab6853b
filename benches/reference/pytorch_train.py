#!/usr/bin/env python3
"""PyTorch cross-check of wt's CIFAR-10 rows: trains CIFAR LeNet or ResNet-20 with BP, FA or uSF
in an independent implementation, so that a gap between rules seen in docs/results.md can be
told apart from a defect of wt.

Same recipe as `cargo run --release --example cifar10` (BioTorch's): SGD with momentum 0.9,
weight decay 1e-4, batch 128, step schedule (×0.1 after the given epochs), 45,000 / 5,000
split, 4-pixel zero-padded random crop + horizontal flip, CIFAR-10 mean/std normalisation.
Feedback through custom autograd Functions: dx = g·B (linear), conv2d_input(g, B) (conv),
with B fixed and random (FA) or s·sign(W) formed at each backward pass (uSF, s = the std of
W's initialiser, as in wt and BioTorch's `scaling_factor`). Not bit-identical to wt (its own
random streams, split and augmentation draws): compare rule against rule, not cell against cell.

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy
    /tmp/torch/bin/python benches/reference/pytorch_train.py --model lenet --rule usf \\
        --lr 0.01 --init default --epochs 5

Prints one line per epoch and a final JSON line (rule, model, epochs, test_accuracy).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def read_cifar(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise SystemExit(f"{path}: {raw.size} bytes is not a whole number of 3,073-byte records")
    raw = raw.reshape(-1, 3073)
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(
        raw[:, 0].astype(np.int64))


def feedback(w, rule, fb, scale):
    if rule == "fa":
        return fb
    if rule == "usf":
        return scale * torch.sign(w)
    return w


class LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, fb, rule, scale):
        ctx.save_for_backward(x, w, fb)
        ctx.rule, ctx.scale = rule, scale
        return F.linear(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w, fb = ctx.saved_tensors
        gb = g.sum(0) if ctx.needs_input_grad[2] else None
        return g @ feedback(w, ctx.rule, fb, ctx.scale), g.t() @ x, gb, None, None, None


class ConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, fb, rule, scale, stride, padding):
        ctx.save_for_backward(x, w, fb)
        ctx.rule, ctx.scale, ctx.stride, ctx.padding = rule, scale, stride, padding
        return F.conv2d(x, w, b, stride, padding)

    @staticmethod
    def backward(ctx, g):
        x, w, fb = ctx.saved_tensors
        b = feedback(w, ctx.rule, fb, ctx.scale)
        gx = torch.nn.grad.conv2d_input(x.shape, b, g, ctx.stride, ctx.padding)
        gw = torch.nn.grad.conv2d_weight(x, w.shape, g, ctx.stride, ctx.padding)
        gb = g.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None, None, None, None, None


def init_(w, init):
    """Initialises w in place; returns the std of the initialiser (uSF's scale)."""
    fan_in = w[0].numel()
    fan_out = w.shape[0] * w[0][0].numel()
    if init == "xavier":
        nn.init.xavier_uniform_(w)
        return math.sqrt(2.0 / (fan_in + fan_out))
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # PyTorch's and Burn's default
    return 1.0 / math.sqrt(3.0 * fan_in)


class Feedback(nn.Module):
    """A linear (k = None) or k×k conv layer whose backward pass follows the rule."""

    def __init__(self, i, o, k, rule, init, stride=1, padding=0, bias=True):
        super().__init__()
        shape = (o, i) if k is None else (o, i, k, k)
        self.weight = nn.Parameter(torch.empty(shape))
        self.scale = init_(self.weight, init)
        self.bias = nn.Parameter(torch.empty(o)) if bias else None
        if bias:
            nn.init.uniform_(self.bias, -1 / math.sqrt(self.weight[0].numel()),
                             1 / math.sqrt(self.weight[0].numel()))
        self.register_buffer("fb", torch.empty(shape))
        init_(self.fb, init)
        self.rule, self.k, self.stride, self.padding = rule, k, stride, padding

    def forward(self, x):
        if self.rule == "bp":
            if self.k is None:
                return F.linear(x, self.weight, self.bias)
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        if self.k is None:
            return LinearFn.apply(x, self.weight, self.bias, self.fb, self.rule, self.scale)
        return ConvFn.apply(x, self.weight, self.bias, self.fb, self.rule, self.scale,
                            self.stride, self.padding)


class LeNet(nn.Module):
    """BioTorch's CIFAR LeNet: conv5 32-64-128 (ReLU, 2×2 max pool after the first two),
    linear 128→84→10 with no activation between them (as wt's LeNet)."""

    def __init__(self, rule, init):
        super().__init__()
        self.c1 = Feedback(3, 32, 5, rule, init)
        self.c2 = Feedback(32, 64, 5, rule, init)
        self.c3 = Feedback(64, 128, 5, rule, init)
        self.f1 = Feedback(128, 84, None, rule, init)
        self.f2 = Feedback(84, 10, None, rule, init)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.c3(x)).flatten(1)
        return self.f2(self.f1(x))


class Basic(nn.Module):
    def __init__(self, i, o, stride, rule, init):
        super().__init__()
        self.c1 = Feedback(i, o, 3, rule, init, stride, 1, bias=False)
        self.c2 = Feedback(o, o, 3, rule, init, 1, 1, bias=False)
        self.b1, self.b2 = nn.BatchNorm2d(o), nn.BatchNorm2d(o)
        self.pad, self.changes = (o - i) // 2, stride != 1 or i != o

    def forward(self, x):
        out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.changes else x
        return F.relu(out + short)


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet-20, option-A (zero-padded identity) shortcuts."""

    def __init__(self, rule, init):
        super().__init__()
        self.conv1 = Feedback(3, 16, 3, rule, init, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for stage, w in enumerate([16, 32, 64]):
            for b in range(3):
                blocks.append(Basic(c, w, 2 if stage > 0 and b == 0 else 1, rule, init))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = Feedback(64, 10, None, rule, init)

    def forward(self, x):
        return self.fc(self.blocks(F.relu(self.bn1(self.conv1(x)))).mean((2, 3)))


def augment(x, gen):
    """Random 4-pixel-padded crop and horizontal flip of uint8 images [n, 3, 32, 32]."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        img = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = img.flip(2) if flip[i] else img
    return out


def normalise(x):
    return (x.float() / 255.0 - MEAN) / STD


def accuracy(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            correct += (model(normalise(x[i:i + 500])).argmax(1) == y[i:i + 500]).sum().item()
    model.train()
    return correct / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="../shared/data/cifar-10-approx/cifar-10-batches-bin")
    p.add_argument("--model", choices=["lenet", "resnet20"], default="lenet")
    p.add_argument("--rule", choices=["bp", "fa", "usf"], default="bp")
    p.add_argument("--init", choices=["default", "xavier"], default="xavier")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--milestones", default="2,3,4")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if a.epochs < 1:
        p.error("--epochs must be at least 1")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    parts = [read_cifar(os.path.join(a.data, f"data_batch_{i}.bin")) for i in range(1, 6)]
    x = torch.cat([t[0] for t in parts])
    y = torch.cat([t[1] for t in parts])
    test_x, test_y = read_cifar(os.path.join(a.data, "test_batch.bin"))
    perm = torch.randperm(len(x))
    train_x, train_y = x[perm[5000:]], y[perm[5000:]]
    val_x, val_y = x[perm[:5000]], y[perm[:5000]]
    model = (LeNet if a.model == "lenet" else ResNet20)(a.rule, a.init)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=a.weight_decay)
    milestones = [int(m) for m in a.milestones.split(",") if m]
    gen = torch.Generator().manual_seed(a.seed)
    for epoch in range(1, a.epochs + 1):
        lr = a.lr * 0.1 ** sum(epoch > m for m in milestones)
        for g in opt.param_groups:
            g["lr"] = lr
        order = torch.randperm(len(train_x), generator=gen)
        start, seen, correct, total_loss = time.time(), 0, 0, 0.0
        for i in range(0, len(order), a.batch):
            idx = order[i:i + a.batch]
            xb, yb = normalise(augment(train_x[idx], gen)), train_y[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            value = loss.item()
            if not math.isfinite(value):
                raise SystemExit(f"non-finite loss at epoch {epoch}, step {i // a.batch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            total_loss += value * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
        val_acc, test_acc = accuracy(model, val_x, val_y), accuracy(model, test_x, test_y)
        print(f"epoch {epoch}/{a.epochs} lr {lr:.4g}: train loss {total_loss / seen:.4f}, "
              f"train {100 * correct / seen:.2f}%, validation {100 * val_acc:.2f}%, "
              f"test {100 * test_acc:.2f}% ({time.time() - start:.0f} s)", flush=True)
    print(json.dumps({"rule": a.rule, "model": a.model, "epochs": a.epochs, "backend": "pytorch",
                      "test_accuracy": test_acc, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
