"""Two-dimensional toy datasets, made locally from a seed (notebooks 01-02).

Every function returns a float32 tensor of shape ``(n, 2)``, roughly standardised
(most mass within ``[-4, 4]^2``), and the same seed always gives the same points.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TOY_DATASETS", "make_toy", "moons", "rings", "checkerboard", "eight_gaussians", "spirals"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def moons(n: int, seed: int = 0, noise: float = 0.1) -> Tensor:
    """Two interleaving half circles."""
    g = _gen(seed)
    half = n // 2
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.stack([torch.cos(t[:half]), torch.sin(t[:half])], 1)
    lower = torch.stack([1 - torch.cos(t[half:]), 0.5 - torch.sin(t[half:])], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=g)
    x = (x - torch.tensor([0.5, 0.25])) * 2.0
    return x[torch.randperm(n, generator=g)]


def rings(n: int, seed: int = 0, noise: float = 0.08) -> Tensor:
    """Three concentric rings with radii 1, 2 and 3, points spread in proportion to circumference."""
    g = _gen(seed)
    radii = torch.tensor([1.0, 2.0, 3.0])
    which = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=g)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    r = radii[which] + noise * torch.randn(n, generator=g)
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)


def checkerboard(n: int, seed: int = 0) -> Tensor:
    """Uniform on the black squares of a 4x4 board covering ``[-4, 4]^2``."""
    g = _gen(seed)
    x1 = torch.rand(n, generator=g) * 8 - 4
    row = torch.randint(0, 2, (n,), generator=g) * 2  # 0 or 2
    # choose the column band in [-4,-2],[0,2] shifted by the row of x1 so squares alternate
    x2 = torch.rand(n, generator=g) * 2 - 4 + row * 2 + ((torch.floor(x1 / 2) % 2) * 2)
    return torch.stack([x1, x2], 1)


def eight_gaussians(n: int, seed: int = 0, radius: float = 3.0, std: float = 0.3) -> Tensor:
    """Eight Gaussians on a circle."""
    g = _gen(seed)
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.float() * (2 * math.pi / 8)
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return centres + std * torch.randn(n, 2, generator=g)


def spirals(n: int, seed: int = 0, noise: float = 0.1) -> Tensor:
    """Two interleaved spirals."""
    g = _gen(seed)
    t = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi
    sign = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    r = t / math.pi * 1.2
    x = sign[:, None] * torch.stack([r * torch.cos(t), r * torch.sin(t)], 1)
    return x + noise * torch.randn(n, 2, generator=g)


TOY_DATASETS = {
    "moons": moons,
    "rings": rings,
    "checkerboard": checkerboard,
    "eight_gaussians": eight_gaussians,
    "spirals": spirals,
}


def make_toy(name: str, n: int, seed: int = 0) -> Tensor:
    """Sample ``n`` points of the toy set ``name`` (one of ``TOY_DATASETS``)."""
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {sorted(TOY_DATASETS)}")
    if n < 1:
        raise ValueError(f"n must be a positive number of points, got {n}")
    return TOY_DATASETS[name](n, seed=seed)
