"""PyTorch feedback layers and models shared by the reference scripts beside it
(`pytorch_models.py`, the speed reference; `pytorch_train.py`, the accuracy cross-check).

Rules: bp (PyTorch's own F.linear / F.conv2d), fa (fixed random B) and usf (B = s·sign(W)
formed at each backward pass, s the std of W's initialiser, as in wt and BioTorch's
`scaling_factor`). Feedback goes through custom autograd Functions: dx = g·B (linear),
conv2d_input(g, B) (conv); dW is backprop's. Not a dependency of the crates or of CI.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

RULES = ("bp", "fa", "usf")


def feedback(w, rule, fb, scale):
    """The matrix the backward pass sends the error through: B for fa, s·sign(W) for usf."""
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
    """A linear (k = None) or k×k conv layer whose backward pass follows the rule.
    Input [n, i] or [n, i, h, w]; weight [o, i] or [o, i, k, k]."""

    def __init__(self, i, o, k, rule, init, stride=1, padding=0, bias=True):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"rule `{rule}`: expected one of {', '.join(RULES)}")
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


def mlp(rule, init="default"):
    """The MNIST MLP 784-1000-1000-10 with ReLU; input [n, 1, 28, 28]."""
    return nn.Sequential(nn.Flatten(), Feedback(784, 1000, None, rule, init), nn.ReLU(),
                         Feedback(1000, 1000, None, rule, init), nn.ReLU(),
                         Feedback(1000, 10, None, rule, init))


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
    """He et al.'s basic block. Where the shape changes, option "A" pads a strided identity
    with zero channels, option "B" projects with a 1×1 conv + batch norm."""

    def __init__(self, i, o, stride, rule, init, option="A"):
        super().__init__()
        self.c1 = Feedback(i, o, 3, rule, init, stride, 1, bias=False)
        self.c2 = Feedback(o, o, 3, rule, init, 1, 1, bias=False)
        self.b1, self.b2 = nn.BatchNorm2d(o), nn.BatchNorm2d(o)
        self.pad, self.changes = (o - i) // 2, stride != 1 or i != o
        self.proj = None
        if self.changes and option == "B":
            self.proj = nn.Sequential(Feedback(i, o, 1, rule, init, stride, 0, bias=False),
                                      nn.BatchNorm2d(o))

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
    """A ResNet of basic blocks: stem conv + batch norm, basic blocks (stride 2 at the first
    block of every stage after the first), global average pool, linear. The "cifar" stem is a
    3×3 stride-1 conv (input [n, 3, 32, 32]); the "imagenet" stem is torchvision's 7×7
    stride-2 conv and 3×3 stride-2 max pool (as wt's `--stem imagenet`; any side ≥ 32)."""

    def __init__(self, widths, counts, rule, init, option, stem_width, stem="cifar",
                 classes=10):
        super().__init__()
        if stem == "cifar":
            self.conv1 = Feedback(3, stem_width, 3, rule, init, 1, 1, bias=False)
            self.pool = None
        elif stem == "imagenet":
            self.conv1 = Feedback(3, stem_width, 7, rule, init, 2, 3, bias=False)
            self.pool = nn.MaxPool2d(3, 2, 1)
        else:
            raise ValueError(f"stem `{stem}`: expected cifar or imagenet")
        self.bn1 = nn.BatchNorm2d(stem_width)
        blocks, c = [], stem_width
        for stage, (w, n) in enumerate(zip(widths, counts)):
            for b in range(n):
                blocks.append(Basic(c, w, 2 if stage > 0 and b == 0 else 1, rule, init, option))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = Feedback(c, classes, None, rule, init)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.pool is not None:
            x = self.pool(x)
        return self.fc(self.blocks(x).mean((2, 3)))


def resnet20(rule, init="default"):
    """He et al.'s CIFAR ResNet-20, option-A (zero-padded identity) shortcuts."""
    return ResNet([16, 32, 64], [3, 3, 3], rule, init, "A", 16)


def resnet18_cifar(rule, init="default"):
    """ResNet-18 with the CIFAR stem (3×3 conv, no max pool), projection shortcuts."""
    return ResNet([64, 128, 256, 512], [2, 2, 2, 2], rule, init, "B", 64)


def resnet18_imagenet(rule, init="default", classes=1000):
    """ResNet-18 with the ImageNet stem (7×7 stride-2 conv, 3×3 stride-2 max pool), projection
    shortcuts, `classes` outputs: wt's `--stem imagenet` ResNet-18 (e.g. at 64 px)."""
    return ResNet([64, 128, 256, 512], [2, 2, 2, 2], rule, init, "B", 64, "imagenet", classes)
