"""Every bijection in flowlib with a small float64 input for the shared checker.

``CASES`` maps a name to a factory returning ``(layer, x)``. tests/layers/test_all_bijections.py
runs ``check_bijection`` on each and checks that every Bijection subclass defined in
flowlib appears here, so a new layer cannot skip the checker.
"""

from __future__ import annotations

import torch

import flowlib as fl
from flowlib.core.testing import perturb
from flowlib.models.conditions import BlockSumResidual, downsample


def _vec(b: int = 3, d: int = 4) -> torch.Tensor:
    return torch.randn(b, d, dtype=torch.float64)


def _img(b: int = 2, c: int = 4, h: int = 4, w: int = 4) -> torch.Tensor:
    return torch.randn(b, c, h, w, dtype=torch.float64)


def _elementwise_affine():
    return perturb(fl.ElementwiseAffine(4)), _vec()


def _tanh():
    return fl.Tanh(), _vec()


def _additive_vec():
    return perturb(fl.AdditiveCoupling(fl.alternating_mask(4), fl.MLP(4, 4, hidden=8))), _vec()


def _affine_vec():
    return perturb(fl.AffineCoupling(fl.alternating_mask(4, 1), fl.MLP(4, 8, hidden=8)), std=0.5), _vec()


def _affine_checkerboard():
    layer = fl.AffineCoupling(fl.checkerboard_mask(4, 4), fl.ConvNet(4, 8, hidden=8))
    return perturb(layer, std=0.3), _img()


def _affine_channel_gated():
    layer = fl.AffineCoupling(fl.channel_mask(4), fl.GatedResNet(4, 8, hidden=8, blocks=1))
    return perturb(layer, std=0.3), _img()


def _sequential():
    layer = fl.Sequential(fl.ElementwiseAffine(4), fl.AffineCoupling(fl.alternating_mask(4), fl.MLP(4, 8, hidden=8)),
                          fl.AdditiveCoupling(fl.alternating_mask(4, 1), fl.MLP(4, 4, hidden=8)))
    return perturb(layer, std=0.3), _vec()


def _inverse():
    return fl.Inverse(perturb(fl.AffineCoupling(fl.alternating_mask(4), fl.MLP(4, 8, hidden=8)))), _vec()


CASES = {
    "ElementwiseAffine": _elementwise_affine,
    "Tanh": _tanh,
    "AdditiveCoupling": _additive_vec,
    "AffineCoupling": _affine_vec,
    "AffineCoupling-checkerboard-image": _affine_checkerboard,
    "AffineCoupling-channel-gated": _affine_channel_gated,
    "AffineCoupling-learned-bound": lambda: (
        perturb(fl.AffineCoupling(fl.checkerboard_mask(4, 4), fl.ConvNet(4, 8, hidden=8), learn_bound=True), std=0.3),
        _img()),
    "Sequential": _sequential,
    "Inverse": _inverse,
}


# ---- image-flow building blocks (notebooks 03-05) ----
from flowlib.layers.actnorm import ActNorm  # noqa: E402
from flowlib.layers.dequantize import Logit  # noqa: E402
from flowlib.layers.glow import GlowStep  # noqa: E402
from flowlib.layers.invconv import InvConv1x1, InvConv1x1LU  # noqa: E402
from flowlib.layers.squeeze import SplitPrior, Squeeze  # noqa: E402


def _initialised_actnorm():
    layer = ActNorm(4)
    layer.initialize(_img(8) * 3 + 1)
    return perturb(layer, std=0.3), _img()


