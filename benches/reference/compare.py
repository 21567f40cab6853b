#!/usr/bin/env python3
"""Runs wt's bench_models and the PyTorch reference in one sitting and prints wt / PyTorch.

    cargo build --release --example bench_models
    /tmp/torch/bin/python benches/reference/compare.py            # flex, BP and FA

Run it on an idle machine: PyTorch's thread pool slows badly when another process takes a
core. Options: --bench PATH (the bench_models binary), --device NAME, --models, --steps.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def rows(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(r["model"], r["rule"]): r for r in
            (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def main():
    p = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "..", "target"))
    p.add_argument("--bench", default=os.path.join(target, "release", "examples", "bench_models"))
    p.add_argument("--device", default="flex")
    p.add_argument("--models", default="mlp,resnet20,resnet18")
    p.add_argument("--steps", default="5")
    a = p.parse_args()
    wt = rows([a.bench, "--device", a.device, "--models", a.models, "--rules", "bp,fa",
               "--steps", a.steps])
    torch = rows([sys.executable, os.path.join(HERE, "pytorch_models.py"), "--models", a.models,
                  "--steps", a.steps])
    print(f"{'model':<10}{'rule':<6}{'wt ms':>9}{'torch ms':>10}{'wt/torch':>10}")
    for key in sorted(wt):
        if key in torch:
            w, t = wt[key]["step_ms"], torch[key]["step_ms"]
            print(f"{key[0]:<10}{key[1]:<6}{w:>9.1f}{t:>10.1f}{w / t:>10.2f}")
            print(json.dumps({"model": key[0], "rule": key[1], "backend": a.device,
                              "wt_step_ms": w, "pytorch_step_ms": t, "ratio": round(w / t, 3)}))


if __name__ == "__main__":
    main()
