"""Notebook 08's exercises: the conditional NLL, a Bayes classifier's posterior and a low-resolution copy,
reference answers and checks.

Rejected wrong answers include the source text's ``mean(z**2)`` loss without the log-determinant, a posterior that
forgets the prior or normalises over the wrong axis, and a copy made by subsampling (see :mod:`flowlib.exercises`
for how every exercise module works).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..core.bijection import Bijection, Sequential
from ..core.testing import perturb
from ..layers.coupling import AffineCoupling, alternating_mask
from ..layers.nets import MLP
from ..models.conditions import downsample
from .runner import _compare, run_check

__all__ = ["conditional_flow_2d", "conditional_nll_reference", "check_conditional_nll", "posterior_reference",
           "check_posterior", "downsample_reference", "check_downsample"]


def conditional_flow_2d(layers: int = 6, hidden: int = 64, cond_features: int = 2) -> Sequential:
    """Affine couplings on 2D points whose conditioners also see a condition ``(B, cond_features)``.

    ``flow(x, cond) -> (z, logdet)`` and ``flow.inverse(z, cond) -> (x, logdet)`` for ``x: (B, 2)``;
    for every fixed ``cond`` it is a bijection of ``x`` (notebook 08, section 1).
    """
    return Sequential(*[AffineCoupling(alternating_mask(2, parity=i % 2),
                                       MLP(2, 4, hidden=hidden, cond_features=cond_features)) for i in range(layers)])


# ---- exercise 1: the conditional negative log-likelihood -------------------------------------
def conditional_nll_reference(flow: Bijection, x: Tensor, cond: Tensor) -> Tensor:
    r"""Notebook 08, exercise 1: ``-mean_i log p(x_i | c_i)`` in nats, a scalar that training can minimise.

    ``log p(x | c) = log N(f(x; c); 0, I) + log|det df(x; c)/dx|`` with ``z, logdet = flow(x, cond)``.
    """
    z, logdet = flow(x, cond)
    log_normal = -0.5 * z.pow(2).flatten(1).sum(1) - 0.5 * z[0].numel() * math.log(2 * math.pi)
    return -(log_normal + logdet).mean()


def check_conditional_nll(fn: Callable[[Bijection, Tensor, Tensor], Tensor]) -> bool:
    """Compare ``fn(flow, x, cond)`` with the exact mean negative log-likelihood on two random conditional flows.

    The flows are perturbed away from the identity (a fresh flow has ``logdet = 0``, where a loss
    without the log-det would pass), in float64, on points far from the origin and near it. The
    result must be a scalar that carries a gradient to the flow's parameters.
    """

    def check() -> str:
        for seed in (1, 2):
            flow = perturb(conditional_flow_2d(layers=4, hidden=16), std=0.3, seed=seed).double()
            gen = torch.Generator().manual_seed(seed)
            x = 2 * torch.randn(64, 2, generator=gen, dtype=torch.float64)
            cond = torch.randn(64, 2, generator=gen, dtype=torch.float64)
            expected = conditional_nll_reference(flow, x, cond).detach()
            got = fn(flow, x, cond)
            if not isinstance(got, Tensor) or got.dim() != 0:
                shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
                raise AssertionError(f"return one number (a 0-d tensor, the mean over the batch), got {shape}")
            if not got.requires_grad:
                raise AssertionError("the result carries no gradient: compute it from flow(x, cond) without "
                                     "torch.no_grad() or .item(), so that training can minimise it")
            _compare("the mean negative log-likelihood", got.detach().double(), expected)
        return "your loss equals -mean log p(x | c) (nats) on two random conditional flows"

    return run_check("Exercise 1", check, "the function")


# ---- exercise 2: Bayes' rule with a class prior ----------------------------------------------
def posterior_reference(log_likelihoods: Tensor, log_prior: Tensor) -> Tensor:
    r"""Notebook 08, exercise 2: ``p(c | x) = p(x | c) p(c) / sum_c' p(x | c') p(c')``, ``(N, C)``.

    ``log_likelihoods: (N, C)`` holds ``log p(x | c)`` in nats, ``log_prior: (C,)`` holds ``log p(c)``.
    A softmax over the classes of ``log p(x | c) + log p(c)``: the log-likelihoods of a flow differ by
    hundreds of nats, so exponentiating them first would overflow or underflow.
    """
    return torch.softmax(log_likelihoods + log_prior, dim=1)


def check_posterior(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Compare ``fn(log_likelihoods, log_prior)`` with Bayes' rule on flow-sized numbers and a non-uniform prior."""

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        cases = []
        for n, c, spread in [(6, 10, 3.0), (5, 3, 1.0), (4, 10, 400.0)]:  # the last: as far apart as a flow's
            ll = -2000 + spread * torch.randn(n, c, generator=gen, dtype=torch.float64)
            log_prior = torch.log_softmax(2 * torch.randn(c, generator=gen, dtype=torch.float64), dim=0)
            cases.append((ll, log_prior))
        for ll, log_prior in cases:
            got = fn(ll.clone(), log_prior.clone())
            if isinstance(got, Tensor) and got.shape == ll.shape and not torch.isfinite(got).all():
                raise AssertionError("your posterior has NaN or inf entries for log-likelihoods around -2000 nats: "
                                     "exp() of such numbers underflows to 0; subtract the largest first (or use a "
                                     "softmax)")
            _compare(f"p(c | x) for {ll.shape[0]} images and {ll.shape[1]} classes", got, posterior_reference(ll, log_prior),
                     tol=1e-9)
        return "your posterior follows Bayes' rule, with the prior, for log-likelihoods of any size"

    return run_check("Exercise 2", check, "the function")


# ---- exercise 3: the low-resolution copy -----------------------------------------------------
def downsample_reference(x: Tensor, size: int) -> Tensor:
    """Notebook 08, exercise 3: the ``size x size`` block averages of uint8 images, intensities in ``[0, 1]``."""
    return downsample(x, size)


def check_downsample(fn: Callable[[Tensor, int], Tensor]) -> bool:
    """Compare ``fn(x, size)`` with :func:`flowlib.models.conditions.downsample` for ``size`` 7 and 14 on random images."""

    def check() -> str:
        x = torch.randint(0, 256, (5, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        for size in (7, 14):
            got = fn(x.clone(), size)
            if isinstance(got, Tensor) and got.shape == (5, 1, size, size) and got.max() > 1:
                raise AssertionError(f"values up to {got.max().item():.4g}: the condition holds intensities in [0, 1]")
            _compare(f"the {size}x{size} copy", got, downsample_reference(x, size).double(), tol=1e-6)
        return "your low-resolution copies equal the block averages that the super-resolution models are given"

    return run_check("Exercise 3", check, "the function")
