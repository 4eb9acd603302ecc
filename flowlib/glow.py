"""One step of Glow: ActNorm -> invertible 1x1 conv -> affine coupling (notebook 05).

Kingma & Dhariwal 2018, figure 2a. The coupling transforms half of the channels
conditioned on the other half; the learned 1x1 convolution before it decides which
mixtures of channels land in which half, replacing RealNVP's fixed alternation.
"""

from __future__ import annotations

from .actnorm import ActNorm
from .bijection import Sequential
from .coupling import AffineCoupling, channel_mask
from .invconv import InvConv1x1, InvConv1x1LU
from .nets import GatedResNet

__all__ = ["GlowStep"]


class GlowStep(Sequential):
    """``ActNorm(C) -> InvConv1x1LU(C) -> AffineCoupling(channel mask, GatedResNet)`` on ``(B, C, H, W)``.

    Args:
        channels: C (even).
        hidden: width of the coupling's conditioner.
        blocks: gated residual blocks in the conditioner.
        lu: use the LU-parameterised 1x1 convolution (default) or the plain one.
        scale_bound: bound of the coupling's log-scale, see :class:`AffineCoupling`.
    """

    def __init__(self, channels: int, hidden: int = 64, blocks: int = 1, lu: bool = True, scale_bound: float = 2.0):
        if channels % 2:
            raise ValueError(f"GlowStep needs an even number of channels, got {channels}")
        conv = InvConv1x1LU(channels) if lu else InvConv1x1(channels)
        coupling = AffineCoupling(channel_mask(channels), GatedResNet(channels, 2 * channels, hidden=hidden, blocks=blocks),
                                  scale_bound=scale_bound)
        super().__init__(ActNorm(channels), conv, coupling)

    @property
    def actnorm(self) -> ActNorm:
        return self.layers[0]
