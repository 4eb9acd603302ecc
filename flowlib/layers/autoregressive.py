"""Masked autoregressive flows: MADE, MAF and IAF (notebook 10).

An autoregressive transform maps each feature with parameters that depend only on
the features *before* it in a chosen order::

    z_i = tau(x_i; theta_i(x_{<i})),     log|det J| = sum_i log tau'(x_i; theta_i)

so the Jacobian is triangular in that order. MADE (Germain et al. 2015) computes all
``theta_i(x_{<i})`` in one network pass by masking the weights of an MLP: every unit
gets a degree, and a weight is kept only where information flows from lower to
higher degrees.

* **MAF** (Papamakarios et al. 2017) uses this as ``forward`` (data -> latent): the
  density of a batch takes one MADE pass; sampling must recover ``x_1, x_2, ...`` in
  turn, one pass per feature (``D`` passes).
* **IAF** (Kingma et al. 2016) is the same layer the other way round, here
  ``Inverse(MaskedAutoregressive(...))``: sampling in one pass, density in ``D``.

A coupling layer is the special case with two blocks: the first block conditions
the second, and nothing conditions the first.

The elementwise ``tau`` is affine (``z = x e^s + t`` with a softly bounded ``s``, as in
:mod:`flowlib.layers.coupling`) or a rational-quadratic spline (:mod:`flowlib.layers.splines`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.bijection import Bijection, Inverse, Sequential, check_input
from ..core.flow import Flow
from .elementwise import ElementwiseAffine
from .splines import rational_quadratic_spline, spline_params_per_feature

__all__ = ["MaskedLinear", "MADE", "MaskedAutoregressive", "made_masks", "maf_flow", "iaf_flow"]


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed binary mask ``M`` of shape ``(out, in)``."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask.to(self.weight.dtype), self.bias)


def made_masks(order: Tensor, hidden: int, layers: int) -> list[Tensor]:
    """The MADE masks for inputs ranked by ``order`` (a permutation of ``0..D-1``).

    Input ``i`` gets degree ``order[i] + 1``, hidden units cycle through degrees ``1..D-1``,
    and output ``i`` gets the degree of input ``i``. A hidden unit of degree ``k`` sees the
    inputs of degree ``<= k``; an output sees only hidden units of *strictly lower* degree,
    so output ``i`` depends on exactly the inputs before it in the order.

    Returns ``layers + 1`` masks: input -> hidden, hidden -> hidden ..., hidden -> output
    (for one output per feature).
    """
    features = len(order)
    deg_in = order.long() + 1
    deg_hidden = torch.arange(hidden) % max(features - 1, 1) + 1
    masks = [(deg_hidden[:, None] >= deg_in[None, :]).float()]
    for _ in range(layers - 1):
        masks.append((deg_hidden[:, None] >= deg_hidden[None, :]).float())
    masks.append((deg_in[:, None] > deg_hidden[None, :]).float())
    return masks


class MADE(nn.Module):
    """Masked MLP: ``x: (B, D) -> (B, D, P)``, row ``i`` depending only on ``x_{<i}`` in ``order``.

    ``P`` parameters per feature (``params_per_feature``); ReLU hidden layers; the last layer
    is zero-initialised, so the transform built on it starts as the identity.
    """

    def __init__(self, features: int, params_per_feature: int, hidden: int = 64, layers: int = 2,
                 order: Tensor | None = None):
        super().__init__()
        order = torch.arange(features) if order is None else torch.as_tensor(order).long()
        if sorted(order.tolist()) != list(range(features)):
            raise ValueError(f"order must be a permutation of 0..{features - 1}, got {order.tolist()}")
        self.features, self.params_per_feature = features, params_per_feature
        self.register_buffer("order", order)
        masks = made_masks(order, hidden, layers)
        dims = [features] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b, m in zip(dims[:-1], dims[1:], masks[:-1]):
            mods += [MaskedLinear(a, b, m), nn.ReLU()]
        # every feature's P outputs share the feature's degree
        out = MaskedLinear(hidden, features * params_per_feature, masks[-1].repeat_interleave(params_per_feature, 0))
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*mods, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(x.shape[0], self.features, self.params_per_feature)


class MaskedAutoregressive(Bijection):
    """Autoregressive transform ``z_i = tau(x_i; MADE(x)_i)`` on ``x: (B, D)`` (MAF direction).

    ``forward`` (density) is one MADE pass; ``inverse`` (sampling) is ``D`` passes. Wrap it
    in :class:`flowlib.Inverse` for the IAF direction.

    Args:
        transform: ``"affine"``: ``z_i = x_i e^{s_i} + t_i``, ``s_i = b tanh(s_raw / b)``,
            ``log|det J| = sum_i s_i``; or ``"spline"``: a rational-quadratic spline per
            feature with ``bins`` bins on ``[-bound, bound]``.
        order: a permutation; feature ``i`` is the ``order[i]``-th to be generated.
    """

    def __init__(self, features: int, hidden: int = 64, layers: int = 2, transform: str = "affine",
                 order: Tensor | None = None, bins: int = 8, bound: float = 3.0, scale_bound: float = 2.0):
        super().__init__()
        if transform not in ("affine", "spline"):
            raise ValueError(f"transform must be 'affine' or 'spline', got {transform!r}")
        self.features, self.transform = features, transform
        self.bins, self.bound, self.scale_bound = bins, float(bound), float(scale_bound)
        per_feature = 2 if transform == "affine" else spline_params_per_feature(bins)
        self.made = MADE(features, per_feature, hidden=hidden, layers=layers, order=order)

    def _tau(self, v: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        # the elementwise map of every feature given its parameters, and log|d out / d v| summed
        if self.transform == "affine":
            shift, s_raw = params[..., 0], params[..., 1]
            log_s = self.scale_bound * torch.tanh(s_raw / self.scale_bound)
            if inverse:
                return (v - shift) * (-log_s).exp(), -log_s.sum(1)
            return v * log_s.exp() + shift, log_s.sum(1)
        k = self.bins
        out, ld = rational_quadratic_spline(v, params[..., :k], params[..., k:2 * k], params[..., 2 * k:],
                                            bound=self.bound, inverse=inverse)
        return out, ld.sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=2, features=self.features)
        return self._tau(x, self.made(x), inverse=False)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=2, name="z", features=self.features)
        # After pass k the features ranked < k are exact, so they give the exact parameters of
        # the feature ranked k: D passes recover all of x (the last pass's log-det is exact too).
        x = torch.zeros_like(z)
        logdet = z.new_zeros(z.shape[0])
        for _ in range(self.features):
            x, logdet = self._tau(z, self.made(x), inverse=True)
        return x, logdet


def _orders(features: int, layers: int) -> list[Tensor]:
    # alternate the natural and the reversed order, so that every feature gets conditioned on
    natural = torch.arange(features)
    return [natural if i % 2 == 0 else natural.flip(0) for i in range(layers)]


def maf_flow(features: int = 2, layers: int = 4, hidden: int = 64, transform: str = "affine",
             bins: int = 8, bound: float = 4.0) -> Flow:
    """MAF: an ``ElementwiseAffine`` layer, then ``layers`` autoregressive transforms with
    alternately reversed orders. Density in one pass per layer, sampling in ``D``."""
    blocks: list[Bijection] = [ElementwiseAffine(features)]
    blocks += [MaskedAutoregressive(features, hidden=hidden, transform=transform, order=o, bins=bins, bound=bound)
               for o in _orders(features, layers)]
    return Flow(Sequential(*blocks), event_shape=(features,))


def iaf_flow(features: int = 2, layers: int = 4, hidden: int = 64, transform: str = "affine",
             bins: int = 8, bound: float = 4.0) -> Flow:
    """IAF: as :func:`maf_flow` with every autoregressive layer inverted. Sampling in one pass
    per layer, density in ``D``."""
    blocks: list[Bijection] = [ElementwiseAffine(features)]
    blocks += [Inverse(MaskedAutoregressive(features, hidden=hidden, transform=transform, order=o, bins=bins,
                                            bound=bound))
               for o in _orders(features, layers)]
    return Flow(Sequential(*blocks), event_shape=(features,))
