"""Test bits/dim of a checkpoint (notebook 06).

    python -m flowlib.evaluate --checkpoint data/checkpoints/mnist.pt --split test --importance-samples 8 --json

With ``--json`` the last line printed is a JSON object with ``bpd``, ``dataset``, ``split``,
``n``, ``importance_samples`` (and more).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from .checkpoint import CheckpointError, load_checkpoint, sha256_of
from .config import default_device
from .data import DatasetNotFoundError, load_images
from .train import evaluate_bpd

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.evaluate", description="Bits/dim of a flowlib checkpoint.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--importance-samples", type=int, default=1, help="K dequantization samples per image")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="seed of the dequantization noise")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.importance_samples < 1:
        p.error("--importance-samples must be >= 1")
    device = torch.device(args.device) if args.device else default_device()
    try:
        model, ckpt = load_checkpoint(args.checkpoint, device=device)
        data = load_images(ckpt["dataset"], args.split, limit=args.limit)
    except (CheckpointError, DatasetNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    bpd = evaluate_bpd(model, data.images, batch_size=args.batch_size, importance_samples=args.importance_samples,
                       progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    print(f"{ckpt['dataset']} {args.split}: {bpd:.4f} bits/dim over {len(data)} images "
          f"(K={args.importance_samples}, {seconds:.1f} s on {device})")
    if args.json:
        print(json.dumps({"bpd": bpd, "dataset": ckpt["dataset"], "split": args.split, "n": len(data),
                          "importance_samples": args.importance_samples, "checkpoint": str(args.checkpoint),
                          "sha256": sha256_of(args.checkpoint), "step": ckpt["step"], "seconds": round(seconds, 2),
                          "device": str(device)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
