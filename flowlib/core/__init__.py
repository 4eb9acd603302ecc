"""The interface every flow is built on (notebooks 01-02): ``Bijection`` and its composition, the base
distribution, ``Flow`` (a density from a bijection and a base), and ``check_bijection``, the one checker every
layer passes.
"""

from .bijection import Bijection, Inverse, Sequential, check_input
from .distributions import StandardNormal
from .flow import Flow, bits_per_dim
from .testing import check_bijection

__all__ = [
    "Bijection", "Inverse", "Sequential", "check_input", "StandardNormal", "Flow", "bits_per_dim", "check_bijection",
]
