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
With ``learn_bound=True`` the bound is a learned per-channel ``b = exp(log_b)``, started at
``scale_bound``: the data decide how far each channel may be stretched.

Masks are the clearest way to *explain* a coupling, but for a channel split they waste
work: half of the conditioner's input is zeros and half of its output is thrown away.
:class:`ChannelAffineCoupling` computes the same map by slicing the channels instead
(notebook 06 compares the two).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.bijection import Bijection, check_input

__all__ = ["AdditiveCoupling", "AffineCoupling", "ChannelAffineCoupling", "alternating_mask", "checkerboard_mask",
           "channel_mask"]


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
    takes_cond = True

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


class _ElementwiseChannelCoupling(Bijection):
    """A channel-split coupling whose ``_transform(v, cond, inverse)`` returns the output and the log-det of
    each transformed element, ``(B, C - C_a, H, W)``: the spline and logistic-mixture couplings."""

    takes_cond = True

    def _transform(self, v: Tensor, cond: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def local_logdet(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``log|det J|`` of ``forward`` summed over channels at each position, ``(B, H, W)`` (notebook 09's bits map)."""
        return self._transform(x, cond, inverse=False)[1].sum(1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ld = self._transform(x, cond, inverse=False)
        return z, ld.flatten(1).sum(1)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, ld = self._transform(z, cond, inverse=True)
        return x, ld.flatten(1).sum(1)


class _ScaleBound(nn.Module):
    """The soft clamp ``s = b * tanh(s_raw / b)``, with a fixed or learned per-channel bound ``b``."""

    def __init__(self, scale_bound: float, learn: bool, channels: int, ndim: int):
        # ndim: dimensions of one example, e.g. 3 for (C, H, W); the bound has shape (C, 1, 1)
        super().__init__()
        if scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        self.scale_bound = float(scale_bound)
        if learn:  # one bound per channel/feature, broadcast over space
            self.log_bound = nn.Parameter(torch.full((channels,) + (1,) * (ndim - 1), math.log(scale_bound)))
        else:
            self.log_bound = None

    def forward(self, s_raw: Tensor) -> Tensor:
        if self.log_bound is None:
            return self.scale_bound * torch.tanh(s_raw / self.scale_bound)
        b = self.log_bound.exp().to(s_raw.dtype)
        return b * torch.tanh(s_raw / b)


class AffineCoupling(_Coupling):
    """RealNVP coupling ``z = m * x + (1 - m) * (x * exp(s) + t)`` with a bounded ``s``.

    ``conditioner`` maps ``(B, C, ...)`` to ``(B, 2C, ...)``: the first ``C`` outputs are
    the shift ``t``, the last ``C`` the raw log-scale. ``scale_bound`` is ``b`` in
    ``s = b * tanh(s_raw / b)``; ``learn_bound=True`` learns ``b`` per channel.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, scale_bound: float = 2.0, learn_bound: bool = False):
        super().__init__(mask, conditioner)
        self.scale_bound = float(scale_bound)
        self.bound = _ScaleBound(scale_bound, learn_bound, self.mask.shape[0], self.mask.dim())

    def _params(self, x_fixed: Tensor, m: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, s_raw = self._condition(x_fixed, cond).chunk(2, dim=1)
        log_s = self.bound(s_raw)
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


class ChannelAffineCoupling(Bijection):
    """Affine coupling over a channel split, computed by slicing instead of masking.

    With ``[x_a, x_b]`` the first and second halves of the channels (``C_a = C // 2``):
    ``z_a = x_a``, ``z_b = x_b * exp(s) + t`` with ``[t, s_raw] = NN(x_a)``, and
    ``log|det J| = sum s``. The same map as ``AffineCoupling(channel_mask(C), ...)``, but the
    conditioner maps ``(B, C_a, H, W)`` to ``(B, 2 (C - C_a), H, W)``: no zero inputs, no
    discarded outputs.
    """

    takes_cond = True

    def __init__(self, channels: int, conditioner: nn.Module, scale_bound: float = 2.0, learn_bound: bool = False):
        super().__init__()
        if channels < 2:
            raise ValueError(f"ChannelAffineCoupling needs at least 2 channels, got {channels}")
        self.channels = channels
        self.split_at = channels // 2
        self.conditioner = conditioner
        self.bound = _ScaleBound(scale_bound, learn_bound, channels - self.split_at, 3)

    def _params(self, x_a: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self.conditioner(x_a) if cond is None else self.conditioner(x_a, cond)
        shift, s_raw = out.chunk(2, dim=1)
        return shift, self.bound(s_raw)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=4, channels=self.channels)
        x_a, x_b = x[:, : self.split_at], x[:, self.split_at:]
        shift, log_s = self._params(x_a, cond)
        return torch.cat([x_a, x_b * log_s.exp() + shift], dim=1), log_s.flatten(1).sum(1)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=4, name="z", channels=self.channels)
        z_a, z_b = z[:, : self.split_at], z[:, self.split_at:]
        shift, log_s = self._params(z_a, cond)
        return torch.cat([z_a, (z_b - shift) * (-log_s).exp()], dim=1), -log_s.flatten(1).sum(1)
