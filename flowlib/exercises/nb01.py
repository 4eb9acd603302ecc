"""Notebook 01's exercise: a leaky-ReLU bijection, its reference answer and automatic check.

Wrong answers that ``check_bijection`` alone would let through, the identity map and ``alpha`` swapped with
``1 / alpha``, are rejected (see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.bijection import Bijection
from ..core.testing import check_bijection
from .runner import _compare_bijections, run_check

__all__ = ["LeakyReLUReference", "check_leaky_relu"]



class LeakyReLUReference(Bijection):
    """Notebook 01, exercise 1: ``z = x`` where ``x >= 0``, ``z = alpha * x`` where ``x < 0``.

    Elementwise on ``x: (B, D)``; ``log|det dz/dx| = log(alpha) * #{i : x_i < 0}``.
    """

    def __init__(self, alpha: float = 0.3):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        negative = x < 0
        return torch.where(negative, self.alpha * x, x), negative.to(x.dtype).sum(1) * math.log(self.alpha)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        negative = z < 0  # alpha > 0 keeps the sign, so z < 0 exactly where x < 0
        return torch.where(negative, z / self.alpha, z), -negative.to(z.dtype).sum(1) * math.log(self.alpha)


def check_leaky_relu(cls: type[Bijection]) -> bool:
    """Notebook 01, exercise 1: ``cls(alpha)`` must be the leaky ReLU, with its log-det, both ways.

    Compared with :class:`LeakyReLUReference` for ``alpha = 0.3`` and ``alpha = 2.5`` (so a hard-coded
    or inverted alpha fails), then ``check_bijection``.
    """

    def check():
        x = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        for alpha in (0.3, 2.5):
            _compare_bijections(cls(alpha=alpha), LeakyReLUReference(alpha), x, f"alpha = {alpha}")
        return check_bijection(cls(alpha=0.3), x)

    return run_check("Exercise 1", check, "the class")
