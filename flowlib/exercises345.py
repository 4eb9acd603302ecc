"""Reference answers and automatic checks for the coding exercises of notebooks 03, 04 and 05.

As in :mod:`flowlib.exercises` (notebooks 01-02), the notebooks import the checks from here, so a
learner sees no solution until they open this file or run the collapsed solution cell, and the
tests (tests/test_exercises345.py) prove that every check accepts the reference answer and rejects
plausible wrong ones: a forgotten ``ln 2`` or 256-bin term, a swapped channel order, a layer
rolling the wrong way, an ActNorm initialised from the mean instead of the median.

Each ``check_*`` function prints what it found and returns whether the answer is right; a
``NotImplementedError`` (the unfilled template) counts as "not yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .actnorm import ActNorm
from .bijection import Bijection
from .exercises import _compare, run_check
from .invconv import InvConv1x1LU
from .multiscale import Squeeze
from .testing import check_bijection

__all__ = [
    "bits_per_dim_reference", "bpd_from_unit_scale_reference", "logit_bin_width_reference",
    "check_bits_per_dim", "check_bpd_from_unit_scale", "check_logit_bin_width",
    "squeeze_reference", "unsqueeze_reference", "CheckerSqueezeReference", "check_squeeze",
    "check_checker_squeeze",
    "ChannelShiftReference", "ActNormMedianReference", "check_channel_shift", "check_actnorm_median",
]


# ---- notebook 03 ----------------------------------------------------------------------------

def bits_per_dim_reference(log_p: Tensor, num_dims: int) -> Tensor:
    """Notebook 03, exercise 1: ``bpd = -log p / (D ln 2)`` for ``log p`` in nats, shape ``(B,)``."""
    return -log_p / (num_dims * math.log(2))


def bpd_from_unit_scale_reference(log_p_y: float, num_dims: int) -> float:
    """Notebook 03, exercise 2: ``log p_v = log p_y - D log 256`` (``y = v / 256``), then bits/dim."""
    return -(log_p_y - num_dims * math.log(256)) / (num_dims * math.log(2))


def logit_bin_width_reference(k: int, alpha: float) -> float:
    r"""Notebook 03, exercise 3: width of pixel ``k``'s bin ``[k, k+1)/256`` after ``logit(alpha + (1-2 alpha) y)``."""
    def logit(y: float) -> float:
        s = alpha + (1 - 2 * alpha) * y
        return math.log(s) - math.log1p(-s)

    return logit((k + 1) / 256) - logit(k / 256)


def check_bits_per_dim(fn: Callable[[Tensor, int], Tensor]) -> bool:
    """Notebook 03, exercise 1: ``fn(log_p, D)`` must equal ``-log_p / (D ln 2)`` elementwise, shape kept."""

    def check():
        log_p = torch.tensor([-784 * math.log(2), -784 * math.log(256), -1000.0, 250.0], dtype=torch.float64)
        for dims in (784, 3 * 32 * 32):
            _compare(f"my_bits_per_dim(log_p, {dims})", fn(log_p, dims), bits_per_dim_reference(log_p, dims))
        return "1 bit/dim, the raw-bytes 8 bits/dim and two other values agree for D = 784 and D = 3072"

    return run_check("Exercise 1", check, "my_bits_per_dim")


def check_bpd_from_unit_scale(fn: Callable[[float, int], float]) -> bool:
    """Notebook 03, exercise 2: the bits/dim of the integer image from ``log p_y`` of ``y = (x + u) / 256``."""

    def check():
        for log_p_y, dims in [(3800.0, 784), (0.0, 10), (-120.0, 3072)]:
            got, want = float(fn(log_p_y, dims)), bpd_from_unit_scale_reference(log_p_y, dims)
            if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                raise AssertionError(f"log p_y = {log_p_y}, D = {dims}: expected {want:.4f} bits/dim, got {got:.4f}")
        return f"{bpd_from_unit_scale_reference(3800.0, 784):.3f} bits/dim for the colleague's image"

    return run_check("Exercise 2", check, "bpd_from_unit_scale")


