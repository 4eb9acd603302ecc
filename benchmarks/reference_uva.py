"""Train the public reference recipe (UvA deep-learning tutorial 11, multi-scale flow) against the clock.

Issue 10 compares flowlib's default recipe with this reference at equal training time. The
reference code is *not* part of flowlib: this script runs it from the tutorial notebook the
user fetched, by executing only the notebook's layer classes and its ``create_multiscale_flow``
(no Lightning, no downloads; a stand-in ``LightningModule`` base class is an ``nn.Module``). Training
and evaluation use flowlib's loop (:func:`flowlib.training.loop.fit`) and clock, so both recipes are
timed the same way: training time only (evaluation excluded), process CPU time with
``--clock cpu``. The recipe is the tutorial's: batch 128, Adam 1e-3 from the first step, gradient
clipping at 1, the loss is the batch's mean bits/dim, and the learning rate decays by 0.99 per
epoch of 50,000 images. Differences: the 50,000 training images are a seeded random subset of
MNIST's 60,000 (the tutorial keeps the rest for validation), and test bits/dim is on the first
``--eval-images`` test images with one dequantization sample (flowlib's curve benchmark does the same).

Fetch the notebook, then run (one thread, as in benchmarks/README.md):

    git clone --depth 1 https://github.com/phlippe/uvadlc_notebooks /tmp/uvadlc
    OMP_NUM_THREADS=1 python benchmarks/reference_uva.py \
        --notebook /tmp/uvadlc/docs/tutorial_notebooks/tutorial11/NF_image_modeling.ipynb \
        --minutes 40 --eval-every-minutes 5 --clock cpu --out benchmarks/results/reference-uva-40.json

The output is a curve file in the format of ``python -m flowlib.bench --curve-out``, so
``python -m flowlib.figures --curve A.json B.json --out curves.png`` plots both recipes together.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn, optim
from torch.nn import functional as F

from flowlib.data.images import load_images
from flowlib.training.loop import History, batches_from_tensor, fit
from flowlib.training.train import TrainConfig

TRAIN_IMAGES = 50_000  # the tutorial's training split; the rest of MNIST's 60,000 is its validation set
STEPS_PER_EPOCH = TRAIN_IMAGES // 128


class _StandInLightningModule(nn.Module):
    """What the tutorial's ``ImageFlow`` uses of ``pl.LightningModule``: ``device`` and ``log``."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def log(self, *args, **kwargs) -> None:
        pass


def _definitions(source: str) -> str:
    """The class and function definitions of one notebook cell (top-level statements dropped)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return ""
    keep = [node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))]
    return "\n\n".join(ast.unparse(node) for node in keep)


def load_reference(notebook: str | Path) -> types.SimpleNamespace:
    """Execute the tutorial notebook's definitions; return them as a namespace.

    Raises ``ValueError`` when the notebook lacks what this script needs (another version of the
    tutorial, or another file).
    """
    path = Path(notebook)
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path} is not a readable Jupyter notebook ({err})") from None
    code = "\n\n".join(_definitions("".join(c["source"])) for c in cells if c.get("cell_type") == "code")
    example = torch.zeros(1, 28, 28, dtype=torch.int32)
    namespace = {
        "torch": torch, "nn": nn, "F": F, "np": np, "math": math, "optim": optim, "data": torch.utils.data,
        "pl": types.SimpleNamespace(LightningModule=_StandInLightningModule),
        "device": torch.device("cpu"), "train_set": [(example, 0)],
    }
    exec(compile(code, str(path), "exec"), namespace)  # noqa: S102 - running the reference is the point
    if "create_multiscale_flow" not in namespace:
        raise ValueError(f"{path} defines no create_multiscale_flow(): not the UvA tutorial 11 notebook")
    return types.SimpleNamespace(**namespace)


def bits_per_dim(model: nn.Module, images: torch.Tensor, batch_size: int = 100) -> float:
    """Mean test bits/dim of uint8 ``images`` (N, 1, 28, 28), one dequantization sample each."""
    total = 0.0
    with torch.no_grad():
        for chunk in images.split(batch_size):
            log_px = model._get_likelihood(chunk.to(torch.int32), return_ll=True)
            total += float((-log_px / (math.log(2) * chunk[0].numel())).sum())
    return total / len(images)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebook", required=True, help="the tutorial's NF_image_modeling.ipynb")
    p.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    p.add_argument("--eval-every-minutes", type=float, default=5.0, help="spacing of the curve's points")
    p.add_argument("--eval-images", type=int, default=2000, help="first N test images")
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="curve file (JSON) to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        p.error(f"--out {out} already exists; pass --force to replace it")
    if not args.minutes > 0 or not args.eval_every_minutes > 0:
        p.error("--minutes and --eval-every-minutes must be positive")
    try:
        ref = load_reference(args.notebook)
    except ValueError as err:
        p.error(str(err))

    torch.manual_seed(args.seed)
    model = ref.create_multiscale_flow()
    parameters = sum(t.numel() for t in model.parameters())
    train = load_images("mnist", "train").images
    keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:TRAIN_IMAGES]
    batches = batches_from_tensor(train[keep].to(torch.int32), 128, seed=args.seed)
    test = load_images("mnist", "test", limit=args.eval_images).images
    print(f"reference model: {parameters:,} parameters; {args.minutes:g} {args.clock}-clock minutes, "
          f"threads {torch.get_num_threads()}", flush=True)

    history = History()
    fit(model, batches, 10**9, optimizer=optim.Adam(model.parameters(), lr=1e-3), clip_grad=1.0,
        lr_schedule=lambda step: 0.99 ** ((step - 1) // STEPS_PER_EPOCH),
        loss_fn=lambda m, x: m._get_likelihood(x), eval_fn=lambda m: bits_per_dim(m, test),
        time_budget=60 * args.minutes, eval_every_seconds=60 * args.eval_every_minutes,
        clock=TrainConfig(clock=args.clock).timer(), history=history, desc="reference")
    curve = [[t, step, bpd] for t, (step, bpd) in zip(history.eval_seconds, history.evals)]
    result = {"recipe": "UvA tutorial 11 multi-scale flow", "notebook": str(args.notebook), "device": "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "parameters": parameters,
              "batch_size": 128, "curve": curve, "steps": history.step, "train_seconds": history.seconds,
              "clock": args.clock, "eval_images": len(test)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for t, step, bpd in curve:
        print(f"{t / 60:6.1f} min  step {step:>6,}  {bpd:.4f} bits/dim")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
