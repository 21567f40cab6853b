#!/usr/bin/env python3
"""Prints one results table of docs/results.md over seeds: for each rule, the final test
top-1 (and validation top-1 where the runs have it) as mean ± sd over the seed folders that
scripts/reproduce.sh ROW --seeds ... wrote (runs/<TABLE>-<rule>/seed-<N>/metrics.csv), with
the seeds and epochs it found.

usage: scripts/seed_table.py TABLE [--epochs N] [--angles]
  TABLE: mnist-mlp, fmnist-lenet, cifar-lenet, cifar-resnet20 or imagenette-resnet18 (whose
  extra row wm-slow, the slow mirror, is listed where its folder exists)
  N: the schedule's length; runs that have not finished N epochs are listed as running.
  --angles: a second table, one row per layer and one column per rule, of the last epoch's
  B–W, error and update angles (degrees), each the mean over the finished seeds.
"""
import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ["bp", "fa", "usf", "brsf", "frsf", "kp", "wm", "wm-slow", "dfa", "dkp", "drtp", "sa", "aa", "ia"]


def mean_sd(values):
    if not values:
        return ""
    m = statistics.mean(values)
    if len(values) == 1:
        return f"{100 * m:.2f}"
    return f"{100 * m:.2f} ± {100 * statistics.stdev(values):.2f}"


def finished_runs(table, rule, epochs):
    """(seed, last metrics row) of every finished seed folder of a rule."""
    out = []
    base = ROOT / "runs" / f"{table}-{rule}"
    for run in sorted(base.glob("seed-*"), key=lambda p: int(p.name.split("-")[1])):
        path = run / "metrics.csv"
        rows = list(csv.DictReader(path.open())) if path.exists() else []
        if rows and (epochs is None or len(rows) >= epochs):
            out.append((run.name.split("-")[1], rows[-1]))
    return out


def angle_rows(table, epochs):
    """One row per layer, one column per rule: "B–W / error / update" angle of the last epoch."""
    layers = None
    columns = []
    for rule in RULES:
        runs = finished_runs(table, rule, epochs)
        if not runs:
            continue
        last = runs[0][1]
        if layers is None:
            layers = [k.split(":", 1)[1] for k in last if k.startswith("angle:")]
        cells = []
        for layer in layers:
            parts = []
            for prefix in ["angle", "error_angle", "update_angle"]:
                vals = [float(r[f"{prefix}:{layer}"]) for _, r in runs if r.get(f"{prefix}:{layer}")]
                # DFA's convolutions have no B–W angle (NaN): shown as –.
                vals = [v for v in vals if math.isfinite(v)]
                parts.append(f"{statistics.mean(vals):.1f}" if vals else "–")
            cells.append(" / ".join(parts))
        columns.append((rule, cells))
    if layers is None:
        return []
    head = "| layer | " + " | ".join(rule for rule, _ in columns) + " |"
    lines = [head, "|---|" + "---|" * len(columns)]
    for i, layer in enumerate(layers):
        name = layer.removeprefix("blocks.")
        lines.append(f"| {name} | " + " | ".join(cells[i] for _, cells in columns) + " |")
    return lines


def rule_row(table, rule, epochs):
    base = ROOT / "runs" / f"{table}-{rule}"
    finished, running, test, top5, valid = [], [], [], [], []
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
        if last.get("test_top5"):
            top5.append(float(last["test_top5"]))
        if last.get("val_accuracy"):
            valid.append(float(last["val_accuracy"]))
    note = ", ".join(finished) or "none"
    if running:
        note += "; running: " + ", ".join(running)
    return f"| {rule} | {len(test)} | {mean_sd(test)} | {mean_sd(top5)} | {mean_sd(valid)} | {note} |"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=["mnist-mlp", "fmnist-lenet", "cifar-lenet", "cifar-resnet20",
                                          "imagenette-resnet18"])
    p.add_argument("--epochs", type=int, help="the schedule's length; shorter runs are listed as running")
    p.add_argument("--angles", action="store_true", help="also the per-layer angles of the last epoch")
    args = p.parse_args(argv)
    table, epochs = args.table, args.epochs
    print("| rule | seeds | test top-1 (%), mean ± sd | test top-5 (%) | validation top-1 (%) | seeds done |")
    print("|---|---|---|---|---|---|")
    for rule in RULES:
        if rule == "wm-slow" and not (ROOT / "runs" / f"{table}-{rule}").exists():
            continue
        print(rule_row(table, rule, epochs))
    if args.angles:
        print()
        print("B–W / error / update angle (°) per layer, last epoch, mean over seeds:")
        print()
        for line in angle_rows(table, epochs):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
