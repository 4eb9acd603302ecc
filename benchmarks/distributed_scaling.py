"""Training throughput of one process against ``torchrun`` processes on the same machine (issue 14).

    python benchmarks/distributed_scaling.py --steps 40 --batch-size 64

Runs ``python -m flowlib.train`` twice on the CPU, from the same seed, for the same number of
steps of the same global batch:

* ``single``: one process with ``--threads`` torch threads (default: the machine's cores);
* ``torchrun``: ``--procs`` gloo processes with one thread each (the global batch is split).

Both read the training seconds (wall clock, evaluation and saving excluded) from the checkpoint
they write and report images per second. Run it on a quiet machine: the two modes run one after
the other and compete with anything else that runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from flowlib.training.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run(mode: str, out: Path, args: argparse.Namespace) -> float:
    """Train ``args.steps`` steps in ``mode``; return images per second of training time."""
    train = ["-m", "flowlib.training.train", "--dataset", "mnist", "--device", "cpu", "--steps", str(args.steps),
             "--batch-size", str(args.batch_size), "--eval-every", "0", "--eval-images", "64", "--save-every", "0",
             "--save-every-minutes", "0", "--no-progress", "--out", str(out)]
    env = dict(os.environ)
    if mode == "single":
        env["OMP_NUM_THREADS"] = str(args.threads)
        command = [sys.executable, *train]
    else:
        env["OMP_NUM_THREADS"] = "1"
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        command = [torchrun, "--standalone", f"--nproc_per_node={args.procs}", *train]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {mode} run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    ckpt = read_checkpoint(out)
    seconds = float(ckpt["metrics"]["train_seconds"])
    return args.steps * args.batch_size / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    if args.steps < 1 or args.batch_size % args.procs:
        sys.exit("error: --steps must be >= 1 and --batch-size a multiple of --procs")
    with tempfile.TemporaryDirectory() as tmp:
        single = run("single", Path(tmp) / "single.pt", args)
        multi = run("torchrun", Path(tmp) / "multi.pt", args)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {args.steps} steps of batch {args.batch_size}")
    print(f"one process, {args.threads} threads:       {single:7.1f} images/s")
    print(f"torchrun, {args.procs} gloo processes x 1 thread: {multi:7.1f} images/s ({multi / single:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
