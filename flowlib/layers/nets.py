"""Conditioner networks for coupling layers (notebooks 02 and 04).

Each returns twice as many features/channels as the coupling transforms (shift and
raw log-scale) and has a zero-initialised last layer, so a fresh coupling is the
identity map (Glow, Kingma & Dhariwal 2018, section 3.3).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["MLP", "ConvNet", "GatedResNet", "zero_init", "broadcast_cond", "conditioner_precision"]

# the dtype GatedResNet computes in (None: its input's), set only inside ``conditioner_precision``
_COMPUTE_DTYPE: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar("compute_dtype", default=None)


@contextlib.contextmanager
def conditioner_precision(dtype: torch.dtype | None) -> Iterator[None]:
    """Run the image couplings' conditioner networks (:class:`GatedResNet`) in ``dtype`` inside this block.

    Mixed precision confined to the networks that compute shifts and scales: their convolutions
    run under ``torch.autocast`` (weights stay float32) and their outputs come back in the input's
    dtype, so everything the flow itself computes (the coupled values, 1x1 convolutions, ActNorm,
    every log-determinant and the prior) stays in float32. The layers are still exact
    bijections: a coupling is invertible whatever its network outputs. With ``torch.bfloat16``, a
    training step of the default MNIST model takes about a third less CPU time where the processor
    has bfloat16 instructions (benchmarks/step_speed.py: 392 -> 257 ms at batch 16 on one thread);
    elsewhere it can be slower. ``None``
    leaves them in float32. Evaluate outside the block: the numbers you report are float32's.
    """
    if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")
    token = _COMPUTE_DTYPE.set(None if dtype == torch.float32 else dtype)
    try:
        yield
    finally:
        _COMPUTE_DTYPE.reset(token)


def zero_init(layer: nn.Module) -> nn.Module:
    """Set a layer's weight and bias to zero and return it."""
    nn.init.zeros_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def broadcast_cond(cond: Tensor, x: Tensor) -> Tensor:
    """A condition ``(B, E)`` (e.g. a class embedding) repeated over the pixels of ``x`` as ``(B, E, H, W)``.

    A condition that is already a map ``(B, E, H, W)`` passes unchanged (in ``x``'s dtype).
    """
    if cond.dim() == 2:
        cond = cond[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return cond.to(x.dtype)


class MLP(nn.Module):
    """``in_features -> hidden -> ... -> out_features`` with ReLU; last layer zero."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, layers: int = 2,
                 cond_features: int = 0):
        super().__init__()
        dims = [in_features + cond_features] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(zero_init(nn.Linear(dims[-1], out_features)))
        self.net = nn.Sequential(*mods)
        self.cond_features = cond_features

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.cond_features:
            if cond is None:
                raise ValueError("this MLP was built with cond_features > 0 and needs cond")
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        return self.net(x)


class ConvNet(nn.Module):
    """Plain conv conditioner: 3x3 conv, ReLU, 1x1 conv, ReLU, zero 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            zero_init(nn.Conv2d(hidden, out_channels, 3, padding=1)),
        )

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.net(x)


class _ConcatELU(nn.Module):
    """``[elu(x), elu(-x)]`` along channels: keeps both signs' information (PixelCNN++)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([nn.functional.elu(x), nn.functional.elu(-x)], dim=1)


class _GatedBlock(nn.Module):
    """Residual block ``x + a * sigmoid(g)`` with ``[a, g] = conv(concat_elu(conv(concat_elu(x))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            _ConcatELU(), nn.Conv2d(2 * channels, channels, 3, padding=1),
            _ConcatELU(), nn.Conv2d(2 * channels, 2 * channels, 1),
        )
        self.norm = nn.GroupNorm(1, channels)

    def forward(self, x: Tensor) -> Tensor:
        a, g = self.net(x).chunk(2, dim=1)
        return self.norm(x + a * torch.sigmoid(g))


class GatedResNet(nn.Module):
    """Gated residual conv net for image couplings (PixelCNN++-style gates, as in Flow++).

    ``in_channels -> hidden -> blocks x gated residual -> out_channels`` (last conv zero).
    ``cond_channels`` extra channels (e.g. a one-hot label broadcast over the image) are
    concatenated to the input when given.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, blocks: int = 2,
                 cond_channels: int = 0):
        super().__init__()
        self.cond_channels = cond_channels
        self.inp = nn.Conv2d(in_channels + cond_channels, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*[_GatedBlock(hidden) for _ in range(blocks)])
        self.out = nn.Sequential(_ConcatELU(), zero_init(nn.Conv2d(2 * hidden, out_channels, 3, padding=1)))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.cond_channels:
            if cond is None:
                raise ValueError("this GatedResNet was built with cond_channels > 0 and needs cond")
            x = torch.cat([x, broadcast_cond(cond, x)], dim=1)
        dtype = _COMPUTE_DTYPE.get()
        if dtype is None:
            return self.out(self.blocks(self.inp(x)))
        with torch.autocast(x.device.type, dtype=dtype):
            out = self.out(self.blocks(self.inp(x)))
        return out.to(x.dtype)
