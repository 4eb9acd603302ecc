"""Monotone rational-quadratic splines and spline coupling layers (notebook 10).

A rational-quadratic spline (Durkan et al. 2019, "Neural Spline Flows") maps
``[-B, B]`` onto itself through ``K`` bins. Bin ``k`` runs from knot ``(x_k, y_k)`` to
``(x_{k+1}, y_{k+1})``, with width ``w_k``, height ``h_k``, slope ``s_k = h_k / w_k`` and
positive derivatives ``d_k, d_{k+1}`` at its two knots. With ``xi = (x - x_k) / w_k``::

    y = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))

    dy/dx = s_k^2 (d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2)
            / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))^2

Every term of ``dy/dx`` is positive, so the map is strictly increasing. Solving the
first line for ``xi`` given ``y`` is a quadratic equation ``a xi^2 + b xi + c = 0``
with exactly one root in ``[0, 1]``, which gives the inverse in closed form. Outside
``[-B, B]`` the map is the identity (linear tails), and the derivatives at the two
end knots are 1 so that the slope is continuous there.

The widths and heights come from a softmax (they are positive and add up to ``2B``),
the interior derivatives from a softplus; all raw parameters equal to zero give the
identity map, so a fresh spline layer with a zero-initialised conditioner starts as
the identity like every coupling in flowlib.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.bijection import Bijection, Sequential, check_input
from ..core.flow import Flow
from .coupling import _Coupling, _ElementwiseChannelCoupling, _ScaleBound, alternating_mask
from .elementwise import ElementwiseAffine
from .nets import MLP

__all__ = ["rational_quadratic_spline", "spline_knots", "spline_params_from_knots", "ElementwiseSpline",
           "SplineCoupling", "ChannelSplineCoupling", "spline_coupling_flow", "spline_params_per_feature"]

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(raw + _DERIVATIVE_SHIFT) + MIN_DERIVATIVE == 1 when raw == 0 (identity at initialisation)
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def spline_params_per_feature(bins: int) -> int:
    """Raw parameters one feature needs: ``K`` widths, ``K`` heights, ``K - 1`` interior derivatives."""
    return 3 * bins - 1


def spline_knots(raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor,
                 bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """Knot positions and derivatives from unconstrained parameters.

    Args:
        raw_widths, raw_heights: ``(..., K)``.
        raw_derivatives: ``(..., K - 1)``, one per interior knot.
        bound: ``B``; the knots span ``[-B, B]`` in both ``x`` and ``y``.

    Returns:
        ``(knots_x, knots_y, derivatives)``, each ``(..., K + 1)``; the end derivatives are 1.
    """
    bins = raw_widths.shape[-1]
    if raw_heights.shape[-1] != bins or raw_derivatives.shape[-1] != bins - 1:
        raise ValueError(f"expected K widths, K heights and K - 1 derivatives, got {raw_widths.shape[-1]}, "
                         f"{raw_heights.shape[-1]} and {raw_derivatives.shape[-1]}")
    if MIN_BIN_WIDTH * bins >= 1 or MIN_BIN_HEIGHT * bins >= 1:
        raise ValueError(f"too many bins ({bins}) for the minimum bin size")

    def positions(raw: Tensor, minimum: float) -> Tensor:
        fractions = minimum + (1 - minimum * bins) * torch.softmax(raw, dim=-1)
        knots = F.pad(torch.cumsum(fractions, dim=-1), (1, 0))  # 0, ..., 1
        knots = 2 * bound * knots - bound
        # pin the two ends exactly: rounding in the cumulative sum must not open a gap at +-B
        return torch.cat([torch.full_like(knots[..., :1], -bound), knots[..., 1:-1],
                          torch.full_like(knots[..., :1], bound)], dim=-1)

    inner = MIN_DERIVATIVE + F.softplus(raw_derivatives + _DERIVATIVE_SHIFT)
    ones = torch.ones_like(inner[..., :1])
    return positions(raw_widths, MIN_BIN_WIDTH), positions(raw_heights, MIN_BIN_HEIGHT), torch.cat([ones, inner, ones], -1)


def spline_params_from_knots(knots_x: Tensor, knots_y: Tensor, derivatives: Tensor,
                             bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """The unconstrained parameters that :func:`spline_knots` turns into these knots: its inverse.

    ``knots_x``, ``knots_y``: ``(..., K + 1)``, increasing from ``-bound`` to ``bound``, each bin wider and taller than
    the minimum; ``derivatives``: ``(..., K + 1)`` with the end ones equal to 1 (the linear tails), the interior ones
    above ``MIN_DERIVATIVE``. Lets a learner place the knots by hand (notebook 10's spline widget).
    """
    for name, knots, minimum in [("knots_x", knots_x, MIN_BIN_WIDTH), ("knots_y", knots_y, MIN_BIN_HEIGHT)]:
        ends = torch.stack([knots[..., 0], knots[..., -1]], -1)
        if not torch.allclose(ends, torch.tensor([-bound, bound], dtype=knots.dtype).expand_as(ends)):
            raise ValueError(f"{name} must run from -bound to bound ({-bound} to {bound})")
        if not (torch.diff(knots, dim=-1) > 2 * bound * minimum).all():
            raise ValueError(f"{name} must increase, each bin wider than {2 * bound * minimum:g}")
    if not torch.allclose(derivatives[..., [0, -1]], torch.ones_like(derivatives[..., [0, -1]])):
        raise ValueError("the end derivatives must be 1: the tails outside [-bound, bound] are the identity")
    inner = derivatives[..., 1:-1]
    if not (inner > MIN_DERIVATIVE).all():
        raise ValueError(f"the interior derivatives must exceed {MIN_DERIVATIVE}")

    def raw(knots: Tensor, minimum: float) -> Tensor:
        fractions = torch.diff(knots, dim=-1) / (2 * bound)
        bins = fractions.shape[-1]
        return torch.log((fractions - minimum) / (1 - minimum * bins))  # softmax of this gives the fractions back

    return (raw(knots_x, MIN_BIN_WIDTH), raw(knots_y, MIN_BIN_HEIGHT),
            torch.log(torch.expm1(inner - MIN_DERIVATIVE)) - _DERIVATIVE_SHIFT)


def _bin_index(knots: Tensor, v: Tensor) -> Tensor:
    # index k with knots[k] <= v < knots[k + 1], clamped to the K bins (v == B falls in the last)
    bins = knots.shape[-1] - 1
    return ((v[..., None] >= knots).sum(-1) - 1).clamp(0, bins - 1)


def rational_quadratic_spline(x: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor,
                              bound: float = 3.0, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """Apply the monotone rational-quadratic spline elementwise (or its inverse).

    Args:
        x: any shape ``S``.
        raw_widths, raw_heights: ``S + (K,)``; raw_derivatives: ``S + (K - 1,)`` (see :func:`spline_knots`).
        bound: ``B``; outside ``[-B, B]`` the map is the identity.
        inverse: apply the inverse map instead (solving the quadratic for ``xi``).

    Returns:
        ``(y, logabsdet)``, both of shape ``S``: the elementwise ``log|dy/dx|`` of the map applied.
    """
    kx, ky, kd = spline_knots(raw_widths, raw_heights, raw_derivatives, bound)
    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)  # evaluate every element inside, keep the result only where it belongs

    k = _bin_index(ky if inverse else kx, v)[..., None]
    x_k, x_k1 = kx.gather(-1, k)[..., 0], kx.gather(-1, k + 1)[..., 0]
    y_k, y_k1 = ky.gather(-1, k)[..., 0], ky.gather(-1, k + 1)[..., 0]
    d_k, d_k1 = kd.gather(-1, k)[..., 0], kd.gather(-1, k + 1)[..., 0]
    w, h = x_k1 - x_k, y_k1 - y_k
    s = h / w
    curve = d_k1 + d_k - 2 * s

    if inverse:
        dy = v - y_k
        a = h * (s - d_k) + dy * curve
        b = h * d_k - dy * curve
        c = -s * dy
        disc = (b.pow(2) - 4 * a * c).clamp_min(0)
        # the root in [0, 1], written so that it never divides by a small a (Durkan et al. 2019, eq. 29)
        xi = 2 * c / (-b - disc.sqrt())
        out = x_k + xi * w
    else:
        xi = (v - x_k) / w  # in [0, 1] by the choice of bin (no clamp: its gradient vanishes at a knot)
        out = y_k + h * (s * xi.pow(2) + d_k * xi * (1 - xi)) / (s + curve * xi * (1 - xi))

    one_minus = 1 - xi
    denom = s + curve * xi * one_minus
    logderiv = (2 * s.log() + (d_k1 * xi.pow(2) + 2 * s * xi * one_minus + d_k * one_minus.pow(2)).log()
                - 2 * denom.log())
    if inverse:
        logderiv = -logderiv
    return torch.where(inside, out, x), torch.where(inside, logderiv, torch.zeros_like(logderiv))


class ElementwiseSpline(Bijection):
    """A learned rational-quadratic spline per feature, ``x: (B, D)``; starts as the identity.

    ``log|det J| = sum_i log z_i'(x_i)``: the Jacobian is diagonal.
    """

    def __init__(self, features: int, bins: int = 8, bound: float = 3.0):
        super().__init__()
        self.features, self.bins, self.bound = features, bins, float(bound)
        self.raw_widths = nn.Parameter(torch.zeros(features, bins))
        self.raw_heights = nn.Parameter(torch.zeros(features, bins))
        self.raw_derivatives = nn.Parameter(torch.zeros(features, bins - 1))

    def _spline(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        batch = v.shape[0]
        params = [p.to(v.dtype).expand(batch, *p.shape) for p in (self.raw_widths, self.raw_heights,
                                                                  self.raw_derivatives)]
        out, ld = rational_quadratic_spline(v, *params, bound=self.bound, inverse=inverse)
        return out, ld.sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=2, features=self.features)
        return self._spline(x, inverse=False)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=2, name="z", features=self.features)
        return self._spline(z, inverse=True)


class SplineCoupling(_Coupling):
    """Coupling layer whose transformed features go through a rational-quadratic spline.

    Features with ``mask == 1`` pass unchanged; each feature with ``mask == 0`` is mapped
    by its own spline whose ``3K - 1`` raw parameters come from ``conditioner(m * x)``.
    ``conditioner`` maps ``(B, D)`` to ``(B, n * (3K - 1))`` with ``n`` the number of zeros
    in the mask (e.g. ``MLP(D, n * (3K - 1))``, zero last layer: the identity at the start).
    ``log|det J| = sum_{i: m_i = 0} log z_i'(x_i)``, as for any coupling.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, bins: int = 8, bound: float = 3.0):
        super().__init__(mask, conditioner)
        if mask.dim() != 1:
            raise ValueError("SplineCoupling works on vectors (B, D): give a mask of shape (D,)")
        self.bins, self.bound = bins, float(bound)
        self.register_buffer("transformed", (mask == 0).nonzero().flatten(), persistent=False)

    def _transform(self, v: Tensor, cond: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        m = self._mask(v)
        n, k = len(self.transformed), self.bins
        params = self._condition(v * m, cond)
        if params.shape[1:] != (n * spline_params_per_feature(k),):
            raise ValueError(f"the conditioner must return (B, {n * spline_params_per_feature(k)}) parameters "
                             f"for {n} transformed features and {k} bins, got {tuple(params.shape)}")
        params = params.reshape(v.shape[0], n, spline_params_per_feature(k))
        widths, heights, derivatives = params[..., :k], params[..., k:2 * k], params[..., 2 * k:]
        out, ld = rational_quadratic_spline(v[:, self.transformed], widths, heights, derivatives,
                                            bound=self.bound, inverse=inverse)
        result = v.clone()
        result[:, self.transformed] = out
        return result, ld.sum(1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, "x")
        return self._transform(x, cond, inverse=False)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z, "z")
        return self._transform(z, cond, inverse=True)


def spline_coupling_flow(features: int = 2, layers: int = 4, hidden: int = 64, bins: int = 8,
                         bound: float = 4.0) -> Flow:
    """Like :func:`flowlib.coupling_flow_2d`, with spline couplings: an ``ElementwiseAffine``
    layer, then ``layers`` spline couplings with alternating masks."""
    blocks: list[Bijection] = [ElementwiseAffine(features)]
    for i in range(layers):
        mask = alternating_mask(features, parity=i % 2)
        n = int((mask == 0).sum())
        blocks.append(SplineCoupling(mask, MLP(features, n * spline_params_per_feature(bins), hidden=hidden),
                                     bins=bins, bound=bound))
    return Flow(Sequential(*blocks), event_shape=(features,))


class ChannelSplineCoupling(_ElementwiseChannelCoupling):
    """Channel-split coupling whose transformed half goes through a spline, then an affine map (notebook 10).

    With ``[x_a, x_b]`` the two halves of the channels of ``x: (B, C, H, W)``:
    ``z_a = x_a`` and, for every element of ``x_b``, ``z_b = exp(s) * RQS(x_b) + t``, where the
    rational-quadratic spline ``RQS`` (``K`` bins on ``[-B, B]``, identity outside) and ``s, t``
    all come from ``NN(x_a)``; ``s = b tanh(s_raw / b)`` as in the affine coupling.
    ``log|det J| = sum (log RQS'(x_b) + s)``. The spline bends each pixel's density where an
    affine coupling can only shift and stretch it (Durkan et al. 2019, neural spline flows
    for images); the affine part after it lets the coupling move values outside the spline's box.

    ``conditioner`` maps ``(B, C_a, H, W)`` to ``(B, (C - C_a) (3K + 1), H, W)`` (zero last
    layer: the identity at the start). It is used in the image flow with ``FlowConfig(coupling="spline")``.
    """

    def __init__(self, channels: int, conditioner: nn.Module, bins: int = 4, bound: float = 3.0,
                 scale_bound: float = 2.0, learn_bound: bool = False):
        super().__init__()
        if channels < 2:
            raise ValueError(f"ChannelSplineCoupling needs at least 2 channels, got {channels}")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.channels, self.split_at, self.bins, self.bound = channels, channels // 2, bins, float(bound)
        self.conditioner = conditioner
        self.bound_s = _ScaleBound(scale_bound, learn_bound, channels - self.split_at, 3)

    @staticmethod
    def out_channels(channels: int, bins: int) -> int:
        """Output channels the conditioner needs for ``channels`` and ``bins``."""
        return (channels - channels // 2) * (spline_params_per_feature(bins) + 2)

    def _transform(self, v: Tensor, cond: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        """-> (output, log-det of each transformed element ``(B, C - C_a, H, W)``)."""
        check_input(v, ndim=4, name="z" if inverse else "x", channels=self.channels)
        a, b = v[:, : self.split_at], v[:, self.split_at:]
        out = self.conditioner(a) if cond is None else self.conditioner(a, cond)
        n, h, w, k = b.shape[1], b.shape[2], b.shape[3], self.bins
        if out.shape[1] != self.out_channels(self.channels, k):
            raise ValueError(f"the conditioner must return {self.out_channels(self.channels, k)} channels for "
                             f"{self.channels} channels and {k} bins, got {out.shape[1]}")
        params = out.reshape(v.shape[0], n, spline_params_per_feature(k) + 2, h, w)
        shift, log_s = params[:, :, 0], self.bound_s(params[:, :, 1])
        spline = params[:, :, 2:].permute(0, 1, 3, 4, 2)  # (B, n, H, W, 3K - 1)
        widths, heights, derivatives = spline[..., :k], spline[..., k:2 * k], spline[..., 2 * k:]
        if inverse:
            u, ld = rational_quadratic_spline((b - shift) * (-log_s).exp(), widths, heights, derivatives,
                                              bound=self.bound, inverse=True)
            return torch.cat([a, u], dim=1), ld - log_s
        u, ld = rational_quadratic_spline(b, widths, heights, derivatives, bound=self.bound)
        return torch.cat([a, u * log_s.exp() + shift], dim=1), ld + log_s
