"""Notebook 09's exercises: the detection rate at a false-alarm rate and the per-scale norm statistic,
reference answers and checks.

The notebook shows one negative control for each (see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .runner import run_check

__all__ = ["detection_rate_reference", "check_detection_rate", "norm_statistic_reference", "check_norm_statistic"]


# ---- exercise 1: the detection rate at a fixed false-alarm rate ------------------------------------
def detection_rate_reference(scores_in: Tensor, scores_out: Tensor, false_alarm: float) -> float:
    """Exercise 1: the share of ``scores_out`` above the ``1 - false_alarm`` quantile of ``scores_in``."""
    tau = torch.quantile(scores_in.double(), 1 - false_alarm)
    return (scores_out.double() > tau).double().mean().item()


def check_detection_rate(detection_rate: Callable[[Tensor, Tensor, float], float],
                         extra_cases: Sequence[tuple[Tensor, Tensor, float]] = ()) -> bool:
    """Exercise 1: ``detection_rate(scores_in, scores_out, false_alarm)`` on Gaussian scores at three
    false-alarm rates, and on ``extra_cases`` (the notebook adds real scores); within 0.01."""

    def check() -> str:
        gen = torch.Generator().manual_seed(1)
        cases = [(torch.randn(4000, generator=gen).double(), torch.randn(3000, generator=gen).double() + shift, q)
                 for shift, q in [(1.0, 0.05), (2.0, 0.01), (0.0, 0.2)]]
        for s_in, s_out, q in [*cases, *extra_cases]:
            expected = detection_rate_reference(s_in, s_out, q)
            got = detection_rate(s_in, s_out, q)
            if not isinstance(got, float):
                raise AssertionError(f"return a float, got {type(got).__name__}")
            if not abs(got - expected) <= 0.01:
                raise AssertionError(f"at false_alarm = {q}: got {got:.3f}, expected {expected:.3f}")
        return f"{len(cases) + len(extra_cases)} cases within 0.01"

    return run_check("Exercise 1", check, "detection_rate")


# ---- exercise 2: the typicality statistic by hand -------------------------------------------------
def norm_statistic_reference(latents: Sequence[Tensor]) -> Tensor:
    r"""Exercise 2: ``t_l = (|z_l|^2 - d_l) / sqrt(2 d_l)`` per scale, ``(B, L)`` float64."""
    cols = []
    for z in latents:
        d = z[0].numel()
        cols.append((z.double().flatten(1).pow(2).sum(1) - d) / math.sqrt(2 * d))
    return torch.stack(cols, dim=1)


def check_norm_statistic(my_norm_statistic: Callable[[list[Tensor]], Tensor],
                         latent_shapes: Sequence[tuple[int, ...]]) -> bool:
    """Exercise 2: ``my_norm_statistic(latents)`` on latents of ``latent_shapes`` (per example) at three
    scales, against :func:`norm_statistic_reference` to 1e-6."""

    def check() -> str:
        gen = torch.Generator().manual_seed(2)
        for scale in (1.0, 0.8, 1.3):
            latents = [scale * torch.randn(5, *shape, generator=gen) for shape in latent_shapes]
            mine, ref = my_norm_statistic(latents), norm_statistic_reference(latents)
            if not isinstance(mine, Tensor) or tuple(mine.shape) != tuple(ref.shape):
                shape = tuple(mine.shape) if isinstance(mine, Tensor) else type(mine).__name__
                raise AssertionError(f"shape {shape}, expected {tuple(ref.shape)}")
            if not torch.allclose(mine.double(), ref, atol=1e-6):
                raise AssertionError(f"for latents of scale {scale}: max |difference| = "
                                     f"{(mine.double() - ref).abs().max():.2e}")
        return f"{len(latent_shapes)} latent scales, latents of three spreads, within 1e-6"

    return run_check("Exercise 2", check, "my_norm_statistic")
