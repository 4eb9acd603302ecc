"""Notebook 05's exercises: a channel-shift layer and a median ActNorm, reference answers and checks
(see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.bijection import Bijection
from ..core.testing import check_bijection
from ..layers.actnorm import ActNorm
from ..layers.invconv import InvConv1x1LU
from .runner import _compare, run_check

__all__ = ["ChannelShiftReference", "ActNormMedianReference", "check_channel_shift", "check_actnorm_median"]



class ChannelShiftReference(Bijection):
    """Notebook 05, exercise 1: ``z[:, c] = x[:, (c - shift) mod C]`` (``torch.roll`` on the channels); log-det 0."""

    def __init__(self, shift: int = 1):
        super().__init__()
        self.shift = shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.roll(x, self.shift, dims=1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return torch.roll(z, -self.shift, dims=1), z.new_zeros(z.shape[0])


class ActNormMedianReference(ActNorm):
    """Notebook 05, exercise 2: ActNorm whose first batch leaves per-channel median 0 and MAD 1.

    ``bias = -median_c``, ``log_scale = -log(MAD_c + eps)``; the map and log-det are ActNorm's.
    """

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        flat = x.transpose(0, 1).reshape(self.channels, -1)  # (C, everything else); works for (B, C) and images
        median = flat.median(dim=1).values
        mad = (flat - median[:, None]).abs().median(dim=1).values
        self.bias.copy_(-median)
        self.log_scale.copy_(-torch.log(mad + self.eps))
        self.initialized.fill_(True)


def _rounded(t: Tensor) -> list[float]:
    return [round(v, 4) for v in t.tolist()]


def check_channel_shift(layer_cls: type[Bijection]) -> bool:
    """Notebook 05, exercise 1: ``layer_cls(shift)`` rolls channels like ``torch.roll``, both ways, for two shifts."""

    def check():
        x = torch.randn(2, 4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        for shift in (1, 3):
            layer = layer_cls(shift=shift)
            z, ld = layer(x)
            _compare(f"forward(x)[0] with shift = {shift}", z, torch.roll(x, shift, dims=1), tol=0.0)
            _compare(f"the forward log-det with shift = {shift}", ld, x.new_zeros(2), tol=0.0)
            x_back, _ = layer.inverse(torch.roll(x, shift, dims=1))
            _compare(f"inverse(z)[0] with shift = {shift}", x_back, x, tol=0.0)
        as_conv = InvConv1x1LU(4, weight=torch.roll(torch.eye(4), 1, dims=0)).double()
        _compare("forward(x)[0] against the 1x1 convolution with the shift's permutation matrix",
                 layer_cls(shift=1)(x)[0], as_conv(x)[0], tol=1e-12)
        return check_bijection(layer_cls(shift=1), x[:1])

    return run_check("Exercise 1", check, "ChannelShift")


def check_actnorm_median(layer_cls: type[ActNorm]) -> bool:
    """Notebook 05, exercise 2: the first batch comes out with per-channel median 0 and MAD 1; the flag is saved."""

    def check():
        gen = torch.Generator().manual_seed(2)
        # skewed, heavy-tailed channels: their mean and median, std and MAD differ clearly
        x = torch.randn(64, 3, 4, 4, generator=gen) ** 3 * torch.tensor([0.5, 2.0, 8.0]).view(1, 3, 1, 1) + 1
        layer = layer_cls(3)
        with torch.no_grad():
            z, _ = layer(x)
        if not bool(layer.initialized):
            raise AssertionError("the initialized flag is still False after the first batch")
        flat = z.transpose(0, 1).reshape(3, -1)
        median = flat.median(dim=1).values
        mad = (flat - median[:, None]).abs().median(dim=1).values
        if not torch.allclose(median, torch.zeros(3), atol=1e-5):
            raise AssertionError(f"per-channel median after the first batch is {_rounded(median)}, expected 0")
        if not torch.allclose(mad, torch.ones(3), atol=1e-4):
            raise AssertionError(f"per-channel MAD after the first batch is {_rounded(mad)}, expected 1")
        loaded = layer_cls(3)
        loaded.load_state_dict(layer.state_dict())
        with torch.no_grad():
            loaded(100 * x)
        if not (torch.equal(loaded.bias, layer.bias) and torch.equal(loaded.log_scale, layer.log_scale)):
            raise AssertionError("a layer loaded from a state_dict re-initialised on its first batch")
        return check_bijection(layer, x[:2])

    return run_check("Exercise 2", check, "ActNormMedian.initialize")
