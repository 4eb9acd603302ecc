"""flowlib: a small, tested library of normalizing flows for the course notebooks."""

from . import plot, testing
from .actnorm import ActNorm
from .autoregressive import MADE, MaskedAutoregressive, iaf_flow, maf_flow
from .bijection import Bijection, Inverse, Sequential, check_input
from .cnf import CNF, cnf_flow
from .config import default_device, is_quick, quick_or_full, reuse_freed_memory
from .coupling import (
    AdditiveCoupling,
    AffineCoupling,
    ChannelAffineCoupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from .data import DatasetNotFoundError, load_images
from .dequantize import Logit, UniformDequantization, VariationalDequantization, quantize
from .distributions import StandardNormal
from .elementwise import ElementwiseAffine, Tanh
from .flow import Flow, bits_per_dim
from .glow import GlowStep
from .invconv import InvConv1x1, InvConv1x1LU
from .models2d import coupling_flow_2d
from .multiscale import SplitPrior, Squeeze, merge, split
from .nets import MLP, ConvNet, GatedResNet
from .splines import ElementwiseSpline, SplineCoupling, rational_quadratic_spline, spline_coupling_flow
from .testing import check_bijection
from .toy import TOY_DATASETS, make_toy
from .training import History, NonFiniteLossError, fit

__version__ = "0.1.0"

reuse_freed_memory()  # faster on Linux CPUs; see its docstring

__all__ = [
    "Bijection", "Sequential", "Inverse", "check_input",
    "default_device", "is_quick", "quick_or_full", "reuse_freed_memory",
    "AdditiveCoupling", "AffineCoupling", "ChannelAffineCoupling", "alternating_mask", "channel_mask", "checkerboard_mask",
    "StandardNormal", "ElementwiseAffine", "Tanh", "Flow", "bits_per_dim",
    "coupling_flow_2d", "MLP", "ConvNet", "GatedResNet", "check_bijection", "TOY_DATASETS", "make_toy",
    "ActNorm", "Logit", "UniformDequantization", "VariationalDequantization", "quantize", "GlowStep",
    "InvConv1x1", "InvConv1x1LU", "SplitPrior", "Squeeze", "merge", "split",
    "DatasetNotFoundError", "load_images",
    "MADE", "MaskedAutoregressive", "maf_flow", "iaf_flow", "ElementwiseSpline", "SplineCoupling",
    "rational_quadratic_spline", "spline_coupling_flow", "CNF", "cnf_flow",
    "History", "NonFiniteLossError", "fit", "plot", "testing", "__version__",
]
