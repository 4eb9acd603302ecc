"""Notebook 10's exercises: the inverse of a rational-quadratic bin and the Hutchinson trace estimator,
reference answers and checks.

Unlike the other modules' checks, these raise ``AssertionError`` with a hint and return the error they found;
the notebook runs them through :func:`~flowlib.exercises.runner.run_check` and shows each rejecting a plausible
wrong answer (see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..layers.cnf import exact_trace
from ..layers.splines import rational_quadratic_spline, spline_knots

__all__ = ["check_rq_inverse", "check_hutchinson", "rq_inverse_reference", "hutchinson_reference"]


def rq_inverse_reference(y: Tensor, x_lo: Tensor, x_hi: Tensor, y_lo: Tensor, y_hi: Tensor, d_lo: Tensor,
                         d_hi: Tensor) -> Tensor:
    """Exercise 1: invert one rational-quadratic bin by the root of its quadratic in ``xi``."""
    w, h = x_hi - x_lo, y_hi - y_lo
    s = h / w
    dy = y - y_lo
    curve = d_hi + d_lo - 2 * s
    a = h * (s - d_lo) + dy * curve
    b = h * d_lo - dy * curve
    c = -s * dy
    # the root in [0, 1] as 2c / (-b - sqrt(disc)): the textbook (-b + sqrt(disc)) / 2a divides by a ~ 0
    xi = 2 * c / (-b - (b * b - 4 * a * c).clamp_min(0).sqrt())
    return x_lo + xi * w


def check_rq_inverse(rq_inverse: Callable[..., Tensor], n: int = 2000, seed: int = 0) -> float:
    """Exercise 1: ``rq_inverse(y, x_lo, x_hi, y_lo, y_hi, d_lo, d_hi)`` must return the ``x`` in
    ``[x_lo, x_hi]`` that one bin maps to ``y``, to 1e-9 in float64, at bin edges too.

    Returns the largest error found.
    """
    g = torch.Generator().manual_seed(seed)
    bins = 6
    raw = [3 * torch.randn(n, k, generator=g, dtype=torch.float64) for k in (bins, bins, bins - 1)]
    kx, ky, kd = spline_knots(*raw, bound=3.0)
    k = torch.randint(0, bins, (n, 1), generator=g)
    lo, hi = (lambda v: v.gather(1, k)[:, 0]), (lambda v: v.gather(1, k + 1)[:, 0])
    xi = torch.rand(n, generator=g, dtype=torch.float64)
    xi[:20], xi[20:40] = 0.0, 1.0  # both edges of the bin
    x = lo(kx) + xi * (hi(kx) - lo(kx))
    y, _ = rational_quadratic_spline(x, *raw, bound=3.0)
    got = rq_inverse(y, lo(kx), hi(kx), lo(ky), hi(ky), lo(kd), hi(kd))
    if not isinstance(got, Tensor) or got.shape != x.shape:
        raise AssertionError(f"rq_inverse must return a tensor of shape {tuple(x.shape)}")
    finite = torch.isfinite(got)
    err = (got - x)[finite].abs().max().item() if finite.any() else float("inf")
    if not (finite.all() and err < 1e-9):
        raise AssertionError(f"rq_inverse is off by up to {err:.2e} (want < 1e-9) and returns NaN or inf at "
                             f"{(~finite).sum().item()} of {n} points: check the coefficients a, b, c, which root "
                             f"of the quadratic lies in [0, 1], and that the formula never divides by a ~ 0")
    return err


def hutchinson_reference(f: Callable[[Tensor], Tensor], z: Tensor, samples: int) -> Tensor:
    """Exercise 2: the mean of ``samples`` Rademacher estimates ``eps^T (df/dz) eps``, shape ``(B,)``."""
    z = z.detach().requires_grad_(True)
    out = f(z)
    total = z.new_zeros(z.shape[0])
    for _ in range(samples):
        eps = torch.randint(0, 2, z.shape, device=z.device).to(z.dtype) * 2 - 1
        vjp = torch.autograd.grad(out, z, eps, retain_graph=True)[0]
        total = total + (vjp * eps).sum(1)
    return (total / samples).detach()


def check_hutchinson(hutchinson: Callable[[Callable[[Tensor], Tensor], Tensor, int], Tensor], seed: int = 0) -> float:
    """Exercise 2: ``hutchinson(f, z, samples)`` must be an unbiased, noisy estimate of ``tr(df/dz)``.

    Uses a map whose Jacobian has large off-diagonal entries (so the sum of all entries, or
    ``D``, differ from the trace), checks the mean over many samples against the exact trace
    within 5 standard errors, and checks that a single sample is not exact (a learner who
    computes the exact trace has not written the estimator). Returns the largest z-score.
    """
    torch.manual_seed(seed)
    d = 4
    a = torch.tensor([[0.5, 3.0, -2.0, 1.0], [-1.0, -0.2, 4.0, 0.0], [2.5, 1.0, 1.5, -3.0], [0.0, 2.0, -1.0, -0.8]],
                     dtype=torch.float64)

    def f(v: Tensor) -> Tensor:
        return torch.tanh(v @ a.T) + 0.3 * v

    z = torch.randn(3, d, dtype=torch.float64)
    zz = z.detach().requires_grad_(True)
    exact = exact_trace(f(zz), zz).detach()
    single = torch.stack([torch.as_tensor(hutchinson(f, z, 1)).detach() for _ in range(200)])  # (200, B)
    if single.shape != (200, 3):
        raise AssertionError("hutchinson must return one estimate per example, shape (B,)")
    if single.std(0).min() < 1e-6:
        raise AssertionError("a single-sample estimate never varies: this is not a random estimator (exact trace?)")
    many = torch.as_tensor(hutchinson(f, z, 4000)).detach()
    stderr = single.std(0) / 4000 ** 0.5
    zscore = ((many - exact).abs() / stderr).max().item()
    if not zscore < 5:
        raise AssertionError(f"the mean of 4000 samples {many.tolist()} is not the trace {exact.tolist()} "
                             f"({zscore:.1f} standard errors away): is E[eps eps^T] = I, and is it eps^T J eps?")
    return zscore
