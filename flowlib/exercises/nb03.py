"""Notebook 03's exercises: bits per dimension, the unit-scale correction and a logit bin's width, with
reference answers and checks.

A forgotten ``ln 2`` or 256-bin term is rejected (see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .runner import _compare, run_check

__all__ = [
    "bits_per_dim_reference", "bpd_from_unit_scale_reference", "logit_bin_width_reference",
    "check_bits_per_dim", "check_bpd_from_unit_scale", "check_logit_bin_width",
]



def bits_per_dim_reference(log_p: Tensor, num_dims: int) -> Tensor:
    """Notebook 03, exercise 1: ``bpd = -log p / (D ln 2)`` for ``log p`` in nats, shape ``(B,)``."""
    return -log_p / (num_dims * math.log(2))


def bpd_from_unit_scale_reference(log_p_y: float, num_dims: int) -> float:
    """Notebook 03, exercise 2: ``log p_v = log p_y - D log 256`` (``y = v / 256``), then bits/dim."""
    return -(log_p_y - num_dims * math.log(256)) / (num_dims * math.log(2))


def logit_bin_width_reference(k: int, alpha: float) -> float:
    r"""Notebook 03, exercise 3: width of pixel ``k``'s bin ``[k, k+1)/256`` after ``logit(alpha + (1-2 alpha) y)``."""
    def logit(y: float) -> float:
        s = alpha + (1 - 2 * alpha) * y
        return math.log(s) - math.log1p(-s)

    return logit((k + 1) / 256) - logit(k / 256)


def check_bits_per_dim(fn: Callable[[Tensor, int], Tensor]) -> bool:
    """Notebook 03, exercise 1: ``fn(log_p, D)`` must equal ``-log_p / (D ln 2)`` elementwise, shape kept."""

    def check():
        log_p = torch.tensor([-784 * math.log(2), -784 * math.log(256), -1000.0, 250.0], dtype=torch.float64)
        for dims in (784, 3 * 32 * 32):
            _compare(f"my_bits_per_dim(log_p, {dims})", fn(log_p, dims), bits_per_dim_reference(log_p, dims))
        return "1 bit/dim, the raw-bytes 8 bits/dim and two other values agree for D = 784 and D = 3072"

    return run_check("Exercise 1", check, "my_bits_per_dim")


def check_bpd_from_unit_scale(fn: Callable[[float, int], float]) -> bool:
    """Notebook 03, exercise 2: the bits/dim of the integer image from ``log p_y`` of ``y = (x + u) / 256``."""

    def check():
        for log_p_y, dims in [(3800.0, 784), (0.0, 10), (-120.0, 3072)]:
            got, want = float(fn(log_p_y, dims)), bpd_from_unit_scale_reference(log_p_y, dims)
            if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                raise AssertionError(f"log p_y = {log_p_y}, D = {dims}: expected {want:.4f} bits/dim, got {got:.4f}")
        return f"{bpd_from_unit_scale_reference(3800.0, 784):.3f} bits/dim for the colleague's image"

    return run_check("Exercise 2", check, "bpd_from_unit_scale")


def check_logit_bin_width(fn: Callable[[int, float], float]) -> bool:
    """Notebook 03, exercise 3: ``fn(k, alpha)``, the logit-space width of pixel ``k``'s bin, for several ``k, alpha``."""

    def check():
        for k in (0, 1, 128, 255):
            for alpha in (0.05, 1e-5):
                got, want = float(fn(k, alpha)), logit_bin_width_reference(k, alpha)
                if not math.isclose(got, want, rel_tol=1e-6):
                    raise AssertionError(f"k = {k}, alpha = {alpha}: expected a width of {want:.5g}, got {got:.5g}")
        return "8 bins (k = 0, 1, 128, 255; alpha = 0.05 and 1e-5) have the right width"

    return run_check("Exercise 3", check, "logit_bin_width")
