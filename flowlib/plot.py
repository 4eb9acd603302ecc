"""Pictures used across the notebooks: 2D densities, sample clouds, warped grids,
Jacobians and image grids. Each function draws on a matplotlib ``Axes`` (a new one
when ``ax`` is None) and returns it.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

__all__ = ["density_grid", "plot_density_2d", "plot_samples", "plot_warped_grid", "plot_jacobian",
           "image_grid", "show_images"]


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    return ax


def _log_prob_fn(model_or_fn) -> Callable[[Tensor], Tensor]:
    return model_or_fn.log_prob if hasattr(model_or_fn, "log_prob") else model_or_fn


@torch.no_grad()
def density_grid(model_or_fn, bounds: float | tuple[float, float, float, float] = 4.0,
                 resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``exp(log_prob)`` on a ``resolution x resolution`` grid; returns ``(X, Y, P)``."""
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
    return gx.numpy(), gy.numpy(), logp.exp().reshape(resolution, resolution).numpy()


def plot_density_2d(model_or_fn, ax=None, bounds: float | tuple = 4.0, resolution: int = 200,
                    title: str | None = None, cmap: str = "viridis"):
    """Heat map of a 2D density given a flow (anything with ``log_prob``) or a log-density function."""
    ax = _ax(ax)
    X, Y, P = density_grid(model_or_fn, bounds, resolution)
    ax.pcolormesh(X, Y, P, cmap=cmap, shading="auto")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


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


def plot_jacobian(jac: Tensor, ax=None, title: str | None = None, cmap: str = "RdBu_r"):
    """Show a Jacobian matrix ``(D, D)`` with a symmetric colour scale; exact zeros stay white."""
    ax = _ax(ax)
    j = torch.as_tensor(jac).detach().cpu().double()
    vmax = max(j.abs().max().item(), 1e-12)
    im = ax.imshow(j.numpy(), cmap=cmap, vmin=-vmax, vmax=vmax)
    ax.set_xlabel("input index $j$")
    ax.set_ylabel("output index $i$")
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
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
