"""Elementwise bijections (notebook 01).

``ElementwiseAffine``: ``z = x * exp(log_scale) + shift`` per feature,
``log|det J| = sum_i log_scale_i``. The Jacobian is diagonal.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.bijection import Bijection, check_input

__all__ = ["ElementwiseAffine", "Tanh"]


class ElementwiseAffine(Bijection):
    """Learned per-feature affine map for vectors ``x: (B, D)``, starting at the identity."""

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        self.shift = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=2, features=self.features)
        z = x * self.log_scale.exp() + self.shift
        return z, self.log_scale.sum().expand(x.shape[0]).to(x.dtype)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=2, name="z", features=self.features)
        x = (z - self.shift) * (-self.log_scale).exp()
        return x, (-self.log_scale.sum()).expand(z.shape[0]).to(z.dtype)


class Tanh(Bijection):
    """``z = tanh(x)`` elementwise, onto (-1, 1); ``log|det J| = sum log(1 - tanh(x)^2)``.

    Used in notebook 01 as a simple non-linear warp. Its inverse needs ``|z| < 1``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=2)
        z = torch.tanh(x)
        # log(1 - tanh^2 x) = 2 (log 2 - x - softplus(-2x)), stable for large |x|
        ld = 2.0 * (torch.log(torch.tensor(2.0, dtype=x.dtype)) - x - nn.functional.softplus(-2.0 * x))
        return z, ld.sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=2, name="z")
        if (z.abs() >= 1).any():
            raise ValueError("Tanh.inverse needs every |z| < 1")
        x = torch.atanh(z)
        return x, -torch.log1p(-z.pow(2)).sum(1)
