"""How many bits does a low-resolution copy carry? An upper bound on what super-resolution can save.

A ``r x r`` thumbnail ``y`` is a function of the image ``x``, so ``-log2 P(x) = -log2 P(y) - log2 P(x | y)``:
a perfect super-resolution model saves exactly ``-log2 P(y)`` bits per image over a perfect
unconditional one. This script estimates ``-log2 P(y)`` with a masked autoregressive flow (MAF,
rational-quadratic splines; :func:`flowlib.layers.autoregressive.maf_flow`) trained on the thumbnails of
the training images and evaluated on the test images.

``y`` is stored exactly: each entry is a block sum ``S`` of ``f*f`` pixels (``f = 28 / r``), an integer
in ``[0, 255 f^2]``. The flow sees ``S`` dequantized with uniform noise and squashed to logit space,
so its bits are an upper bound on ``-log2 P(y)`` (in expectation over the noise); a better model of
thumbnails would find fewer. The result is printed per image and per image dimension (``/ 784``), the
unit of notebook 08's bits/dim table.

    OMP_NUM_THREADS=1 python benchmarks/thumbnail_bits.py --dataset fashion-mnist --size 7 --minutes 8
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch.nn import functional as F

from flowlib.data.images import load_images
from flowlib.layers.autoregressive import maf_flow

ALPHA = 1e-4


def block_sums(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images ``(N, 1, 28, 28)`` -> integer block sums ``(N, size * size)`` as float64."""
    factor = images.shape[-1] // size
    return (F.avg_pool2d(images.double(), factor) * factor**2).round().flatten(1)


def to_logit(s: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block sums -> dequantized, logit-space values and the log-det (nats per example) of that map."""
    u = (s + torch.rand_like(s)) / levels
    p = ALPHA + (1 - 2 * ALPHA) * u
    v = torch.log(p) - torch.log1p(-p)
    logdet = (math.log(1 - 2 * ALPHA) - torch.log(p) - torch.log1p(-p) - math.log(levels)).sum(1)
    return v.float(), logdet.float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--size", type=int, default=7, help="side of the thumbnail (7 or 14)")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget in process CPU minutes")
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    train = block_sums(load_images(args.dataset, "train").images, args.size)
    test = block_sums(load_images(args.dataset, "test").images, args.size)
    levels = int(255 * (28 // args.size) ** 2 + 1)
    dims = args.size * args.size
    flow = maf_flow(features=dims, layers=args.layers, hidden=args.hidden, transform="spline", bins=8, bound=6.0)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    start, steps = time.process_time(), 0
    while time.process_time() - start < 60 * args.minutes:
        batch = train[torch.randint(0, len(train), (args.batch,))]
        v, logdet = to_logit(batch, levels)
        loss = -(flow.log_prob(v) + logdet).mean() / dims
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 1.0)
        opt.step()
        steps += 1
    with torch.no_grad():
        nats = torch.cat([-(flow.log_prob(v) + ld) for v, ld in (to_logit(b, levels) for b in test.split(1000))])
    bits = nats.mean().item() / math.log(2)
    print(json.dumps({"dataset": args.dataset, "thumbnail": f"{args.size}x{args.size}", "steps": steps,
                      "train_cpu_minutes": round((time.process_time() - start) / 60, 2),
                      "bits_per_image": round(bits, 1), "bits_per_image_dim": round(bits / 784, 4),
                      "bits_per_thumbnail_entry": round(bits / dims, 3)}))


if __name__ == "__main__":
    main()
