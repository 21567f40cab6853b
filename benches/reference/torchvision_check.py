#!/usr/bin/env python3
"""wt's ResNets against torchvision's, both ways, for anyone with PyTorch.

1. A torchvision ResNet (random weights, fixed seed; batch-norm statistics and affine
   parameters randomised too, so the check covers them) is saved as PyTorch `.pth` and as
   safetensors; wt loads each (`examples/torchvision.rs logits`) and its evaluation-mode
   logits on the same input are compared with torchvision's.
2. wt writes the model back (`examples/torchvision.rs export`); torchvision loads that file
   with `load_state_dict(strict=True)` and gives the same logits again.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision safetensors
    cargo build --release --example torchvision
    /tmp/tv/bin/python benches/reference/torchvision_check.py [--depths 18,50] [--side 64]

Exit status 0 when every difference is within the tolerance: 1e-4 (the issue's) times the
largest logit when that exceeds 1 (the randomised batch norms make ResNet-50's logits reach a
few hundred, where float32 rounding alone is ~1e-5 absolute).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch
import torchvision
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wt_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.path.join(target, "release", "examples", "torchvision")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: cargo build --release --example torchvision")
    return path


def randomised(depth, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def run(*args):
    out = subprocess.run([wt_binary(), *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"wt failed: {' '.join(args)}\n{out.stdout}{out.stderr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="18,50")
    parser.add_argument("--side", type=int, default=64, help="input side (pixels)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for depth in [int(d) for d in args.depths.split(",")]:
            model = randomised(depth, seed=depth)
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            pth = os.path.join(tmp, f"r{depth}.pth")
            st = os.path.join(tmp, f"r{depth}.safetensors")
            torch.save(state, pth)
            save_file(state, st)
            torch.manual_seed(1)
            x = torch.randn(args.batch, 3, args.side, args.side)
            inp = os.path.join(tmp, "input.safetensors")
            save_file({"input": x}, inp)
            with torch.no_grad():
                want = model(x)
            scale = want.abs().max().item()
            tol = args.tolerance * max(1.0, scale)
            for name, path in [("pth", pth), ("safetensors", st)]:
                out = os.path.join(tmp, f"wt-{depth}-{name}.safetensors")
                run("logits", "--checkpoint", path, "--depth", str(depth),
                    "--input", inp, "--out", out)
                got = load_file(out)["logits"]
                diff = (got - want).abs().max().item()
                ok &= diff <= tol
                print(f"resnet{depth} from .{name}: max |wt - torchvision| = {diff:.3g} "
                      f"(logits up to {scale:.3g}, relative {diff / max(1.0, scale):.2g}), "
                      f"{'ok' if diff <= tol else 'FAIL'}")
            back = os.path.join(tmp, f"back-{depth}.safetensors")
            run("export", "--checkpoint", pth, "--depth", str(depth), "--out", back)
            again = getattr(torchvision.models, f"resnet{depth}")(weights=None)
            again.load_state_dict(load_file(back), strict=True)
            with torch.no_grad():
                diff = (again.eval()(x) - want).abs().max().item()
            ok &= diff <= tol
            print(f"resnet{depth} written by wt, loaded by torchvision (strict): "
                  f"max difference {diff:.3g}, {'ok' if diff <= tol else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
