"""A normalizing flow: a bijection on top of a base distribution (notebook 01).

``log p_x(x) = log p_z(f(x)) + log|det df/dx|``, where ``f`` is the bijection's forward
(data -> latent) and ``p_z`` the base distribution.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .bijection import Bijection
from .distributions import StandardNormal

__all__ = ["Flow", "bits_per_dim"]


def bits_per_dim(log_prob: Tensor, num_dims: int) -> Tensor:
    """Convert a log-likelihood in nats per example to bits per dimension.

    ``bpd = -log p(x) / (D * ln 2)``. For 8-bit images use the dequantized
    likelihood from :mod:`flowlib.layers.dequantize`, which already contains the 256-bin term.
    """
    return -log_prob / (num_dims * math.log(2))


class Flow(nn.Module):
    """Density model ``p_x`` defined by a bijection ``f`` and a base distribution ``p_z``.

    Args:
        bijection: data -> latent map.
        base: base distribution with ``log_prob(z)`` and ``sample(n)``; defaults to a
            standard normal with ``event_shape``.
        event_shape: shape of one data point, e.g. ``(2,)``; needed for the default base. When
            the bijection reshapes (a squeeze), give the base with the latent shape and
            ``event_shape`` with the data shape.
    """

    def __init__(self, bijection: Bijection, base: nn.Module | None = None, event_shape: tuple[int, ...] | None = None):
        super().__init__()
        if base is None:
            if event_shape is None:
                raise ValueError("give either a base distribution or the event_shape of one data point")
            base = StandardNormal(*event_shape)
        self.bijection = bijection
        self.base = base
        self._event_shape = tuple(event_shape) if event_shape is not None else tuple(base.event_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one data point."""
        return self._event_shape

    def _check(self, x: Tensor) -> None:
        from .bijection import check_input

        check_input(x, ndim=1 + len(self.event_shape))
        if tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x -> (z, logdet)`` through the bijection."""
        self._check(x)
        return self.bijection(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p_x(x)``, shape ``(B,)``."""
        z, logdet = self.forward(x)
        return self.base.log_prob(z) + logdet

    def bits_per_dim(self, x: Tensor) -> Tensor:
        """``-log p_x(x) / (D ln 2)`` per example, shape ``(B,)``."""
        return bits_per_dim(self.log_prob(x), int(math.prod(self.event_shape)))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples ``x = f^{-1}(z)``, ``z ~ p_z`` (scaled by ``temperature``)."""
        z = self.base.sample(n, temperature=temperature, generator=generator)
        x, _ = self.bijection.inverse(z)
        return x

    def sample_with_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        """Samples and their log-density, using the inverse's log-det."""
        z = self.base.sample(n)
        x, logdet_inv = self.bijection.inverse(z)
        return x, self.base.log_prob(z) - logdet_inv
