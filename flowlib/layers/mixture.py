"""Logistic-mixture CDF couplings (Flow++, Ho et al. 2019; issue 25's recipe study).

Each transformed number ``x`` goes through the inverse sigmoid of a mixture of ``K`` logistic
distributions' CDF, then an affine map::

    F(x) = sum_k pi_k sigmoid((x - mu_k) / sigma_k),    u = logit F(x),    z = exp(s) u + t

``F`` is a CDF, so strictly increasing, and ``logit`` maps ``(0, 1)`` onto the real line: ``u`` is
an increasing bijection of ``R``, and it can bend one number's density into up to ``K`` bumps
where an affine coupling can only shift and stretch it. Its derivative is
``du/dx = f(x) / (F (1 - F))`` with ``f`` the mixture's density. Everything is computed from
log-sigmoids and ``logsumexp``, so far tails neither round ``F`` to 0 or 1 nor overflow.

There is no closed-form inverse: because ``F`` lies between the smallest and largest component
CDF, ``u`` lies between the smallest and largest ``(x - mu_k) / sigma_k``, which brackets the
solution of ``logit F(x) = u`` in ``[min_k (mu_k + u sigma_k), max_k (mu_k + u sigma_k)]``;
bisection then halves that bracket to the precision of the dtype. Sampling pays for the
iterations; training and scoring use the forward direction only. Between two far-apart, narrow
components the map is nearly flat, and there the inverse is ill-conditioned: in float32 the
bisection finds an ``x`` whose image matches to float precision, yet it can lie far from the
original one (``tests/layers/test_mixture.py`` measures both). Float64 inverts exactly.

The components' means start spread over ``[-1, 1]`` (with a zero conditioner): identical
components would get identical gradients and stay one logistic for ever.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.bijection import check_input
from .coupling import _ElementwiseChannelCoupling, _ScaleBound

__all__ = ["mixture_logistic_logit", "ChannelMixtureCoupling"]

MIN_LOG_SCALE = -7.0  # sigma >= 9e-4 (Flow++ clamps at the same value)


def _logit_cdf(x: Tensor, logits: Tensor, means: Tensor, log_scales: Tensor) -> tuple[Tensor, Tensor]:
    """``u = logit F(x)`` and ``log du/dx``, for ``x: (...)`` and parameters ``(..., K)``."""
    log_scales = log_scales.clamp_min(MIN_LOG_SCALE)
    t = (x.unsqueeze(-1) - means) * (-log_scales).exp()
    log_pi = F.log_softmax(logits, dim=-1)
    log_cdf = torch.logsumexp(log_pi + F.logsigmoid(t), dim=-1)
    log_sf = torch.logsumexp(log_pi + F.logsigmoid(-t), dim=-1)  # log (1 - F), without cancellation
    log_pdf = torch.logsumexp(log_pi + F.logsigmoid(t) + F.logsigmoid(-t) - log_scales, dim=-1)
    return log_cdf - log_sf, log_pdf - log_cdf - log_sf


def mixture_logistic_logit(x: Tensor, logits: Tensor, means: Tensor, log_scales: Tensor, inverse: bool = False,
                           iterations: int | None = None) -> tuple[Tensor, Tensor]:
    """``u = logit F(x)`` of a mixture of logistics, and ``log|du/dx|``; or, with ``inverse``, ``x`` from ``u``.

    Args:
        x: the input ``(...)`` (``u`` when ``inverse``).
        logits, means, log_scales: ``(..., K)``: unnormalised log mixture weights, the components'
            means and log scales (clamped below at ``MIN_LOG_SCALE``).
        inverse: solve ``logit F(x) = u`` by bisection; the log-det returned is then ``log|dx/du|``.
        iterations: bisection steps (default: enough to reach the dtype's precision: 40 in float32,
            80 in float64, from the bracket in the module's docstring).
    Returns:
        ``(output, log-det)``, both shaped like ``x``.
    """
    if not inverse:
        return _logit_cdf(x, logits, means, log_scales)
    u = x
    sigma = log_scales.clamp_min(MIN_LOG_SCALE).exp()
    ends = means + u.unsqueeze(-1) * sigma
    lo, hi = ends.min(-1).values, ends.max(-1).values
    steps = iterations if iterations is not None else (80 if u.dtype == torch.float64 else 40)
    with torch.no_grad():
        # the loop needs only u = logit F(mid): the same arithmetic as _logit_cdf's first output (so the same
        # comparisons), with what does not depend on mid computed once
        inv_scale = (-log_scales.clamp_min(MIN_LOG_SCALE)).exp()
        log_pi = F.log_softmax(logits, dim=-1)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            t = (mid.unsqueeze(-1) - means) * inv_scale
            logit = torch.logsumexp(log_pi + F.logsigmoid(t), dim=-1) - torch.logsumexp(log_pi + F.logsigmoid(-t), dim=-1)
            above = logit > u
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
    out = 0.5 * (lo + hi)
    _, ld = _logit_cdf(out, logits, means, log_scales)
    return out, -ld


class ChannelMixtureCoupling(_ElementwiseChannelCoupling):
    """Channel-split coupling whose transformed half goes through a logistic-mixture CDF, then an affine map.

    With ``[x_a, x_b]`` the two halves of the channels of ``x: (B, C, H, W)``: ``z_a = x_a`` and,
    for every element of ``x_b``, ``z_b = exp(s) logit F(x_b) + t``, where the mixture of ``K``
    logistics and ``s, t`` come from ``NN(x_a)``; ``s = b tanh(s_raw / b)`` as in the affine
    coupling. ``log|det J| = sum (log (logit F)'(x_b) + s)``. Flow++'s coupling without its
    attention conditioner; used in the image flow with ``FlowConfig(coupling="mixture")``.

    ``conditioner`` maps ``(B, C_a, H, W)`` to ``(B, (C - C_a) (3K + 2), H, W)``.
    """

    def __init__(self, channels: int, conditioner: nn.Module, components: int = 4, scale_bound: float = 2.0,
                 learn_bound: bool = False):
        super().__init__()
        if channels < 2:
            raise ValueError(f"ChannelMixtureCoupling needs at least 2 channels, got {channels}")
        if components < 2:
            raise ValueError(f"components must be >= 2, got {components}")
        self.channels, self.split_at, self.components = channels, channels // 2, components
        self.conditioner = conditioner
        self.bound_s = _ScaleBound(scale_bound, learn_bound, channels - self.split_at, 3)
        self.register_buffer("mean_offsets", torch.linspace(-1.0, 1.0, components), persistent=False)

    @staticmethod
    def out_channels(channels: int, components: int) -> int:
        """Output channels the conditioner needs for ``channels`` and ``components``."""
        return (channels - channels // 2) * (3 * components + 2)

    def _transform(self, v: Tensor, cond: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        """-> (output, log-det of each transformed element ``(B, C - C_a, H, W)``)."""
        check_input(v, ndim=4, name="z" if inverse else "x", channels=self.channels)
        a, b = v[:, : self.split_at], v[:, self.split_at:]
        out = self.conditioner(a) if cond is None else self.conditioner(a, cond)
        n, h, w, k = b.shape[1], b.shape[2], b.shape[3], self.components
        if out.shape[1] != self.out_channels(self.channels, k):
            raise ValueError(f"the conditioner must return {self.out_channels(self.channels, k)} channels for "
                             f"{self.channels} channels and {k} components, got {out.shape[1]}")
        params = out.reshape(v.shape[0], n, 3 * k + 2, h, w)
        shift, log_s = params[:, :, 0], self.bound_s(params[:, :, 1])
        mix = params[:, :, 2:].permute(0, 1, 3, 4, 2)  # (B, n, H, W, 3K)
        logits, means, log_scales = mix[..., :k], mix[..., k:2 * k] + self.mean_offsets.to(mix.dtype), mix[..., 2 * k:]
        if inverse:
            u, ld = mixture_logistic_logit((b - shift) * (-log_s).exp(), logits, means, log_scales, inverse=True)
            return torch.cat([a, u], dim=1), ld - log_s
        u, ld = mixture_logistic_logit(b, logits, means, log_scales)
        return torch.cat([a, u * log_s.exp() + shift], dim=1), ld + log_s