CASES.update({
    "Logit": lambda: (Logit(alpha=0.05), torch.rand(2, 4, 4, 4, dtype=torch.float64)),
    "Squeeze": lambda: (Squeeze(), _img()),
    "SplitPrior": lambda: (perturb(SplitPrior(4), std=0.3), _img()),
    "ActNorm": _initialised_actnorm,
    "ActNorm-vector": lambda: (perturb(ActNorm(4), std=0.3), _vec()),
    "InvConv1x1": lambda: (perturb(InvConv1x1(4), std=0.3), _img()),
    "InvConv1x1LU": lambda: (perturb(InvConv1x1LU(4), std=0.3), _img()),
    "InvConv1x1LU-vector": lambda: (perturb(InvConv1x1LU(4), std=0.3), _vec()),
    "GlowStep": lambda: (perturb(GlowStep(4, hidden=8), std=0.1), _img()),
    "GlowStep-plain": lambda: (perturb(GlowStep(4, hidden=8, lu=False), std=0.1), _img()),
    "GlowStep-masked-learned-bound": lambda: (
        perturb(GlowStep(4, hidden=8, split=False, learn_bound=True), std=0.1), _img()),
    "ChannelAffineCoupling": lambda: (perturb(fl.ChannelAffineCoupling(4, fl.GatedResNet(2, 4, hidden=8)), std=0.3), _img()),
    "ChannelAffineCoupling-odd-learned-bound": lambda: (
        perturb(fl.ChannelAffineCoupling(5, fl.GatedResNet(2, 6, hidden=8), learn_bound=True), std=0.3), _img(c=5)),
    "GlowStep-spline": lambda: (perturb(GlowStep(4, hidden=8, coupling="spline", bins=3), std=0.3), 2 * _img()),
})


# ---- reference answers of the notebook exercises (notebooks 01-02) ----
from flowlib.exercises.nb01 import LeakyReLUReference  # noqa: E402
from flowlib.exercises.nb02 import HalfCouplingReference  # noqa: E402

CASES.update({
    "LeakyReLUReference": lambda: (LeakyReLUReference(0.3), _vec(4, 3)),
    "HalfCouplingReference": lambda: (perturb(HalfCouplingReference(5), std=0.3), _vec(3, 5)),
})


# ---- reference answers of the notebook exercises (notebooks 03-05) ----
from flowlib.exercises.nb04 import CheckerSqueezeReference  # noqa: E402
from flowlib.exercises.nb05 import ActNormMedianReference, ChannelShiftReference  # noqa: E402

CASES.update({
    "CheckerSqueezeReference": lambda: (CheckerSqueezeReference(), _img(c=1)),
    "ChannelShiftReference": lambda: (ChannelShiftReference(3), _img(c=4)),
    "ActNormMedianReference": lambda: (perturb(ActNormMedianReference(4), std=0.3), _img()),
})


# ---- beyond coupling layers (notebook 10) ----
from flowlib.layers.autoregressive import MaskedAutoregressive  # noqa: E402
from flowlib.layers.cnf import CNF  # noqa: E402
from flowlib.layers.mixture import ChannelMixtureCoupling  # noqa: E402
from flowlib.layers.splines import ChannelSplineCoupling, ElementwiseSpline, SplineCoupling  # noqa: E402

_ORDER = torch.tensor([2, 0, 3, 1])

