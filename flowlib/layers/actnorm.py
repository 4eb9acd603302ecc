"""ActNorm: per-channel affine normalisation with data-dependent initialisation (notebook 05).

``z = (x + b) * exp(log_s)`` per channel; for ``x: (B, C, H, W)`` the log-det is
``H * W * sum_c log_s_c`` (``(B, C)`` inputs: ``sum_c log_s_c``). On the first forward
pass ``b`` and ``log_s`` are set so that this batch comes out with zero mean and unit
variance per channel (Glow, Kingma & Dhariwal 2018, sec. 3.1). Unlike BatchNorm, the
map does not depend on the other examples of a batch after that, so it stays an exact
bijection of each example.

The ``initialized`` flag is a buffer: it is saved in ``state_dict``, so a loaded
checkpoint is never re-initialised on its first batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.bijection import Bijection, check_input

__all__ = ["ActNorm"]


class ActNorm(Bijection):
    """Per-channel ``z = (x + bias) * exp(log_scale)`` for ``(B, C)`` or ``(B, C, H, W)`` inputs."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        return (1, self.channels) + (1,) * (x.dim() - 2)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set bias and scale from the batch ``x`` so it is normalised per channel."""
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dim=dims)
        std = x.std(dim=dims, unbiased=False) if x.numel() // self.channels > 1 else torch.ones_like(mean)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def _logdet(self, x: Tensor) -> Tensor:
        pixels = x[0, 0].numel() if x.dim() > 2 else 1
        return (pixels * self.log_scale.sum()).to(x.dtype).expand(x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=(2, 4), channels=self.channels)
        if not self.initialized:
            self.initialize(x)
        shape = self._shape(x)
        z = (x + self.bias.view(shape)) * self.log_scale.view(shape).exp()
        return z, self._logdet(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=(2, 4), name="z", channels=self.channels)
        shape = self._shape(z)
        x = z * (-self.log_scale.view(shape)).exp() - self.bias.view(shape)
        return x, -self._logdet(z)
