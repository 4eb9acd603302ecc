r"""Dequantization of 8-bit images and the logit pre-processing (notebook 03).

A flow is a *continuous* density, but pixels are integers ``x in {0, ..., 255}^D``.
Fitting a density to integers lets it put infinite mass on them: the likelihood runs
away. Dequantization adds noise ``u in [0, 1)^D`` and models ``v = x + u`` instead.

Bits per dimension, derived. Let ``p`` be the flow's density on ``v``. The probability
of the integer image is the mass of its unit bin, and Jensen's inequality with any
noise distribution ``q(u | x)`` on the bin gives

.. math::
    \log P(x) = \log \int_{[0,1)^D} p(x + u)\, du
              = \log \mathbb{E}_{q(u|x)}\Big[\frac{p(x+u)}{q(u|x)}\Big]
              \ge \mathbb{E}_{q(u|x)}\big[\log p(x + u) - \log q(u|x)\big].

Uniform dequantization is ``q = 1`` on the bin (the last term vanishes); variational
dequantization learns ``q`` (Flow++, Ho et al. 2019) and tightens the bound.

The flow sees ``y = v / 256 in [0, 1)`` after a logit, so with ``z = logit(y)``

.. math::
    \log p(v) = \log p_y(y) - D \log 256, \qquad \log p_y(y) = \log p_z(z) + \log|\det \partial z/\partial y|.

The ``-D log 256`` is the 256-bin term: forgetting it reports bits/dim that are off by
exactly 8. ``Dequantization.forward`` returns ``z`` and a log-det that already contains
``-D log 256``, the logit's log-det and ``-log q(u|x)``, so that

``bpd = -(log p_z(z) + logdet) / (D ln 2)``

is an upper bound on the true discrete bits per dimension (in expectation over ``u``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.bijection import Bijection, check_input
from .coupling import AffineCoupling, checkerboard_mask
from .nets import GatedResNet

__all__ = ["Logit", "UniformDequantization", "VariationalDequantization", "quantize", "check_pixels"]


def check_pixels(x: Tensor, num_bins: int = 256) -> None:
    """Raise a clear error unless ``x: (B, C, H, W)`` holds integers in ``[0, num_bins)``."""
    check_input(x, ndim=4)
    if x.shape[0] == 0:  # also guards ActNorm's data-dependent initialisation from an empty batch
        raise ValueError(f"got an empty batch of shape {tuple(x.shape)}; pass at least one image")
    if x.is_floating_point():
        if not torch.equal(x, x.floor()):
            raise ValueError("expected integer pixel values 0..255 (uint8 or whole numbers); got fractional values. "
                             "Pass raw images, not images scaled to [0, 1]")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0 or hi > num_bins - 1:
        raise ValueError(f"pixel values must lie in [0, {num_bins - 1}], got values from {lo} to {hi}")


def quantize(y: Tensor, num_bins: int = 256) -> Tensor:
    """Map ``y`` in ``[0, 1]`` back to integer pixels: ``clamp(floor(y * num_bins), 0, num_bins - 1)`` as uint8."""
    return (y * num_bins).floor().clamp(0, num_bins - 1).to(torch.uint8)


class Logit(Bijection):
    r"""``z = logit(alpha + (1 - 2 alpha) y)`` for ``y in (0, 1)`` (RealNVP, Dinh et al. 2017, sec. 4.1).

    ``log|det| = sum_i [log(1 - 2 alpha) - log s_i - log(1 - s_i)]`` with ``s = alpha + (1 - 2 alpha) y``.
    ``alpha`` keeps ``z`` finite at ``y = 0``: with ``alpha = 0.05`` it lies in ``[-2.94, 2.94]``.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        check_input(y, ndim=(2, 4), name="y")
        s = self.alpha + (1 - 2 * self.alpha) * y
        z = torch.log(s) - torch.log1p(-s)
        ld = math.log(1 - 2 * self.alpha) - torch.log(s) - torch.log1p(-s)
        return z, ld.flatten(1).sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=(2, 4), name="z")
        s = torch.sigmoid(z)
        y = (s - self.alpha) / (1 - 2 * self.alpha)
        # log s + log(1 - s) = -softplus(-z) - softplus(z), stable for large |z|
        ld = -math.log(1 - 2 * self.alpha) - F.softplus(-z) - F.softplus(z)
        return y, ld.flatten(1).sum(1)