CASES.update({
    "ChannelSplineCoupling-odd": lambda: (
        perturb(ChannelSplineCoupling(5, fl.GatedResNet(2, ChannelSplineCoupling.out_channels(5, 4), hidden=8), bins=4,
                                      learn_bound=True), std=0.5), 2 * _img(c=5)),
    "ChannelMixtureCoupling-odd": lambda: (
        perturb(ChannelMixtureCoupling(5, fl.GatedResNet(2, ChannelMixtureCoupling.out_channels(5, 3), hidden=8),
                                       components=3, learn_bound=True), std=0.2), 2 * _img(c=5)),
    "ElementwiseSpline": lambda: (perturb(ElementwiseSpline(4, bins=5), std=1.0), 2 * _vec()),
    "SplineCoupling": lambda: (perturb(SplineCoupling(fl.alternating_mask(4), fl.MLP(4, 2 * 14, hidden=8), bins=5),
                                       std=0.5), 2 * _vec()),
    "MaskedAutoregressive": lambda: (perturb(MaskedAutoregressive(4, hidden=8, order=_ORDER), std=0.3), _vec()),
    "MaskedAutoregressive-spline": lambda: (
        perturb(MaskedAutoregressive(4, hidden=8, transform="spline", bins=5, order=_ORDER), std=0.3), 2 * _vec()),
    "Inverse-of-MaskedAutoregressive-IAF": lambda: (
        fl.Inverse(perturb(MaskedAutoregressive(4, hidden=8, order=_ORDER), std=0.3)), _vec()),
    # an ODE solve is exact only up to the solver's tolerance: solve tightly enough for the default check
    # (tests/layers/test_cnf.py checks looser solves with a tolerance matched to the solver). The Hutchinson trace is a
    # random estimate, different in each solve, so only the exact trace can pass this check.
    "CNF": lambda: (perturb(CNF(2, hidden=8, rtol=1e-10, atol=1e-10), std=0.5), _vec(3, 2)),
})


# ---- conditional layers (notebook 08): factories return (layer, x, cond), checked for that fixed cond ----
from flowlib.layers.squeeze import ConditionalPrior  # noqa: E402


def _cond_map(b: int = 2) -> torch.Tensor:
    return torch.randn(b, 3, 4, 4, dtype=torch.float64)


def _cond_vec(b: int = 2) -> torch.Tensor:
    return torch.randn(b, 3, dtype=torch.float64)


CONDITIONAL_CASES = {
    "AffineCoupling-conditional": lambda: (
        perturb(fl.AffineCoupling(fl.checkerboard_mask(4, 4), fl.GatedResNet(4, 8, hidden=8, blocks=1, cond_channels=3)),
                std=0.3), _img(), _cond_map()),
    "ChannelAffineCoupling-conditional": lambda: (
        perturb(fl.ChannelAffineCoupling(4, fl.GatedResNet(2, 4, hidden=8, cond_channels=3)), std=0.3), _img(),
        _cond_vec()),
    "GlowStep-conditional": lambda: (perturb(GlowStep(4, hidden=8, cond_channels=3), std=0.1), _img(), _cond_map()),
    "GlowStep-masked-conditional": lambda: (
        perturb(GlowStep(4, hidden=8, split=False, cond_channels=3), std=0.1), _img(), _cond_vec()),
    "SplitPrior-conditional": lambda: (perturb(SplitPrior(4, cond_channels=3), std=0.3), _img(), _cond_vec()),
    "ConditionalPrior": lambda: (perturb(ConditionalPrior(4, 3), std=0.3), _img(), _cond_map()),
    "Sequential-conditional": lambda: (
        perturb(fl.Sequential(ActNorm(4), Squeeze(), GlowStep(16, hidden=8, cond_channels=3)), std=0.1), _img(),
        torch.randn(2, 3, 2, 2, dtype=torch.float64)),
}
CASES.update(CONDITIONAL_CASES)
def dequantized_logits(x: torch.Tensor, alpha: float = 1e-5) -> torch.Tensor:
    """Integer images -> logit((x + u) / 256) with a margin ``alpha``, as the dequantization makes them."""
    s = alpha + (1 - 2 * alpha) * (x.double() + torch.rand(x.shape, dtype=torch.float64)) / 256
    return torch.log(s) - torch.log1p(-s)


def _block_sum_case():
    # its domain is the images that fit the thumbnail, so it gets such images, not N(0, I) noise; another
    # condition puts them outside the domain, so it is not in CONDITIONAL_CASES (tests/models/test_conditions.py tests it)
    x = torch.randint(0, 256, (2, 1, 4, 4))
    return BlockSumResidual(4, 2, alpha=1e-5), dequantized_logits(x), downsample(x, 2).double()


CASES["BlockSumResidual-conditional"] = _block_sum_case
