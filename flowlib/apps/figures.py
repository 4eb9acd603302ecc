"""Make the small PNGs the README shows, from a checkpoint.

    python -m flowlib.figures --checkpoint data/checkpoints/mnist.pt --out data/checkpoints/mnist-samples.png
    python -m flowlib.figures --curve runs/mnist.pt runs/curve.json --out curve.png

Draws a grid of samples at a fixed seed and temperature (default 8x8 at T = 0.7) and saves
it as a greyscale PNG (upscaled 2x, nearest neighbour), so the picture is reproducible; or,
with ``--curve``, the learning curves (test bits/dim against training minutes) recorded in
checkpoints written by ``flowlib.training.train`` or in curve files written by ``flowlib.training.bench
--curve-out``. An existing ``--out`` is replaced only with ``--force``; the PNG is written
atomically.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from ..training import cli, train_fm
from ..training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, write_atomically
from .plot import image_grid

__all__ = ["sample_grid_png", "read_curve", "learning_curve_png", "main"]


def sample_grid_png(checkpoint: str | Path, out: str | Path, n: int = 64, nrow: int = 8, temperature: float = 0.7,
                    seed: int = 0, scale: int = 2) -> Path:
    """Write a PNG of ``n`` samples from ``checkpoint`` (atomically, replacing ``out``) and return its path.

    A class-conditional model draws one row of ``nrow`` samples per class instead (``n`` is not used);
    a model conditioned on images is refused, since its samples need observations (notebook 08).
    A flow-matching field (``python -m flowlib.train_fm``) draws its samples by the adaptive ODE.
    """

    out = Path(out)
    _check_settings(out, n, nrow, temperature, scale)
    if read_checkpoint(checkpoint)["config"].get("kind") == train_fm.KIND:
        field, _ = train_fm.load_field_checkpoint(checkpoint)
        samples, _ = train_fm.sample_images(field, n, temperature, torch.Generator().manual_seed(seed))
        return _write_grid(samples, out, nrow, scale)
    model, _ = load_checkpoint(checkpoint)
    condition, cond = model.config.condition, None
    if condition == "class":
        cond = torch.arange(model.config.num_classes).repeat_interleave(nrow)
        n = len(cond)
    elif condition is not None:
        raise ValueError(f"{checkpoint} holds a model conditioned on images (condition={condition!r}): its samples "
                         f"need an observation each; notebook 08 draws them")
    g = torch.Generator().manual_seed(seed)
    samples = model.sample(n, temperature=temperature, generator=g, quantize=False, cond=cond)
    return _write_grid(samples, out, nrow, scale)


def _write_grid(samples: torch.Tensor, out: Path, nrow: int, scale: int) -> Path:
    from PIL import Image

    grid = (image_grid(samples, nrow=nrow, pad=1) * 255).round().astype(np.uint8)
    img = Image.fromarray(grid, mode="L")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return write_atomically(out, lambda f: img.save(f, format="PNG", optimize=True))


def read_curve(path: str | Path) -> tuple[list[float], list[float]]:
    """(training minutes, test bits/dim) from a training checkpoint or a ``bench --curve-out`` JSON file."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        import json

        try:
            points = json.loads(path.read_text())["curve"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{path} is not a curve file written by flowlib.bench --curve-out ({err})") from None
        return [t / 60 for t, _, _ in points], [b for _, _, b in points]
    hist = read_checkpoint(path).get("history", {})
    seconds, evals = hist.get("eval_seconds", []), hist.get("evals", [])
    if not seconds or len(seconds) != len(evals):
        raise CheckpointError(f"{path} records no test bits/dim against training time (trained before flowlib "
                              f"recorded it, or exported without history)")
    return [t / 60 for t in seconds], [b for _, b in evals]


def learning_curve_png(sources: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """Plot test bits/dim against training minutes for each source into one PNG (atomically).

    Curves whose values lie far apart (MNIST near 1 and FashionMNIST near 3 bits/dim) get a panel each, side
    by side, so that neither is flattened by the other's scale; close ones share one panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"out must be a .png file, got {str(out)!r}")
    curves = [read_curve(src) for src in sources]
    names = labels if labels else [Path(src).name for src in sources]
    panels = len(curves) if _far_apart([bpd for _, bpd in curves]) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 if panels == 1 else 5 * panels, 4), dpi=100, squeeze=False)
    for i, ((minutes, bpd), name) in enumerate(zip(curves, names)):
        axes[0, i if panels > 1 else 0].plot(minutes, bpd, "o-", color=f"C{i}", label=name)
    for ax in axes[0]:
        ax.set_xlabel("training time (minutes)")
        ax.set_ylabel("test bits/dim")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves")
    fig.tight_layout()
    try:
        return write_atomically(out, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


def _far_apart(values: list[list[float]]) -> bool:
    """Whether some two of these curves are separated by more than twice the widest one's range."""
    if len(values) < 2:
        return False
    spans = [(min(v), max(v)) for v in values]
    widest = max(hi - lo for lo, hi in spans)
    return any(lo_b - hi_a > 2 * widest for lo_a, hi_a in spans for lo_b, hi_b in spans)


def _check_settings(out: Path, n: int, nrow: int, temperature: float, scale: int) -> None:
    for name, value in (("n", n), ("nrow", nrow), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if out.suffix.lower() != ".png":
        raise ValueError(f"out must be a .png file, got {str(out)!r}")


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog="python -m flowlib.figures", description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="draw a sample grid from this checkpoint")
    what.add_argument("--curve", nargs="+", metavar="FILE",
                      help="plot the learning curves of these training checkpoints or bench curve files")
    p.add_argument("--out", required=True, help="the .png file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--n", type=int, default=64, help="number of samples (a class-conditional model: nrow per class)")
    p.add_argument("--nrow", type=int, default=8, help="samples per row")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.curve:
        try:
            cli.output_file(args.out, force=args.force, example="curve.png")
            path = learning_curve_png(args.curve, args.out)
        except (CheckpointError, cli.UsageError, ValueError) as err:
            return cli.fail(err)
        print(f"wrote {path}")
        return 0
    try:
        _check_settings(Path(args.out), args.n, args.nrow, args.temperature, scale=2)
    except ValueError as err:
        return cli.fail(cli.option_message(err, ("n", "nrow", "temperature", "out")))
    try:
        cli.output_file(args.out, force=args.force, example="samples.png")
        path = sample_grid_png(args.checkpoint, args.out, args.n, args.nrow, args.temperature, args.seed)
    except (CheckpointError, cli.UsageError, ValueError) as err:
        return cli.fail(err)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
