#!/usr/bin/env python3
"""PyTorch cross-check of wt's CIFAR-10 rows: trains CIFAR LeNet or ResNet-20 with BP, FA or uSF
in an independent implementation, so that a gap between rules seen in docs/results.md can be
told apart from a defect of wt.

Same recipe as `cargo run --release --example cifar10` (BioTorch's): SGD with momentum 0.9,
weight decay 1e-4, batch 128, step schedule (×0.1 after the given epochs), 45,000 / 5,000
split, 4-pixel zero-padded random crop + horizontal flip, CIFAR-10 mean/std normalisation.
Layers and models from `pytorch_feedback.py`: feedback through custom autograd Functions,
dx = g·B (linear), conv2d_input(g, B) (conv), with B fixed and random (FA) or s·sign(W) formed
at each backward pass (uSF, s = the std of W's initialiser, as in wt and BioTorch's
`scaling_factor`). Not bit-identical to wt (its own
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
import torch.nn.functional as F

from pytorch_feedback import LeNet, resnet20

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def read_cifar(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise SystemExit(f"{path}: {raw.size} bytes is not a whole number of 3,073-byte records")
    raw = raw.reshape(-1, 3073)
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(
        raw[:, 0].astype(np.int64))


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
    model = (LeNet if a.model == "lenet" else resnet20)(a.rule, a.init)
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
