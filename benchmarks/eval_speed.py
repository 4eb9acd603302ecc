"""How fast does a model score test images on the CPU? glibc's memory settings and the batch size.

Each measurement runs in a fresh process (glibc adapts its thresholds as a process allocates, so
one process would carry the history of the previous measurement into the next) and times
:func:`flowlib.training.evaluate.evaluate_bpd` on the first ``--images`` MNIST test images: wall time,
user and system CPU time, and minor page faults. ``FLOWLIB_MALLOC=default`` leaves glibc as it
is; otherwise ``import flowlib`` applies :func:`flowlib.config.reuse_freed_memory`.

    OMP_NUM_THREADS=1 python benchmarks/eval_speed.py --checkpoint data/checkpoints/mnist.pt --batch-sizes 500 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def measure(checkpoint: str, images: int, batch_size: int) -> dict[str, float]:
    """One timing in this process: wall and CPU seconds and minor page faults of one evaluation."""
    import resource
    import time

    import torch

    from flowlib.data.images import load_images
    from flowlib.training.checkpoint import load_checkpoint
    from flowlib.training.evaluate import evaluate_bpd

    model, ckpt = load_checkpoint(checkpoint, device="cpu")
    x = load_images(ckpt["dataset"], "test", limit=images).images
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    torch.manual_seed(0)
    bpd = evaluate_bpd(model, x, batch_size=batch_size)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"bpd": bpd, "wall": wall, "user": after.ru_utime - before.ru_utime,
            "sys": after.ru_stime - before.ru_stime, "minor_faults": after.ru_minflt - before.ru_minflt,
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="data/checkpoints/mnist.pt")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 100])
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child process: one batch size
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.checkpoint, args.images, args.one)))
        return
    print(f"{'glibc memory':<22} {'batch':>5} {'wall s':>7} {'user s':>7} {'sys s':>6} {'minor faults':>13}  bits/dim")
    for malloc in ("default", "reuse_freed_memory"):
        for batch_size in args.batch_sizes:
            env = {**os.environ, "FLOWLIB_MALLOC": "default" if malloc == "default" else "reuse"}
            out = subprocess.run([sys.executable, __file__, "--checkpoint", args.checkpoint, "--images",
                                  str(args.images), "--one", str(batch_size)], env=env, capture_output=True,
                                 text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{malloc:<22} {batch_size:>5} {r['wall']:>7.1f} {r['user']:>7.1f} {r['sys']:>6.1f} "
                  f"{r['minor_faults']:>13,}  {r['bpd']:.4f}", flush=True)


if __name__ == "__main__":
    main()
