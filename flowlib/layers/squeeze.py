"""Squeeze and split: the two moves of a multi-scale flow (notebook 04).

``Squeeze`` trades space for channels (2x2 space-to-depth, RealNVP, Dinh et al. 2017).
A multi-scale model then factors out half of the channels after some steps: those
"split" latents are scored by their own prior and skip the rest of the network.
``SplitPrior`` is the learned conditional Gaussian prior of Glow (Kingma & Dhariwal
2018, sec. 3.3 "split"): the factored-out half ``z_2`` gets mean and log-std computed
from the kept half ``z_1``; writing it as a bijection that standardises ``z_2`` keeps
every latent standard normal, which is what interpolation and temperature need.

A conditional model (notebook 08) also feeds the condition to these priors: ``SplitPrior``
with ``cond_channels > 0``, and :class:`ConditionalPrior` for the last, coarsest latent
(Glow's class-conditional prior: a mean and scale that depend on the class).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.bijection import Bijection, check_input
from .nets import broadcast_cond, zero_init

__all__ = ["Squeeze", "SplitPrior", "ConditionalPrior", "split", "merge"]


class Squeeze(Bijection):
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: each 2x2 patch becomes 4 channels; log-det 0.

    Channel ``4c + 2i + j`` of the output holds pixel ``(i, j)`` of each 2x2 patch of input
    channel ``c``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=4)
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs an even height and width, got {h}x{w} (shape {tuple(x.shape)})")
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, x.new_zeros(b)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=4, name="z")
        b, c, h, w = z.shape
        if c % 4:
            raise ValueError(f"Squeeze.inverse needs a multiple of 4 channels, got {c}")
        x = z.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)
        return x, z.new_zeros(b)


def split(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, C, H, W) -> (B, C/2, H, W), (B, C/2, H, W)``: kept half, factored-out half."""
    c = x.shape[1]
    if c % 2:
        raise ValueError(f"split needs an even number of channels, got {c}")
    return x[:, : c // 2], x[:, c // 2:]


def merge(x_keep: Tensor, z_out: Tensor) -> Tensor:
    """Inverse of :func:`split`."""
    return torch.cat([x_keep, z_out], dim=1)


class SplitPrior(Bijection):
    r"""Glow's learned prior for a split, as a bijection on the whole tensor.

    With ``[x_1, x_2] = split(x)`` and ``[mu, log_sigma] = conv(x_1)`` (zero-initialised 3x3 conv):

    ``forward: [x_1, x_2] -> [x_1, (x_2 - mu) * exp(-log_sigma)]``, ``log|det J| = -sum log_sigma``.

    Scoring the standardised half under ``N(0, I)`` equals scoring ``x_2`` under
    ``N(mu, sigma^2)``. At initialisation ``mu = 0, sigma = 1``: a standard normal prior.
    With ``cond_channels = E > 0`` the conv sees ``[x_1, c]`` for a condition ``c: (B, E)``
    or ``(B, E, H, W)``, passed as ``forward(x, cond)`` and ``inverse(z, cond)``.
    """

    takes_cond = True

    def __init__(self, channels: int, cond_channels: int = 0):
        super().__init__()
        if channels % 2:
            raise ValueError(f"SplitPrior needs an even number of channels, got {channels}")
        self.channels = channels
        self.cond_channels = cond_channels
        self.conv = zero_init(nn.Conv2d(channels // 2 + cond_channels, channels, 3, padding=1))

    def _params(self, x_keep: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.cond_channels:
            if cond is None:
                raise ValueError("this SplitPrior was built with cond_channels > 0 and needs cond")
            x_keep = torch.cat([x_keep, broadcast_cond(cond, x_keep)], dim=1)
        mu, log_sigma = self.conv(x_keep).chunk(2, dim=1)
        return mu, log_sigma

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=4, channels=self.channels)
        x_keep, x_out = split(x)
        mu, log_sigma = self._params(x_keep, cond)
        eps = (x_out - mu) * (-log_sigma).exp()
        return merge(x_keep, eps), -log_sigma.flatten(1).sum(1)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=4, name="z", channels=self.channels)
        x_keep, eps = split(z)
        mu, log_sigma = self._params(x_keep, cond)
        return merge(x_keep, eps * log_sigma.exp() + mu), log_sigma.flatten(1).sum(1)


class ConditionalPrior(Bijection):
    r"""A Gaussian prior ``N(mu(c), sigma(c)^2)`` that depends on a condition, as a bijection (notebook 08).

    ``[mu, log_sigma] = conv(c)`` (zero-initialised 3x3 conv of the condition ``c: (B, E)``,
    broadcast over the pixels, or ``(B, E, H, W)``);
    ``forward: x -> (x - mu) * exp(-log_sigma)``, ``log|det J| = -sum log_sigma``.

    Scoring the result under ``N(0, I)`` scores ``x`` under ``N(mu(c), sigma(c)^2)``: for a
    class label ``c`` this is Glow's class-conditional prior on the top latent (Kingma &
    Dhariwal 2018, sec. 5). It starts as the identity (a standard normal prior).
    """

    takes_cond = True

    def __init__(self, channels: int, cond_channels: int):
        super().__init__()
        self.channels = channels
        self.conv = zero_init(nn.Conv2d(cond_channels, 2 * channels, 3, padding=1))

    def _params(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        if cond is None:
            raise ValueError("ConditionalPrior needs cond: call forward(x, cond) / inverse(z, cond)")
        mu, log_sigma = self.conv(broadcast_cond(cond, x)).chunk(2, dim=1)
        return mu, log_sigma

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=4, channels=self.channels)
        mu, log_sigma = self._params(x, cond)
        return (x - mu) * (-log_sigma).exp(), -log_sigma.flatten(1).sum(1)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=4, name="z", channels=self.channels)
        mu, log_sigma = self._params(z, cond)
        return z * log_sigma.exp() + mu, log_sigma.flatten(1).sum(1)
