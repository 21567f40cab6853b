#!/usr/bin/env python3
"""Compares two saved wt models (burnpack `.bpk`) tensor by tensor, not byte by byte: a
burnpack file also holds the parameters' ids, which every new process draws afresh.

    scripts/compare_models.py A.bpk B.bpk [TOLERANCE]

With TOLERANCE 0 (the default) the tensors must be equal bit for bit; else their largest
absolute difference must not exceed it. Prints `bit for bit` or `within D`; exits 1 with what
differs (how many tensors, the largest difference and its tensor) otherwise. Standard library
only (the burnpack reader of feedback_gap.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from feedback_gap import load  # noqa: E402


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[3].strip())
    a, b = load(sys.argv[1]), load(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) == 4 else 0.0
    if a.keys() != b.keys():
        sys.exit("the two models hold different tensors")
    differ = {n: max(abs(x - y) for x, y in zip(a[n][1], b[n][1]))
              for n in a if a[n][1].tobytes() != b[n][1].tobytes()}
    if not differ:
        print(f"bit for bit ({len(a)} tensors)")
        return
    worst = max(differ, key=differ.get)
    gap = f"{len(differ)} of {len(a)} tensors differ (largest: {worst}, by {differ[worst]:.3g})"
    if tol == 0 or differ[worst] > tol:
        sys.exit(f"{gap}{'' if tol == 0 else f' > {tol}'}")
    print(f"within {differ[worst]:.3g}")


if __name__ == "__main__":
    main()
