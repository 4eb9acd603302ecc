"""Notebook 04's exercises: squeeze by hand and a checkerboard squeeze layer, reference answers and checks
(see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..core.bijection import Bijection
from ..core.testing import check_bijection
from ..layers.squeeze import Squeeze
from .runner import _compare, run_check

__all__ = ["squeeze_reference", "unsqueeze_reference", "CheckerSqueezeReference", "check_squeeze", "check_checker_squeeze"]



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
        from ..layers.coupling import channel_mask, checkerboard_mask

        mask, _ = layer(checkerboard_mask(4, 4)[None])
        _compare("the squeezed checkerboard", mask[0].to(torch.float64), channel_mask(4).expand(4, 2, 2).double(), 0.0)
        reference = CheckerSqueezeReference()
        x = torch.randn(2, 2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        _compare("forward(x)[0] (the channel order of each patch)", layer(x)[0], reference(x)[0], tol=0.0)
        _compare("inverse(z)[0]", layer.inverse(reference(x)[0])[0], x, tol=0.0)
        return check_bijection(layer, x[:1, :1])

    return run_check("Exercise 2", check, "CheckerSqueeze")
