"""Controlled recipe experiments for the multi-scale flow: one change at a time, a fixed budget.

    OMP_NUM_THREADS=1 python benchmarks/recipe_study.py --minutes 6 base bs64 lr2e-3 ...

Each named variant below changes one or two settings of ``BASE``; every run trains from
scratch on MNIST for the same budget of *process CPU time* (``clock="cpu"``: two runs
sharing a machine each get a fair budget), evaluates test bits/dim (first 2,000 test
images, one dequantization sample) every ``--eval-every`` minutes, and writes
``runs/study/<name>.json``. ``--summary`` prints the table of all results so far.

``--curves FILE ...`` tabulates learning curves written by the curve benchmark
(``python -m flowlib.bench --curve MINUTES --curve-out FILE``, issue 25's study at 20 and 40
CPU-minutes): test bits/dim at every 5 minutes, the steps taken, and, for a run with a weight
average (``--ema``), the trained weights' bits/dim at the end beside the average's.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

from flowlib.models.multiscale import FlowConfig
from flowlib.training.train import TrainConfig, train_model

BASE_MODEL = FlowConfig(alpha=1e-5, pre_steps=2, dequantization="variational", hidden=64, blocks=1)
# channels_last off: the first runs of the study were made before it existed, and step speed must match
BASE_TRAIN = TrainConfig(steps=10**9, batch_size=128, lr=1e-3, warmup_steps=0, eval_every=0, eval_images=2000,
                         save_every=0, clock="cpu", channels_last=False, ema=0.0)

# name -> (model changes, training changes)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "old-defaults": ({"alpha": 0.05, "pre_steps": 0, "dequantization": "uniform"}, {"warmup_steps": 200}),
    "base": ({}, {}),
    "bs64": ({}, {"batch_size": 64}),
    "bs32": ({}, {"batch_size": 32}),
    "bs64-lr2e-3": ({}, {"batch_size": 64, "lr": 2e-3}),
    "bs32-lr5e-4": ({}, {"batch_size": 32, "lr": 5e-4}),
    "learned-bound": ({"learn_bound": True}, {}),
    "bound1": ({"scale_bound": 1.0}, {}),
    "uniform-deq": ({"dequantization": "uniform"}, {}),
    "no-pre": ({"pre_steps": 0}, {}),
    "pre4": ({"pre_steps": 4}, {}),
    "blocks2": ({"blocks": 2}, {}),
    "hidden96": ({"hidden": 96}, {}),
    "hidden48-k6": ({"hidden": 48, "steps_per_level": 6}, {}),
    "deq16": ({"deq_hidden": 16}, {}),
    "warmup50": ({}, {"warmup_steps": 50}),
    "masked": ({"split_couplings": False}, {}),
}


def run(name: str, minutes: float, eval_every: float, out_dir: Path) -> dict:
    model_changes, train_changes = VARIANTS[name]
    mc = replace(BASE_MODEL, **model_changes)
    tc = replace(BASE_TRAIN, minutes=minutes, eval_every_minutes=eval_every, **train_changes)
    model, info = train_model(mc, tc, device="cpu", progress=False, log=lambda *a: None)
    hist = info["history"]
    result = {"name": name, "model": asdict(mc), "train": asdict(tc), "parameters": model.num_parameters(),
              "threads": torch.get_num_threads(), "steps": info["step"],
              "curve": [[t, s, b] for t, (s, b) in zip(hist["eval_seconds"], hist["evals"])]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result))
    print(f"{name}: {info['step']} steps, " + ", ".join(f"{t / 60:.1f} min {b:.3f}" for t, _, b in result["curve"]),
          flush=True)
    return result


def summary(out_dir: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]
    print("| variant | parameters | steps | " + " | ".join(f"bpd @ {t} min" for t in (2, 4, 6)) + " |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["curve"][-1][2]):
        by_min = {}
        for t, _, b in r["curve"]:
            by_min[round(t / 60)] = b
        cells = " | ".join(f"{by_min[m]:.3f}" if m in by_min else "" for m in (2, 4, 6))
        print(f"| {r['name']} | {r['parameters']:,} | {r['steps']} | {cells} |")


def curve_table(paths: list[Path]) -> str:
    """Markdown table of bench curve files, best final bits/dim first."""
    runs = [(p.stem, json.loads(p.read_text())) for p in paths]
    minutes = sorted({round(t / 60) for _, r in runs for t, _, _ in r["curve"]})
    lines = ["| run | parameters | steps | " + " | ".join(f"@ {m} min" for m in minutes)
             + " | end, trained weights |", "|---" * (len(minutes) + 4) + "|"]
    for name, r in sorted(runs, key=lambda nr: nr[1]["curve"][-1][2]):
        by_min = {round(t / 60): b for t, _, b in r["curve"]}
        raw = r.get("raw_curve")
        cells = " | ".join(f"{by_min[m]:.4f}" if m in by_min else "" for m in minutes)
        lines.append(f"| {name} | {r['parameters']:,} | {r['steps']:,} | {cells} | "
                     + (f"{raw[-1][2]:.4f}" if raw else "") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="*", help="any of: " + ", ".join(VARIANTS))
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--eval-every", type=float, default=2.0)
    p.add_argument("--out-dir", default="runs/study")
    p.add_argument("--summary", action="store_true")
    p.add_argument("--curves", nargs="+", type=Path, metavar="FILE", help="tabulate these bench curve files")
    args = p.parse_args(argv)
    if args.curves:
        print(curve_table(args.curves))
        return 0
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    for name in args.variants:
        run(name, args.minutes, args.eval_every, Path(args.out_dir))
    if args.summary:
        summary(Path(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
