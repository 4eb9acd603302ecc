"""Make the small PNGs the README shows, from a checkpoint.

    python -m flowlib.figures --checkpoint data/checkpoints/mnist.pt --out data/checkpoints/mnist-samples.png

Draws a grid of samples at a fixed seed and temperature (default 8x8 at T = 0.7) and saves
it as a greyscale PNG (upscaled 2x, nearest neighbour), so the picture is reproducible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .plot import image_grid

__all__ = ["sample_grid_png", "main"]


def sample_grid_png(checkpoint: str | Path, out: str | Path, n: int = 64, nrow: int = 8, temperature: float = 0.7,
                    seed: int = 0, scale: int = 2) -> Path:
    """Write a PNG of ``n`` samples from ``checkpoint`` and return its path."""
    from PIL import Image

    model, _ = load_checkpoint(checkpoint)
    g = torch.Generator().manual_seed(seed)
    samples = model.sample(n, temperature=temperature, generator=g, quantize=False)
    grid = (image_grid(samples, nrow=nrow, pad=1) * 255).round().astype(np.uint8)
    img = Image.fromarray(grid, mode="L")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--nrow", type=int, default=8)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    path = sample_grid_png(args.checkpoint, args.out, args.n, args.nrow, args.temperature, args.seed)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
