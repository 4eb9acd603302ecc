"""Pictures used across the notebooks: 2D densities, sample clouds, warped grids,
Jacobians and image grids (introduced in notebooks 01 and 02). Each ``plot_*`` function
draws on a matplotlib ``Axes`` (a new one when ``ax`` is None) and returns it.
``use_course_style`` gives every notebook the same figure style.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

__all__ = ["COURSE_STYLE", "use_course_style", "figure_png", "log_density_grid", "density_grid", "plot_density_2d",
           "plot_densities_2d", "plot_samples", "plot_warped_grid", "plot_jacobian", "image_grid", "show_images"]

# One look for every figure of the course: 100 dpi, and fonts that stay readable at that size.
COURSE_STYLE: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 11.5,
    "image.cmap": "viridis",
}

DENSITY_LABEL = "density $p(x)$ (per unit area)"
LOG_DENSITY_LABEL = r"$\log p(x)$ (nats)"


def use_course_style() -> None:
    """Apply :data:`COURSE_STYLE` to matplotlib's ``rcParams``; call it once at the top of a notebook."""
    plt.rcParams.update(COURSE_STYLE)


def figure_png(fig) -> bytes:
    """The PNG bytes of a matplotlib figure, e.g. for an ``ipywidgets.Image`` that a slider redraws."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    return ax


def _log_prob_fn(model_or_fn) -> Callable[[Tensor], Tensor]:
    return model_or_fn.log_prob if hasattr(model_or_fn, "log_prob") else model_or_fn


@torch.no_grad()
def log_density_grid(model_or_fn, bounds: float | tuple[float, float, float, float] = 4.0,
                     resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``log_prob`` on a ``resolution x resolution`` grid; returns ``(X, Y, log P)``."""
    if isinstance(bounds, (int, float)):
        bounds = (-bounds, bounds, -bounds, bounds)
    x0, x1, y0, y1 = bounds
    xs = torch.linspace(x0, x1, resolution)
    ys = torch.linspace(y0, y1, resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    fn = _log_prob_fn(model_or_fn)
    param = next(iter(getattr(model_or_fn, "parameters", lambda: iter(()))()), None)
    if param is not None:
        pts = pts.to(param.device, param.dtype)
    logp = torch.cat([fn(chunk) for chunk in pts.split(8192)]).float().cpu()
    return gx.numpy(), gy.numpy(), logp.reshape(resolution, resolution).numpy()


def density_grid(model_or_fn, bounds: float | tuple[float, float, float, float] = 4.0,
                 resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``exp(log_prob)`` on a ``resolution x resolution`` grid; returns ``(X, Y, P)``."""
    X, Y, logp = log_density_grid(model_or_fn, bounds, resolution)
    return X, Y, np.exp(logp)


def _draw_density(ax, X: np.ndarray, Y: np.ndarray, V: np.ndarray, vmin: float | None, vmax: float | None,
                  cmap: str, ticks: bool):
    # the grid is regular: an image is drawn much faster than a mesh of quadrilaterals (sliders redraw it)
    dx, dy = (X[0, -1] - X[0, 0]) / (X.shape[1] - 1), (Y[-1, 0] - Y[0, 0]) / (Y.shape[0] - 1)
    extent = (X[0, 0] - dx / 2, X[0, -1] + dx / 2, Y[0, 0] - dy / 2, Y[-1, 0] + dy / 2)
    mesh = ax.imshow(V, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", extent=extent, interpolation="nearest")
    ax.set_aspect("equal")
    if ticks:
        ax.set_xlabel("$x_0$")
        ax.set_ylabel("$x_1$")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return mesh


def plot_density_2d(model_or_fn, ax=None, bounds: float | tuple = 4.0, resolution: int = 200,
                    title: str | None = None, cmap: str = "viridis", *, log: bool = False,
                    vmin: float | None = None, vmax: float | None = None, colorbar: bool = False,
                    ticks: bool = True, floor: float = 10.0):
    """Heat map of a 2D density given a flow (anything with ``log_prob``) or a log-density function.

    ``log=True`` colours by ``log p`` in nats, clipped ``floor`` nats below its maximum unless
    ``vmin`` is given. ``vmin``/``vmax`` fix the colour range (to compare several panels by
    colour, give them one range, or use :func:`plot_densities_2d`); ``colorbar`` adds a
    labelled colour bar; ``ticks=False`` draws a bare panel without axes labels.
    """
    ax = _ax(ax)
    if log:
        X, Y, V = log_density_grid(model_or_fn, bounds, resolution)
        vmax = float(V.max()) if vmax is None else vmax
        vmin = vmax - floor if vmin is None else vmin
    else:
        X, Y, V = density_grid(model_or_fn, bounds, resolution)
    mesh = _draw_density(ax, X, Y, V, vmin, vmax, cmap, ticks)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label=LOG_DENSITY_LABEL if log else DENSITY_LABEL)
    if title:
        ax.set_title(title)
    return ax


def plot_densities_2d(models: Sequence, axes: Sequence, titles: Sequence[str | None] | None = None,
                      bounds: float | tuple = 4.0, resolution: int = 200, *, log: bool = False, floor: float = 10.0,
                      cmap: str = "viridis", colorbar: bool = True, ticks: bool = True):
    """Several 2D densities on one shared colour scale, with one colour bar for all panels.

    Equal colours mean equal densities, so a flow that stayed near its N(0, I) start looks as dim as it
    is next to a sharp trained one. ``log=True`` shows ``log p`` in nats from the largest value over all
    panels down to ``floor`` nats below it. Returns the colour bar (or None).
    """
    grid = log_density_grid if log else density_grid
    values = [grid(m, bounds, resolution) for m in models]
    vmax = max(float(V.max()) for *_, V in values)
    vmin = vmax - floor if log else 0.0
    titles = list(titles) if titles is not None else [None] * len(values)
    mesh = None
    for ax, (X, Y, V), title in zip(axes, values, titles):
        mesh = _draw_density(ax, X, Y, V, vmin, vmax, cmap, ticks)
        if title:
            ax.set_title(title)
    if not colorbar or mesh is None:
        return None
    axes = list(axes)
    return axes[0].figure.colorbar(mesh, ax=axes, fraction=0.046 / len(axes), pad=0.02,
                                   label=LOG_DENSITY_LABEL if log else DENSITY_LABEL)


def plot_samples(x: Tensor, ax=None, bounds: float | None = 4.0, title: str | None = None, s: float = 2.0,
                 alpha: float = 0.5, color: str = "C0"):
    """Scatter plot of 2D points ``x: (N, 2)``."""
    ax = _ax(ax)
    x = torch.as_tensor(x).detach().cpu()
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, linewidths=0)
    if bounds is not None:
        ax.set_xlim(-bounds, bounds)
        ax.set_ylim(-bounds, bounds)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_0$")
    ax.set_ylabel("$x_1$")
    if title:
        ax.set_title(title)
    return ax


@torch.no_grad()
def plot_warped_grid(fn: Callable[[Tensor], Tensor], ax=None, bounds: float = 3.0, lines: int = 21,
                     points: int = 200, title: str | None = None, color: str = "k"):
    """Draw the image of a square grid under ``fn`` (a map of ``(N, 2)`` points).

    For a bijection pass ``lambda v: layer(v)[0]`` (forward) or ``lambda v: layer.inverse(v)[0]``.
    """
    ax = _ax(ax)
    t = torch.linspace(-bounds, bounds, points)
    for c in torch.linspace(-bounds, bounds, lines):
        for pts in (torch.stack([t, torch.full_like(t, c)], 1), torch.stack([torch.full_like(t, c), t], 1)):
            out = fn(pts).cpu()
            ax.plot(out[:, 0], out[:, 1], color=color, lw=0.6)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_jacobian(jac: Tensor, ax=None, title: str | None = None, cmap: str = "RdBu_r", *, symlog: bool = False,
                  linthresh: float | None = None, mark_zeros: bool = False, blocks: Sequence[int] = (),
                  labels: Sequence | None = None, colorbar_label: str | None = None):
    """Show a Jacobian matrix ``(D, D)`` with a symmetric colour scale (entries near 0 are white).

    ``symlog=True`` uses a symmetric log scale, linear within ``linthresh`` (default: a thousandth
    of the largest entry), so that one large entry does not wash out all the others.
    ``mark_zeros`` paints entries that are exactly zero grey and hatched, with a legend.
    ``blocks`` lists indices where a block starts; lines are drawn there. ``labels`` names the
    rows and columns (e.g. the feature order after sorting).
    """
    ax = _ax(ax)
    j = torch.as_tensor(jac).detach().cpu().double().numpy()
    vmax = max(float(np.abs(j).max()), 1e-12)
    if symlog:
        linthresh = linthresh or vmax * 1e-3
        norm = SymLogNorm(linthresh=linthresh, vmin=-vmax, vmax=vmax, base=10)
    else:
        norm = Normalize(vmin=-vmax, vmax=vmax)
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.72")
    zeros = j == 0
    shown = np.ma.masked_where(zeros, j) if mark_zeros else j
    im = ax.imshow(shown, cmap=colours, norm=norm)
    if mark_zeros:
        for r, c in zip(*np.nonzero(zeros)):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.35", lw=0))
        ax.legend(handles=[Patch(facecolor="0.72", edgecolor="0.35", hatch="///", label="exactly 0")],
                  loc="upper right", bbox_to_anchor=(1.0, -0.13), frameon=False, handlelength=1.2)
    for b in blocks:
        ax.axhline(b - 0.5, color="k", lw=1.5)
        ax.axvline(b - 0.5, color="k", lw=1.5)
    if labels is not None:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels])
        ax.set_yticks(range(len(labels)), [str(v) for v in labels])
    ax.set_xlabel("input index $j$")
    ax.set_ylabel("output index $i$")
    cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=colorbar_label)
    if symlog:  # ticks at whole decades above the linear range, and 0; the default ones crowd around 0
        decades = [10.0**k for k in range(math.floor(math.log10(linthresh)) + 1, math.floor(math.log10(vmax)) + 1)]
        cbar.set_ticks([-d for d in reversed(decades)] + [0.0] + decades)
    if title:
        ax.set_title(title)
    return ax


def image_grid(images: Tensor, nrow: int = 8, pad: int = 1, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Tile ``images: (N, C, H, W)`` into one ``(rows*H, nrow*W[, C])`` array in ``[0, 1]``.

    uint8 images are divided by 255; float images are clipped to ``value_range`` (default
    ``(0, 1)``) and rescaled.
    """
    x = torch.as_tensor(images).detach().cpu()
    if x.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        lo, hi = value_range or (0.0, 1.0)
        x = ((x.float() - lo) / (hi - lo)).clamp(0, 1)
    n, c, h, w = x.shape
    nrow = min(nrow, n)
    rows = (n + nrow - 1) // nrow
    out = torch.ones(c, rows * (h + pad) - pad, nrow * (w + pad) - pad)
    for k in range(n):
        r, col = divmod(k, nrow)
        out[:, r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = x[k]
    arr = out.permute(1, 2, 0).numpy()
    return arr[..., 0] if c == 1 else arr


def show_images(images: Tensor, nrow: int = 8, ax=None, title: str | None = None,
                value_range: tuple[float, float] | None = None):
    """Display a grid of images (see :func:`image_grid`)."""
    if ax is None:
        n = images.shape[0]
        cols = min(nrow, n)
        rows = (n + cols - 1) // cols
        _, ax = plt.subplots(figsize=(max(2, cols * 0.6), max(1.5, rows * 0.6)))
    grid = image_grid(images, nrow=nrow, value_range=value_range)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
