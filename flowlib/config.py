"""Run-time settings shared by the notebooks: quick mode and the device.

Quick mode (environment variable ``FLOWLIB_QUICK=1``, set by the test command) makes
every notebook run in seconds for CI; unset, the notebooks train long enough to show
results worth looking at.
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch

__all__ = ["is_quick", "quick_or_full", "default_device"]

T = TypeVar("T")


def is_quick() -> bool:
    """True when ``FLOWLIB_QUICK`` is set to 1/true/yes."""
    return os.environ.get("FLOWLIB_QUICK", "").strip().lower() in {"1", "true", "yes"}


def quick_or_full(quick: T, full: T) -> T:
    """``quick`` in quick mode, ``full`` otherwise: ``steps = quick_or_full(50, 3000)``."""
    return quick if is_quick() else full


def default_device() -> torch.device:
    """CUDA if available, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
