"""The exercise checks of notebook 10 accept the reference answers and reject wrong ones."""

from __future__ import annotations

import pytest
import torch

from flowlib.exercises.nb10 import check_hutchinson, check_rq_inverse, hutchinson_reference, rq_inverse_reference


def test_rq_inverse_check_accepts_the_reference():
    assert check_rq_inverse(rq_inverse_reference) < 1e-9


def _other_root(y, x_lo, x_hi, y_lo, y_hi, d_lo, d_hi):
    # the quadratic's second root: outside [0, 1]
    w, h = x_hi - x_lo, y_hi - y_lo
    s, dy = h / w, y - y_lo
    curve = d_hi + d_lo - 2 * s
    a, b, c = h * (s - d_lo) + dy * curve, h * d_lo - dy * curve, -s * dy
    return x_lo + w * 2 * c / (-b + (b * b - 4 * a * c).clamp_min(0).sqrt())


def _linear(y, x_lo, x_hi, y_lo, y_hi, d_lo, d_hi):
    # inverting the straight line through the two knots: right at the knots only
    return x_lo + (y - y_lo) / (y_hi - y_lo) * (x_hi - x_lo)


@pytest.mark.parametrize("wrong", [_other_root, _linear, lambda y, *knots: y])
def test_rq_inverse_check_rejects_wrong_answers(wrong):
    with pytest.raises(AssertionError):
        check_rq_inverse(wrong)


def test_hutchinson_check_accepts_the_reference():
    assert check_hutchinson(hutchinson_reference) < 5


def _sum_of_all_entries(f, z, samples):
    # a common slip: grad of f.sum() sums whole rows of the Jacobian, not its diagonal
    z = z.detach().requires_grad_(True)
    return torch.autograd.grad(f(z).sum(), z)[0].sum(1)


def _exact(f, z, samples):
    z = z.detach().requires_grad_(True)
    out = f(z)
    return sum(torch.autograd.grad(out[:, i].sum(), z, retain_graph=True)[0][:, i] for i in range(z.shape[1]))


def _gaussian_norm(f, z, samples):
    # eps^T eps: the trace of the identity, whatever f is
    eps = torch.randn(samples, *z.shape, dtype=z.dtype)
    return (eps * eps).sum(-1).mean(0)


def _one_eps(f, z, samples):
    # eps^T J 1: random, but with mean zero
    z = z.detach().requires_grad_(True)
    out = f(z)
    eps = [torch.randint(0, 2, z.shape).double() * 2 - 1 for _ in range(samples)]
    return sum(torch.autograd.grad(out, z, e, retain_graph=True)[0].sum(1) for e in eps) / samples


@pytest.mark.parametrize("wrong", [_sum_of_all_entries, _exact, _gaussian_norm, _one_eps])
def test_hutchinson_check_rejects_wrong_answers(wrong):
    with pytest.raises(AssertionError):
        check_hutchinson(wrong)
