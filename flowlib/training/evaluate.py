"""Test bits/dim of a checkpoint (notebook 06; conditional models, notebook 08).

    python -m flowlib.evaluate --checkpoint data/checkpoints/mnist.pt --split test --importance-samples 8 --json

With ``--json`` the last line printed is a JSON object with ``bpd``, ``dataset``, ``split``,
``n``, ``importance_samples`` (and more). For a conditional model the bits/dim are those of
``x`` given its condition (:func:`flowlib.models.conditions.make_condition`, evaluation form: the
bottom half hidden for ``"mask"``), and ``condition`` names it; a class-conditional model also
reports ``accuracy``, the test accuracy of its Bayes classifier ``argmax_c p(x | c)``.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from ..data.images import DATASETS, DatasetNotFoundError, load_images
from ..models.multiscale import MultiScaleFlow, classify, make_condition
from . import cli
from . import distributed as dist
from .checkpoint import CheckpointError, load_checkpoint, sha256_of

__all__ = ["evaluate_bpd", "main"]


@torch.no_grad()
def evaluate_bpd(model: MultiScaleFlow, images: torch.Tensor, batch_size: int = 100, importance_samples: int = 1,
                 progress: bool = False, distributed: bool = False, labels: torch.Tensor | None = None) -> float:
    """Mean bits/dim of ``images`` (uint8, any device) under ``model``; K>1 uses importance weighting.

    A conditional model is scored given the evaluation condition of each image
    (:func:`flowlib.models.conditions.make_condition`); a class-conditional one needs the ``labels``.

    The one evaluation used by training, ``python -m flowlib.evaluate`` and ``flowlib.training.bench``.
    ``distributed=True`` (every rank of the process group calls it with the same ``images``)
    splits the images into one contiguous part per rank and sums the bits and the counts over
    the ranks: every image counted once, and every rank gets the same mean.
    """
    from tqdm.auto import tqdm

    if images.shape[0] == 0:
        raise ValueError("no images to evaluate; pass at least one")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    condition = getattr(getattr(model, "config", None), "condition", None)
    if condition == "class" and labels is None:
        raise ValueError("this model is class-conditional: pass the labels of the images (labels=...)")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images; pass one label per image")
    if labels is None:
        labels = torch.zeros(len(images), dtype=torch.long)  # unused: only "class" reads them
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    mine, my_labels = images, labels
    if distributed:
        mine, my_labels = (t.tensor_split(dist.world_size())[dist.rank()] for t in (images, labels))
    for chunk, chunk_labels in tqdm(list(zip(mine.split(batch_size), my_labels.split(batch_size))), desc="evaluating",
                                    disable=not progress, leave=False):
        chunk = chunk.to(device)
        # an unconditional model is called with the images alone
        cond = () if condition is None else (make_condition(model.config, chunk, chunk_labels.to(device)),)
        if importance_samples > 1:
            bpd = model.importance_bits_per_dim(chunk, importance_samples, *cond)
        else:
            bpd = model.bits_per_dim(chunk, *cond)
        total += bpd.double().sum().item()
        n += chunk.shape[0]
    model.train(was_training)
    if distributed:
        total, n = dist.sum_over_ranks([total, n], device)
    return total / n


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog="python -m flowlib.evaluate", description="Bits/dim of a flowlib checkpoint.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--importance-samples", type=int, default=1, help="K dequantization samples per image")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="seed of the dequantization noise")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        cli.require(args.importance_samples >= 1, f"--importance-samples must be >= 1, got {args.importance_samples}")
        cli.require(args.limit is None or args.limit >= 1,
                    f"--limit must be >= 1 (the number of images to use), got {args.limit}; leave it out to use all")
        cli.require(args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}")
        device = cli.device(args.device)
        model, ckpt = load_checkpoint(args.checkpoint, device=device)
        cli.require(ckpt["dataset"] in DATASETS,
                    f"{args.checkpoint} was trained on {ckpt['dataset']!r}, which this command cannot load "
                    f"(it knows {', '.join(sorted(DATASETS))}); evaluate it in Python with evaluate_bpd on your images")
        cfg = model.config
        cli.require((cfg.channels, cfg.size) == (1, 28),
                    f"{args.checkpoint} holds a model of {cfg.channels}x{cfg.size}x{cfg.size} images, but "
                    f"{ckpt['dataset']} images are 1x28x28; evaluate it in Python with evaluate_bpd on your images")
        data = load_images(ckpt["dataset"], args.split, limit=args.limit)
    except (CheckpointError, DatasetNotFoundError, cli.UsageError) as err:
        return cli.fail(err)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    bpd = evaluate_bpd(model, data.images, batch_size=args.batch_size, importance_samples=args.importance_samples,
                       progress=not args.no_progress, labels=data.labels)
    condition = cfg.condition
    given = "" if condition is None else f" given {condition}"
    accuracy = None
    if condition == "class":
        predicted = classify(model, data.images.to(device), args.batch_size, progress=not args.no_progress)
        accuracy = (predicted == data.labels).double().mean().item()
    seconds = time.perf_counter() - t0
    print(f"{ckpt['dataset']} {args.split}: {bpd:.4f} bits/dim{given} over {len(data)} images "
          f"(K={args.importance_samples}, {seconds:.1f} s on {device})")
    if accuracy is not None:
        print(f"Bayes classifier argmax_c p(x|c): accuracy {accuracy:.4f} over {len(data)} images")
    if args.json:
        print(json.dumps({"bpd": bpd, "dataset": ckpt["dataset"], "split": args.split, "n": len(data),
                          "importance_samples": args.importance_samples, "checkpoint": str(args.checkpoint),
                          "sha256": sha256_of(args.checkpoint), "step": ckpt["step"], "seconds": round(seconds, 2),
                          "device": str(device), "condition": condition, "accuracy": accuracy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
