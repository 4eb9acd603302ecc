"""Run-time settings shared by the notebooks: quick mode, the device, how the CPU's memory is reused, the version.

Quick mode (environment variable ``FLOWLIB_QUICK=1``, set by the test command) makes
every notebook run in seconds for CI; unset, the notebooks train long enough to show
results worth looking at.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import TypeVar

import torch

__all__ = ["is_quick", "quick_or_full", "default_device", "reuse_freed_memory", "__version__"]

__version__ = "0.1.0"  # also in pyproject.toml; recorded in every checkpoint

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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest value glibc accepts on 64-bit systems
_TRIM_THRESHOLD = 512 << 20


def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB for reuse, instead of unmapping them at once.

    Out of the box, glibc gives every large allocation its own fresh pages (``mmap``) and hands them
    back to the kernel on ``free``. A forward pass of the default model on a batch of images
    allocates activations of several MiB, so each pass page-faults them in again and the kernel
    zero-fills them: evaluating 1,000 MNIST test images at batch 500 spent more time in the kernel
    than computing (``benchmarks/README.md``, "Evaluation speed"). With the thresholds raised, the
    same memory is reused from the heap; up to 512 MiB of freed memory may stay with the process.

    ``import flowlib`` calls this once. It changes how fast, never what is computed. Returns True
    where it took effect (Linux with glibc), False elsewhere or when the environment variable
    ``FLOWLIB_MALLOC=default`` asks to leave glibc's settings alone.
    """
    if not sys.platform.startswith("linux") or os.environ.get("FLOWLIB_MALLOC", "").strip().lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
