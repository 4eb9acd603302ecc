"""Tabulate the learning curves that training runs recorded, by CPU-minutes, one column per run.

    python benchmarks/flagship_table.py runs/flagship25/mnist-flagship.pt runs/flagship25/fashion-mnist-flagship.pt

For each run file (a training checkpoint or its export): the test bits/dim recorded at each evaluation
(``--eval-every-minutes``; first ``eval_images`` test images, one dequantization sample), the weight average's
and, in brackets, the trained weights' where the run kept both, at the CPU-minutes of training when it was
taken; then one line per run with its steps, batch, epochs and minutes so far. This is the table of
benchmarks/README.md's flagship section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

TRAIN_IMAGES = 60_000  # MNIST and FashionMNIST


def curve(history: dict) -> list[tuple[float, int, float, float | None]]:
    """``(minutes, step, bpd, trained-weights bpd or None)`` for every evaluation the run recorded."""
    raw = dict((step, bpd) for step, bpd in history.get("raw_evals", []))
    return [(seconds / 60, step, bpd, raw.get(step))
            for seconds, (step, bpd) in zip(history.get("eval_seconds", []), history["evals"], strict=True)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="training checkpoints (or their exports)")
    args = p.parse_args(argv)
    runs = {}
    for path in args.runs:
        if not path.is_file():
            p.error(f"{path} does not exist")
        c = torch.load(path, map_location="cpu", weights_only=False)
        if not (c.get("history") or {}).get("eval_seconds"):
            p.error(f"{path} recorded no timed evaluations (it was not trained with --eval-every-minutes)")
        runs[path] = c
    rows: dict[int, list[str]] = {}
    for i, c in enumerate(runs.values()):
        for minutes, step, bpd, raw in curve(c["history"]):
            cell = f"{bpd:.4f}" + (f" ({raw:.4f})" if raw is not None else "") + f" at step {step:,}"
            rows.setdefault(round(minutes), [""] * len(runs))[i] = cell
    names = [f"{c['dataset']} ({path.name})" for path, c in runs.items()]
    print("| CPU-minutes | " + " | ".join(names) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for minutes in sorted(rows):
        print(f"| {minutes} | " + " | ".join(rows[minutes]) + " |")
    for path, c in runs.items():
        h, tc = c["history"], c["history"]["train_config"]
        print(f"{path}: {c['dataset']}, {c['step']:,} steps of {tc['batch_size']} images "
              f"({c['step'] * tc['batch_size'] / TRAIN_IMAGES:.1f} epochs), {h['seconds'] / 60:.1f} of "
              f"{tc.get('minutes')} minutes ({tc.get('clock')} clock), evaluated on {tc['eval_images']:,} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