def check_logit_bin_width(fn: Callable[[int, float], float]) -> bool:
    """Notebook 03, exercise 3: ``fn(k, alpha)``, the logit-space width of pixel ``k``'s bin, for several ``k, alpha``."""

    def check():
        for k in (0, 1, 128, 255):
            for alpha in (0.05, 1e-5):
                got, want = float(fn(k, alpha)), logit_bin_width_reference(k, alpha)
                if not math.isclose(got, want, rel_tol=1e-6):
                    raise AssertionError(f"k = {k}, alpha = {alpha}: expected a width of {want:.5g}, got {got:.5g}")
        return "8 bins (k = 0, 1, 128, 255; alpha = 0.05 and 1e-5) have the right width"

    return run_check("Exercise 3", check, "logit_bin_width")


# ---- notebook 04 ----------------------------------------------------------------------------

def squeeze_reference(x: Tensor) -> Tensor:
    """Notebook 04, exercise 1: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``, ``z[:, 4c+2i+j, h, w] = x[:, c, 2h+i, 2w+j]``."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze_reference(z: Tensor) -> Tensor:
    """Notebook 04, exercise 1: the inverse of :func:`squeeze_reference`."""
    b, c, h, w = z.shape
    return z.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class CheckerSqueezeReference(Bijection):
    """Notebook 04, exercise 2: ``fl.Squeeze`` with each patch ordered (0,0), (1,1), (0,1), (1,0); log-det 0.

    ``x: (B, C, H, W) -> (B, 4C, H/2, W/2)``; the squeezed checkerboard becomes ``channel_mask(4)``.
    """

    order = (0, 3, 1, 2)

    def _perm(self, channels: int, device: torch.device) -> Tensor:
        return torch.arange(channels, device=device).view(-1, 4)[:, list(self.order)].flatten()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, logdet = Squeeze()(x)
        return z[:, self._perm(z.shape[1], z.device)], logdet

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return Squeeze().inverse(z[:, torch.argsort(self._perm(z.shape[1], z.device))])


class _Functions(Bijection):
    """Two volume-preserving functions as a bijection (log-det 0), to run ``check_bijection`` on them."""

    def __init__(self, fwd: Callable[[Tensor], Tensor], inv: Callable[[Tensor], Tensor]):
        super().__init__()
        self.fwd, self.inv = fwd, inv

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.fwd(x), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.inv(z), z.new_zeros(z.shape[0])


def check_squeeze(squeeze_fn: Callable[[Tensor], Tensor], unsqueeze_fn: Callable[[Tensor], Tensor]) -> bool:
    """Notebook 04, exercise 1: both functions equal flowlib's squeeze and its inverse (channel order included)."""

    def check():
        x = torch.randn(2, 3, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        _compare("my_squeeze(x)", squeeze_fn(x), squeeze_reference(x), tol=0.0)
        z = squeeze_reference(x)
        _compare("my_unsqueeze(z)", unsqueeze_fn(z), x, tol=0.0)
        return check_bijection(_Functions(squeeze_fn, unsqueeze_fn), x[:1, :1, :4, :4])

    return run_check("Exercise 1", check, "my_squeeze and my_unsqueeze")


def check_checker_squeeze(layer: Bijection) -> bool:
    """Notebook 04, exercise 2: ``layer`` is the squeeze with patch order (0,0), (1,1), (0,1), (1,0), both ways."""

    def check():
        from .coupling import channel_mask, checkerboard_mask

        mask, _ = layer(checkerboard_mask(4, 4)[None])
        _compare("the squeezed checkerboard", mask[0].to(torch.float64), channel_mask(4).expand(4, 2, 2).double(), 0.0)
        reference = CheckerSqueezeReference()
        x = torch.randn(2, 2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        _compare("forward(x)[0] (the channel order of each patch)", layer(x)[0], reference(x)[0], tol=0.0)
        _compare("inverse(z)[0]", layer.inverse(reference(x)[0])[0], x, tol=0.0)
        return check_bijection(layer, x[:1, :1])

    return run_check("Exercise 2", check, "CheckerSqueeze")


# ---- notebook 05 ----------------------------------------------------------------------------

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
