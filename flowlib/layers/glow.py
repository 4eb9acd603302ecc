"""One step of Glow: ActNorm -> invertible 1x1 conv -> affine coupling (notebook 05).

Kingma & Dhariwal 2018, figure 2a. The coupling transforms half of the channels
conditioned on the other half; the learned 1x1 convolution before it decides which
mixtures of channels land in which half, replacing RealNVP's fixed alternation.
"""

from __future__ import annotations

from ..core.bijection import Sequential
from .actnorm import ActNorm
from .coupling import AffineCoupling, ChannelAffineCoupling, channel_mask
from .invconv import InvConv1x1, InvConv1x1LU
from .mixture import ChannelMixtureCoupling
from .nets import GatedResNet
from .splines import ChannelSplineCoupling

__all__ = ["GlowStep"]


class GlowStep(Sequential):
    """``ActNorm(C) -> InvConv1x1LU(C) -> affine coupling over the channel halves`` on ``(B, C, H, W)``.

    Args:
        channels: C (even).
        hidden: width of the coupling's conditioner (a :class:`GatedResNet`).
        blocks: gated residual blocks in the conditioner.
        lu: use the LU-parameterised 1x1 convolution (default) or the plain one.
        scale_bound: bound of the coupling's log-scale, see :class:`AffineCoupling`.
        learn_bound: learn that bound per channel.
        split: compute the coupling by slicing the channels (:class:`ChannelAffineCoupling`, the
            default) or with a channel mask (:class:`AffineCoupling`, as notebook 05 first
            builds it, and as checkpoints made before the sliced version were trained).
        cond_channels: channels of a condition fed to the conditioner (notebook 08); then
            ``forward(x, cond)`` and ``inverse(z, cond)`` take ``cond: (B, E)`` or ``(B, E, H, W)``.
        coupling: ``"affine"`` (Glow's) or ``"spline"``: a rational-quadratic spline with ``bins`` bins
            on ``[-spline_bound, spline_bound]`` before the affine map
            (:class:`~flowlib.layers.splines.ChannelSplineCoupling`; needs ``split=True``), or ``"mixture"``:
            Flow++'s logistic-mixture CDF with ``components`` logistics before the affine map
            (:class:`~flowlib.layers.mixture.ChannelMixtureCoupling`; needs ``split=True``).
    """

    def __init__(self, channels: int, hidden: int = 64, blocks: int = 1, lu: bool = True, scale_bound: float = 2.0,
                 learn_bound: bool = False, split: bool = True, cond_channels: int = 0, coupling: str = "affine",
                 bins: int = 4, spline_bound: float = 3.0, components: int = 4):
        if channels % 2:
            raise ValueError(f"GlowStep needs an even number of channels, got {channels}")
        if coupling not in ("affine", "spline", "mixture"):
            raise ValueError(f"coupling must be 'affine', 'spline' or 'mixture', got {coupling!r}")
        if coupling in ("spline", "mixture") and not split:
            raise ValueError(f"a {coupling} coupling slices the channels: use split=True")
        conv = InvConv1x1LU(channels) if lu else InvConv1x1(channels)
        if coupling == "spline":
            half = channels // 2
            net = GatedResNet(half, ChannelSplineCoupling.out_channels(channels, bins), hidden=hidden, blocks=blocks,
                              cond_channels=cond_channels)
            coupling = ChannelSplineCoupling(channels, net, bins=bins, bound=spline_bound, scale_bound=scale_bound,
                                             learn_bound=learn_bound)
        elif coupling == "mixture":
            half = channels // 2
            net = GatedResNet(half, ChannelMixtureCoupling.out_channels(channels, components), hidden=hidden,
                              blocks=blocks, cond_channels=cond_channels)
            coupling = ChannelMixtureCoupling(channels, net, components=components, scale_bound=scale_bound,
                                              learn_bound=learn_bound)
        elif split:
            half = channels // 2
            net = GatedResNet(half, 2 * half, hidden=hidden, blocks=blocks, cond_channels=cond_channels)
            coupling = ChannelAffineCoupling(channels, net, scale_bound=scale_bound, learn_bound=learn_bound)
        else:
            coupling = AffineCoupling(channel_mask(channels),
                                      GatedResNet(channels, 2 * channels, hidden=hidden, blocks=blocks,
                                                  cond_channels=cond_channels),
                                      scale_bound=scale_bound, learn_bound=learn_bound)
        super().__init__(ActNorm(channels), conv, coupling)

    @property
    def actnorm(self) -> ActNorm:
        return self.layers[0]
