#!/usr/bin/env python3
"""Prints one results table of docs/results.md over seeds: for each rule, the final test
top-1 (and validation top-1 where the runs have it) as mean ± sd over the seed folders that
scripts/reproduce.sh ROW --seeds ... wrote (runs/<TABLE>-<rule>/seed-<N>/metrics.csv), with
the seeds and epochs it found.

usage: scripts/seed_table.py TABLE [--epochs N]
  TABLE: mnist-mlp, fmnist-lenet, cifar-lenet or cifar-resnet20
  N: the schedule's length; runs that have not finished N epochs are listed as running.
"""
import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ["bp", "fa", "usf", "brsf", "frsf", "kp", "wm"]


def mean_sd(values):
    if not values:
        return ""
    m = statistics.mean(values)
    if len(values) == 1:
        return f"{100 * m:.2f}"
    return f"{100 * m:.2f} ± {100 * statistics.stdev(values):.2f}"


def rule_row(table, rule, epochs):
    base = ROOT / "runs" / f"{table}-{rule}"
    finished, running, test, valid = [], [], [], []
    for run in sorted(base.glob("seed-*"), key=lambda p: int(p.name.split("-")[1])):
        seed = run.name.split("-")[1]
        path = run / "metrics.csv"
        rows = list(csv.DictReader(path.open())) if path.exists() else []
        if epochs is not None and len(rows) < epochs or not rows:
            running.append(f"{seed} ({len(rows)} epochs)")
            continue
        last = rows[-1]
        finished.append(seed)
        test.append(float(last["test_accuracy"]))
        if last.get("val_accuracy"):
            valid.append(float(last["val_accuracy"]))
    note = ", ".join(finished) or "none"
    if running:
        note += "; running: " + ", ".join(running)
    return f"| {rule} | {len(test)} | {mean_sd(test)} | {mean_sd(valid)} | {note} |"


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    table, epochs = argv[0], None
    if "--epochs" in argv:
        epochs = int(argv[argv.index("--epochs") + 1])
    print("| rule | seeds | test top-1 (%), mean ± sd | validation top-1 (%) | seeds done |")
    print("|---|---|---|---|---|")
    for rule in RULES:
        print(rule_row(table, rule, epochs))


if __name__ == "__main__":
    main(sys.argv[1:])
