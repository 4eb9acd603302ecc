"""Base distributions for the latent space (notebook 01)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["StandardNormal"]


class StandardNormal(nn.Module):
    """Standard normal ``N(0, I)`` over tensors of shape ``(B, *event_shape)``.

    ``log p(z) = -1/2 * sum_i z_i^2 - D/2 * log(2 pi)`` with ``D = prod(event_shape)``.
    """

    def __init__(self, *event_shape: int):
        super().__init__()
        if len(event_shape) == 1 and isinstance(event_shape[0], (tuple, list, torch.Size)):
            event_shape = tuple(event_shape[0])
        self.event_shape = tuple(int(s) for s in event_shape)
        # a buffer only to know the device and dtype the module was moved to
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        """``z: (B, *event_shape) -> (B,)``."""
        if tuple(z.shape[1:]) != self.event_shape:
            raise ValueError(f"z must have shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(z.shape)}")
        d = z[0].numel()
        return -0.5 * z.pow(2).flatten(1).sum(1) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples, shape ``(n, *event_shape)``; ``temperature`` scales the standard deviation."""
        z = torch.randn((n, *self.event_shape), generator=generator, device=self._anchor.device,
                        dtype=self._anchor.dtype)
        return z * temperature
