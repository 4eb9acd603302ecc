"""The invertible layers, each a :class:`~flowlib.core.bijection.Bijection`, and the conditioner networks inside
them (notebooks 01-05, 10 and 11).
"""

from .actnorm import ActNorm
from .autoregressive import MADE, MaskedAutoregressive, iaf_flow, maf_flow
from .cnf import CNF, cnf_flow
from .coupling import (
    AdditiveCoupling,
    AffineCoupling,
    ChannelAffineCoupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from .dequantize import Logit, UniformDequantization, VariationalDequantization, quantize
from .elementwise import ElementwiseAffine, Tanh
from .glow import GlowStep
from .invconv import InvConv1x1, InvConv1x1LU
from .mixture import ChannelMixtureCoupling, mixture_logistic_logit
from .nets import MLP, ConvNet, GatedResNet
from .splines import ElementwiseSpline, SplineCoupling, rational_quadratic_spline, spline_coupling_flow
from .squeeze import SplitPrior, Squeeze, merge, split

__all__ = [
    "MLP", "ConvNet", "GatedResNet", "ElementwiseAffine", "Tanh", "AdditiveCoupling", "AffineCoupling",
    "ChannelAffineCoupling", "alternating_mask", "channel_mask", "checkerboard_mask", "Logit",
    "UniformDequantization", "VariationalDequantization", "quantize", "SplitPrior", "Squeeze", "merge", "split",
    "ActNorm", "InvConv1x1", "InvConv1x1LU", "GlowStep", "MADE", "MaskedAutoregressive", "iaf_flow", "maf_flow",
    "ElementwiseSpline", "SplineCoupling", "rational_quadratic_spline", "spline_coupling_flow", "CNF", "cnf_flow",
    "ChannelMixtureCoupling", "mixture_logistic_logit",
]
