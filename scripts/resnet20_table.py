#!/usr/bin/env python3
"""Prints the CIFAR-10 ResNet-20 table of docs/results.md from the run folders
runs/cifar-resnet20-<rule>/metrics.csv (what scripts/reproduce.sh writes); with --write,
replaces the block between the <!-- resnet20-table --> markers of docs/results.md.

usage: scripts/resnet20_table.py [--write] [--epochs N]   (N: the schedule's length, 5)
"""
import argparse
import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ["bp", "kp", "wm", "usf", "frsf", "brsf", "fa"]
HEADER = (
    "| rule | epochs | test | validation | top-5 | B–W angle: conv range (median) / fc (°) "
    "| error angles: range (mean) (°) | test after each epoch | s / epoch |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def pct(x):
    return f"{100 * float(x):.2f}"


def secs(r):
    return f"{float(r['train_seconds']):.0f}"


def row(rule, epochs):
    path = ROOT / "runs" / f"cifar-resnet20-{rule}" / "metrics.csv"
    if not path.exists():
        state = "started, no epoch done" if path.parent.exists() else "not run yet"
        return f"| {rule} | 0/{epochs} | {state} | | | | | | |"
    rows = list(csv.DictReader(path.open()))
    if not rows:
        return f"| {rule} | 0/{epochs} | running | | | | | | |"
    last = rows[-1]
    conv = [float(v) for k, v in last.items() if k.startswith("angle:") and not k.endswith(".fc")]
    fc = [float(v) for k, v in last.items() if k.startswith("angle:") and k.endswith(".fc")]
    err = [float(v) for k, v in last.items() if k.startswith("error_angle:")]
    if not conv or not fc or not err:
        sys.exit(f"{path}: expected angle:, angle:...fc and error_angle: columns")
    test = f"{pct(last['test_accuracy'])}%"
    test = f"**{test}**" if len(rows) >= epochs else f"{test} (running)"
    val = f"{pct(last['val_accuracy'])}%" if last.get("val_accuracy") else "—"
    return (
        f"| {rule} | {len(rows)}/{epochs} | {test} | {val} | {pct(last['test_top5'])}% "
        f"| {min(conv):.1f}–{max(conv):.1f} (median {statistics.median(conv):.1f}) / {fc[0]:.1f} "
        f"| {min(err):.1f}–{max(err):.1f} ({statistics.mean(err):.1f}) "
        f"| {' / '.join(pct(r['test_accuracy']) for r in rows)} "
        f"| {' / '.join(secs(r) for r in rows)} |"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5, help="the runs' schedule length (5)")
    p.add_argument("--write", action="store_true", help="replace the table in docs/results.md")
    args = p.parse_args()
    epochs = args.epochs
    table = HEADER + "\n" + "\n".join(row(r, epochs) for r in RULES)
    if not args.write:
        print(table)
        return
    doc = ROOT / "docs" / "results.md"
    text = doc.read_text()
    start, end = "<!-- resnet20-table -->", "<!-- /resnet20-table -->"
    if start not in text or end not in text:
        sys.exit(f"{doc}: no {start} ... {end} block to replace")
    a, b = text.index(start) + len(start), text.index(end)
    doc.write_text(text[:a] + "\n" + table + "\n" + text[b:])
    print(f"wrote the table into {doc}")


if __name__ == "__main__":
    main()
