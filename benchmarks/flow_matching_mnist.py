"""Score a flow-matching checkpoint in test bits/dim beside the shipped multi-scale flow, on the same images.

    python -m flowlib.train_fm --dataset mnist --minutes 60 --threads 1 --out runs/mnist-fm.pt
    python benchmarks/flow_matching_mnist.py --checkpoint runs/mnist-fm.pt --eval-images 1000 \\
        --json benchmarks/results/flow-matching-mnist.json

Both numbers bound the same quantity, the discrete images' bits/dim: the field models uniformly dequantized
images through the logit of notebook 03 (with the 256-bin term), the shipped flow its own variational
dequantization (a tighter bound, learnt).
The flow-matching field's log-likelihood comes from the instantaneous change of variables on an
adaptive solve (dopri5, ``--rtol``/``--atol``) with Hutchinson's trace estimator (one Rademacher probe per
image); its standard error is the spread of the per-image values over sqrt(N), so it holds the images'
spread, the dequantization noise and the Hutchinson noise. The multi-scale flow's value is exact given its
dequantization noise (K=1, ``flowlib.training.evaluate.evaluate_bpd``); its standard error is computed the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import flowlib as fl
from flowlib.layers.flow_matching import image_bits_per_dim
from flowlib.training.checkpoint import checkpoint_dir, load_checkpoint
from flowlib.training.train_fm import DEQUANT_ALPHA, load_field_checkpoint


def multiscale_per_image(model, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """Per-image bits/dim of the multi-scale flow (K=1), the values ``evaluate_bpd`` averages."""
    out = []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            out.append(model.bits_per_dim(chunk))
    return torch.cat(out).double()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(checkpoint_dir() / "mnist-fm.pt"))
    p.add_argument("--baseline", default=None, help="multi-scale flow checkpoint (default: the shipped one)")
    p.add_argument("--eval-images", type=int, default=1000, help="the first N test images, for both models")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result here (refuses to overwrite without --force)")
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    if args.json and Path(args.json).exists() and not args.force:
        p.error(f"--json {args.json} already exists; pass --force to replace it")
    torch.set_num_threads(args.threads)

    field, ckpt = load_field_checkpoint(args.checkpoint)
    dataset = ckpt["dataset"]
    test = fl.load_images(dataset, "test").images[: args.eval_images]
    deq = fl.UniformDequantization(alpha=DEQUANT_ALPHA)
    torch.manual_seed(args.seed)
    start = time.process_time()
    fm = image_bits_per_dim(field, test, deq, batch_size=args.batch_size, trace="hutchinson", rtol=args.rtol,
                            atol=args.atol, progress=True)
    fm_minutes = (time.process_time() - start) / 60
    baseline = args.baseline or str(checkpoint_dir() / f"{dataset}.pt")
    shipped, _ = load_checkpoint(baseline, dataset=dataset)
    torch.manual_seed(args.seed)
    ms = multiscale_per_image(shipped, test)
    train_hist = ckpt["history"]
    result = {
        "dataset": dataset, "test_images": len(test), "threads": args.threads,
        "flow_matching": {"checkpoint": Path(args.checkpoint).name, "bpd": round(fm["bpd"], 4),
                          "stderr": round(fm["stderr"], 4), "nfe_per_batch": round(fm["nfe"], 1),
                          "parameters": sum(q.numel() for q in field.parameters()), "steps": ckpt["step"],
                          "train_cpu_minutes": round(train_hist.get("seconds", float("nan")) / 60, 1),
                          "eval_cpu_minutes": round(fm_minutes, 2), "rtol": args.rtol, "atol": args.atol},
        "multiscale_flow": {"checkpoint": Path(baseline).name, "bpd": round(ms.mean().item(), 4),
                            "stderr": round((ms.std() / math.sqrt(len(ms))).item(), 4)},
        "paired_difference": {"bpd": round((fm["per_image"] - ms).mean().item(), 4),
                              "stderr": round(((fm["per_image"] - ms).std() / math.sqrt(len(ms))).item(), 4)},
    }
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if math.isfinite(fm["bpd"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
