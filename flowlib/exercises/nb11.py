"""Notebook 11's exercises: the conditional flow-matching loss and a fixed-step Euler sampler, reference answers and
checks.

Rejected wrong answers include the velocity with the wrong sign, a path that ignores ``sigma_min``, ``t`` and
``1 - t`` swapped, and an Euler step that reads the field at the end of the step (see :mod:`flowlib.exercises`
for how every exercise module works).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..layers.flow_matching import LinearPath, cfm_loss, sample_ode
from .runner import _compare, run_check

__all__ = ["cfm_loss_reference", "check_cfm_loss", "euler_reference", "check_euler"]

Field = Callable[[Tensor, Tensor], Tensor]


def cfm_loss_reference(field: Field, x0: Tensor, x1: Tensor, t: Tensor, sigma_min: float) -> Tensor:
    """Exercise 1: ``mean((v(t, x_t) - u_t)^2)`` with ``x_t = (1 - (1 - sigma_min) t) x0 + t x1`` and
    ``u_t = x1 - (1 - sigma_min) x0``; ``x0, x1: (B, D)``, ``t: (B,)``."""
    tt = t[:, None]
    xt = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    return (field(t, xt) - (x1 - (1 - sigma_min) * x0)).pow(2).mean()


def _probe_field(t: Tensor, x: Tensor) -> Tensor:
    # depends on t and on x non-linearly, so a wrong x_t or a wrong time changes the loss
    t = t.reshape(-1, 1) if t.dim() else t
    return torch.sin(3 * x.flip(1)) + 2 * t * x - t


def check_cfm_loss(my_cfm_loss: Callable[[Field, Tensor, Tensor, Tensor, float], Tensor]) -> bool:
    """Exercise 1: ``my_cfm_loss(field, x0, x1, t, sigma_min)`` against the reference at ``sigma_min`` 0 and 0.1."""

    def check() -> str:
        g = torch.Generator().manual_seed(11)
        x0, x1 = torch.randn(256, 2, generator=g, dtype=torch.float64), torch.randn(256, 2, generator=g, dtype=torch.float64)
        t = torch.rand(256, generator=g, dtype=torch.float64)
        for sigma_min in (0.0, 0.1):
            got = my_cfm_loss(_probe_field, x0, x1, t, sigma_min)
            want = cfm_loss(_probe_field, x1, LinearPath(sigma_min), x0=x0, t=t)
            _compare(f"the loss with sigma_min = {sigma_min}", torch.as_tensor(got).reshape(()), want.reshape(()), 1e-10)
        return f"the loss matches at sigma_min = 0 and 0.1 (for example {want.item():.4f})"

    return run_check("Exercise 1", check, "my_cfm_loss")


def euler_reference(field: Field, x0: Tensor, steps: int) -> Tensor:
    """Exercise 2: ``steps`` Euler steps of ``dx/dt = v(t, x)`` from ``t = 0`` to 1, the field read at each step's start."""
    h = 1.0 / steps
    x = x0
    for k in range(steps):
        x = x + h * field(torch.tensor(k * h, dtype=x0.dtype), x)
    return x


def check_euler(my_euler: Callable[[Field, Tensor, int], Tensor]) -> bool:
    """Exercise 2: ``my_euler(field, x0, steps)`` against the Euler solution at 1, 3 and 10 steps, to 1e-10."""

    def check() -> str:
        x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
        for steps in (1, 3, 10):
            got = my_euler(_probe_field, x0, steps)
            want, _ = sample_ode(_probe_field, x0, steps, "euler")
            _compare(f"x(1) after {steps} Euler step{'s' if steps > 1 else ''}", got, want, 1e-10)
        return "x(1) matches the Euler solution after 1, 3 and 10 steps"

    return run_check("Exercise 2", check, "my_euler")
