"""Coupling layers with mask-based partitions (notebook 02, images in notebook 04).

A binary ``mask`` splits the input into a part that passes through unchanged
(``mask == 1``) and a part that is transformed using parameters computed from the
unchanged part by a *conditioner* network ``NN``:

* additive (NICE, Dinh et al. 2014): ``z = x + (1 - m) * t``, ``t = NN(m * x)``,
  ``log|det J| = 0``;
* affine (RealNVP, Dinh et al. 2017): ``z = m * x + (1 - m) * (x * exp(s) + t)``,
  ``[t, s_raw] = NN(m * x)``, ``log|det J| = sum_i (1 - m_i) s_i``.

Because ``z`` on the unchanged part equals ``x`` there, the Jacobian is triangular
(after sorting the features by the mask) and its log-determinant is the sum above.

The affine scale is bounded with a soft clamp ``s = b * tanh(s_raw / b)`` (default
``b = 2``, so each coupling scales a feature by at most ``e^2``): close to the identity
for small ``s_raw``, it stops one unlucky step from producing ``exp(50)`` and a NaN loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .bijection import Bijection, check_input

__all__ = ["AdditiveCoupling", "AffineCoupling", "alternating_mask", "checkerboard_mask", "channel_mask"]


def alternating_mask(features: int, parity: int = 0) -> Tensor:
    """``(D,)`` mask ``[1, 0, 1, 0, ...]`` (``parity=0``) or ``[0, 1, 0, 1, ...]``."""
    return ((torch.arange(features) + parity) % 2 == 0).float()


def checkerboard_mask(height: int, width: int, parity: int = 0) -> Tensor:
    """``(1, H, W)`` checkerboard of ones and zeros; ``parity`` swaps the colours."""
    i = torch.arange(height)[:, None]
    j = torch.arange(width)[None, :]
    return ((i + j + parity) % 2 == 0).float()[None]


def channel_mask(channels: int, parity: int = 0) -> Tensor:
    """``(C, 1, 1)`` mask keeping the first half of the channels (``parity=1``: second half)."""
    m = (torch.arange(channels) < channels // 2).float()
    if parity:
        m = 1.0 - m
    return m[:, None, None]


class _Coupling(Bijection):
    def __init__(self, mask: Tensor, conditioner: nn.Module):
        super().__init__()
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must contain only zeros and ones")
        self.register_buffer("mask", mask.float())
        self.conditioner = conditioner

    def _check(self, x: Tensor, name: str) -> None:
        check_input(x, ndim=self.mask.dim() + 1, name=name)
        m = self.mask.shape
        ok = all(ms in (1, xs) for ms, xs in zip(m, x.shape[1:])) if self.mask.dim() > 1 else m[0] == x.shape[1]
        if not ok:
            what = "features" if self.mask.dim() == 1 else "channels or size"
            raise ValueError(f"{name} has shape {tuple(x.shape)}, which does not fit this coupling's mask of shape "
                             f"{tuple(self.mask.shape)} ({what} differ)")

    def _mask(self, x: Tensor) -> Tensor:
        return self.mask.to(x.dtype)

    def _condition(self, x_fixed: Tensor, cond: Tensor | None) -> Tensor:
        # plain networks (e.g. nn.Sequential) take one argument; conditional ones also get ``cond``
        return self.conditioner(x_fixed) if cond is None else self.conditioner(x_fixed, cond)


class AdditiveCoupling(_Coupling):
    """NICE coupling ``z = x + (1 - m) * NN(m * x)``; volume preserving (log-det 0).

    ``conditioner`` maps ``(B, *shape)`` to ``(B, *shape)`` (same number of features); any
    module works, e.g. an ``nn.Sequential``. It is called with ``cond`` only when one is given.
    """

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, "x")
        m = self._mask(x)
        t = self._condition(x * m, cond) * (1 - m)
        return x + t, x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z, "z")
        m = self._mask(z)
        t = self._condition(z * m, cond) * (1 - m)
        return z - t, z.new_zeros(z.shape[0])


class AffineCoupling(_Coupling):
    """RealNVP coupling ``z = m * x + (1 - m) * (x * exp(s) + t)`` with a bounded ``s``.

    ``conditioner`` maps ``(B, C, ...)`` to ``(B, 2C, ...)``: the first ``C`` outputs are
    the shift ``t``, the last ``C`` the raw log-scale. ``scale_bound`` is ``b`` in
    ``s = b * tanh(s_raw / b)``.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, scale_bound: float = 2.0):
        super().__init__(mask, conditioner)
        self.scale_bound = float(scale_bound)

    def _params(self, x_fixed: Tensor, m: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, s_raw = self._condition(x_fixed, cond).chunk(2, dim=1)
        log_s = self.scale_bound * torch.tanh(s_raw / self.scale_bound)
        return shift * (1 - m), log_s * (1 - m)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, "x")
        m = self._mask(x)
        shift, log_s = self._params(x * m, m, cond)
        z = x * log_s.exp() + shift
        return z, log_s.flatten(1).sum(1)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z, "z")
        m = self._mask(z)
        shift, log_s = self._params(z * m, m, cond)
        x = (z - shift) * (-log_s).exp()
        return x, -log_s.flatten(1).sum(1)