class UniformDequantization(nn.Module):
    """``x -> z = logit((x + u) / 256)`` with ``u ~ U[0, 1)^D``; see the module docstring.

    ``forward(x)`` takes integer pixels ``(B, C, H, W)`` and returns ``(z, logdet)`` where
    ``logdet`` includes the 256-bin term and ``-log q(u|x)``. The noise is squeezed into
    ``[margin, 1 - margin]`` (default ``1e-4``, costing ``-log2(1 - 2e-4) = 0.0003`` bits/dim)
    so that quantizing a float32 round trip gives back the original integers. ``inverse(z)`` returns the
    integer pixels (as float) and the log-det of the continuous part.
    """

    def __init__(self, num_bins: int = 256, alpha: float = 0.05, margin: float = 1e-4):
        super().__init__()
        self.num_bins = num_bins
        self.logit = Logit(alpha)
        self.margin = float(margin)

    def noise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Draw ``u ~ q(u | x)`` in ``[0, 1)`` and return ``(u, log q(u|x))``; uniform: ``log q = 0``."""
        u = torch.rand(x.shape, device=x.device, dtype=x.dtype)
        return u, x.new_zeros(x.shape[0])

    def center_noise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Deterministic noise for a repeatable encoding: the bin centres, ``u = 1/2``."""
        return torch.full_like(x, 0.5), x.new_zeros(x.shape[0])

    def forward(self, x: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """Integer pixels -> ``(z, logdet)``; ``deterministic=True`` uses :meth:`center_noise`."""
        check_pixels(x, self.num_bins)
        x = x.to(torch.get_default_dtype()) if not x.is_floating_point() else x
        u, log_q = self.center_noise(x) if deterministic else self.noise(x)
        d = x[0].numel()
        # keep the noise ``margin`` away from the bin edges, so that float32 round-off can never
        # carry x + u into the next bin; u' = m + (1 - 2m) u has density q(u) / (1 - 2m)^D
        u = self.margin + (1 - 2 * self.margin) * u
        log_q = log_q - d * math.log1p(-2 * self.margin)
        y = (x + u) / self.num_bins
        z, ld = self.logit(y)
        return z, ld - d * math.log(self.num_bins) - log_q

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        y, ld = self.logit.inverse(z)
        x = quantize(y, self.num_bins).to(z.dtype)
        d = z[0].numel()
        return x, ld + d * math.log(self.num_bins)

    def to_unit(self, z: Tensor) -> Tensor:
        """``z`` back to continuous pixel intensities ``y`` in ``[0, 1]`` (for smooth pictures)."""
        return self.logit.inverse(z)[0].clamp(0, 1)


class VariationalDequantization(UniformDequantization):
    r"""Learned noise ``q(u | x)``: a conditional flow on ``eps ~ N(0, I)`` followed by a sigmoid.

    ``h = g(eps; x)`` (affine couplings whose conditioners see the image), ``u = sigmoid(h)``:

    .. math::
        \log q(u|x) = \log N(\epsilon) - \log|\det \partial h/\partial\epsilon| - \sum_i \log \sigma'(h_i).

    Flow++ (Ho et al. 2019) showed this tightens the bound of uniform dequantization.
    """

    def __init__(self, channels: int = 1, hidden: int = 32, layers: int = 4, num_bins: int = 256, alpha: float = 0.05,
                 size: tuple[int, int] = (28, 28)):
        super().__init__(num_bins, alpha)
        h, w = size
        self.couplings = nn.ModuleList([
            AffineCoupling(checkerboard_mask(h, w, parity=i % 2),
                           GatedResNet(channels, 2 * channels, hidden=hidden, blocks=1, cond_channels=channels))
            for i in range(layers)
        ])

    def _cond(self, x: Tensor) -> Tensor:
        return x / (self.num_bins - 1) * 2 - 1

    def noise_from(self, eps: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Deterministic part of :meth:`noise`: ``eps -> (u, log q(u|x))``."""
        cond = self._cond(x)
        log_q = -0.5 * eps.pow(2).flatten(1).sum(1) - 0.5 * eps[0].numel() * math.log(2 * math.pi)
        h = eps
        for layer in self.couplings:
            h, ld = layer(h, cond)
            log_q = log_q - ld
        u = torch.sigmoid(h)
        log_q = log_q + (F.softplus(-h) + F.softplus(h)).flatten(1).sum(1)
        return u, log_q

    def noise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        eps = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        return self.noise_from(eps, x)

    def center_noise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Deterministic noise: the noise flow's image of ``eps = 0``."""
        return self.noise_from(torch.zeros_like(x), x)
