#!/usr/bin/env python3
"""Runs wt's bench_models and the PyTorch reference in one sitting and prints wt / PyTorch.

    cargo build --release --example bench_models
    /tmp/torch/bin/python benches/reference/compare.py            # flex, BP and FA

Model by model, the two programs take turns (wt, PyTorch, wt, PyTorch, ... --sittings times),
each measuring the model's rules interleaved for --steps steps (the MLP: --mlp-steps, its
10-20 ms steps need more). Each cell is the median over the sittings of that program's median
step, so a slow stretch of a noisy machine hits both sides alike; the spread (lowest and
highest sitting) is printed beside it. Run it on an idle machine: PyTorch's thread pool slows
badly when another process takes a core. Options: --bench PATH (the bench_models binary),
--device NAME, --models (default: mlp, resnet20, resnet18 with the CIFAR stem at batch 32, and
resnet18-imagenet64, the Imagenette step: ImageNet stem, 64 px, 1,000 classes, batch 128),
--rules (of bp, fa, usf), --steps, --mlp-steps, --sittings.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# The Imagenette step (ResNet-18, ImageNet stem, 64 px, 1,000 classes, batch 128): one name in
# pytorch_models.py, these flags in bench_models.
WT_MODEL_ARGS = {
    "resnet18-imagenet64": ["--models", "resnet18", "--image-size", "64", "--stem", "imagenet",
                            "--classes", "1000", "--batch", "128"],
}


def rows(cmd, name=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(name or r["model"], r["rule"]): r["step_ms"] for r in
            (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def main():
    p = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "..", "target"))
    p.add_argument("--bench", default=os.path.join(target, "release", "examples", "bench_models"))
    p.add_argument("--device", default="flex")
    p.add_argument("--models", default="mlp,resnet20,resnet18,resnet18-imagenet64",
                   help="of mlp, resnet20, resnet18 (CIFAR stem, batch 32) and "
                        "resnet18-imagenet64 (the Imagenette step)")
    p.add_argument("--rules", default="bp,fa", help="of bp, fa, usf (PyTorch's three)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--mlp-steps", type=int, default=41)
    p.add_argument("--sittings", type=int, default=3)
    a = p.parse_args()
    if a.sittings < 1 or a.steps < 1 or a.mlp_steps < 1:
        p.error("--sittings, --steps and --mlp-steps must be at least 1")
    if not os.path.isfile(a.bench):
        p.error(f"--bench: no bench_models binary at {a.bench} (cargo build --release "
                "--example bench_models, or pass its path)")
    wt, torch = {}, {}
    for model in a.models.split(","):
        steps = str(a.mlp_steps if model == "mlp" else a.steps)
        for _ in range(a.sittings):
            wt_cmd = [a.bench, "--device", a.device] + WT_MODEL_ARGS.get(model, ["--models", model])
            torch_cmd = [sys.executable, os.path.join(HERE, "pytorch_models.py"), "--models", model]
            for into, cmd in ((wt, wt_cmd), (torch, torch_cmd)):
                for key, ms in rows(cmd + ["--rules", a.rules, "--steps", steps],
                                    model).items():
                    into.setdefault(key, []).append(ms)
    print(f"{'model':<10}{'rule':<6}{'wt ms':>9}{'(range)':>17}{'torch ms':>10}{'(range)':>17}"
          f"{'wt/torch':>10}")
    span = lambda v: f"({min(v):.1f}-{max(v):.1f})"
    both = [(key, statistics.median(wt[key]), statistics.median(torch[key]))
            for key in wt if key in torch]
    for key, w, t in both:
        print(f"{key[0]:<10}{key[1]:<6}{w:>9.1f}{span(wt[key]):>17}{t:>10.1f}"
              f"{span(torch[key]):>17}{w / t:>10.2f}")
    for key, w, t in both:
        print(json.dumps({"model": key[0], "rule": key[1], "backend": a.device,
                          "wt_step_ms": w, "pytorch_step_ms": t, "ratio": round(w / t, 3),
                          "sittings": a.sittings}))


if __name__ == "__main__":
    main()
