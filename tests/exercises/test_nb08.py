"""The exercise checks of notebook 08 (flowlib/exercises/nb08.py): every check accepts the reference answer
and other correct ways to write it, and rejects plausible wrong ones."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from flowlib.core.testing import check_bijection, perturb
from flowlib.exercises.nb08 import (
    check_conditional_nll,
    check_downsample,
    check_posterior,
    conditional_flow_2d,
    conditional_nll_reference,
    downsample_reference,
    posterior_reference,
)


def not_implemented(*args):
    raise NotImplementedError


# ---- the 2D conditional flow ------------------------------------------------------------------
def test_conditional_flow_2d_is_a_bijection_for_each_condition_and_uses_it():
    flow = perturb(conditional_flow_2d(layers=4, hidden=8), std=0.3, seed=0).double()
    x = torch.randn(6, 2, dtype=torch.float64)
    for value in (-1.0, 2.0):
        check_bijection(flow, x, cond=torch.full((6, 2), value, dtype=torch.float64))
    z0, _ = flow(x, torch.zeros(6, 2, dtype=torch.float64))
    z1, _ = flow(x, torch.ones(6, 2, dtype=torch.float64))
    assert (z0 - z1).abs().max() > 1e-3


# ---- exercise 1 -----------------------------------------------------------------------------
def test_conditional_nll_reference_passes(capsys):
    assert check_conditional_nll(conditional_nll_reference)
    assert "passed" in capsys.readouterr().out


def test_conditional_nll_accepts_another_correct_form():
    def via_distribution(flow, x, cond):
        z, logdet = flow(x, cond)
        base = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        return -(base.log_prob(z).sum(1) + logdet).mean()

    assert check_conditional_nll(via_distribution)


def test_conditional_nll_rejects_wrong_answers(capsys):
    def source_text(flow, x, cond):   # the mistake notebook 08 starts from: no log-det
        z, _ = flow(x, cond)
        return z.pow(2).mean()

    def no_logdet(flow, x, cond):
        z, _ = flow(x, cond)
        return (0.5 * z.pow(2).sum(1) + math.log(2 * math.pi)).mean()

    def wrong_sign(flow, x, cond):
        z, logdet = flow(x, cond)
        return (0.5 * z.pow(2).sum(1) + math.log(2 * math.pi) + logdet).mean()

    def no_constant(flow, x, cond):
        z, logdet = flow(x, cond)
        return (0.5 * z.pow(2).sum(1) - logdet).mean()

    def summed(flow, x, cond):
        return conditional_nll_reference(flow, x, cond) * x.shape[0]

    def per_example(flow, x, cond):
        z, logdet = flow(x, cond)
        return 0.5 * z.pow(2).sum(1) + math.log(2 * math.pi) - logdet

    def detached(flow, x, cond):
        return conditional_nll_reference(flow, x, cond).detach()

    def ignores_the_condition(flow, x, cond):
        return conditional_nll_reference(flow, x, torch.zeros_like(cond))

    for wrong in (source_text, no_logdet, wrong_sign, no_constant, summed, per_example, detached, ignores_the_condition):
        assert not check_conditional_nll(wrong), wrong.__name__
    assert not check_conditional_nll(not_implemented)
    out = capsys.readouterr().out
    assert "not yet right" in out and "not implemented yet" in out and "no gradient" in out


# ---- exercise 2 -----------------------------------------------------------------------------
def test_posterior_reference_passes(capsys):
    assert check_posterior(posterior_reference)
    assert "passed" in capsys.readouterr().out


def test_posterior_accepts_other_correct_forms():
    def stable_by_hand(ll, log_prior):
        a = ll + log_prior
        a = a - a.max(dim=1, keepdim=True).values
        return a.exp() / a.exp().sum(1, keepdim=True)

    def via_logsumexp(ll, log_prior):
        a = ll + log_prior
        return (a - torch.logsumexp(a, dim=1, keepdim=True)).exp()

    assert check_posterior(stable_by_hand)
    assert check_posterior(via_logsumexp)


def test_posterior_rejects_wrong_answers(capsys):
    def no_prior(ll, log_prior):
        return torch.softmax(ll, dim=1)

    def wrong_axis(ll, log_prior):
        return torch.softmax(ll + log_prior, dim=0)

    def naive(ll, log_prior):   # exp of -2000 nats underflows
        p = ll.exp() * log_prior.exp()
        return p / p.sum(1, keepdim=True)

    def prior_as_probability(ll, log_prior):   # adds p(c) instead of log p(c)
        return torch.softmax(ll + log_prior.exp(), dim=1)

    def likelihood_ratio(ll, log_prior):   # argmax is right, the probabilities are not
        return torch.softmax((ll + log_prior) / 10, dim=1)

    for wrong in (no_prior, wrong_axis, naive, prior_as_probability, likelihood_ratio):
        assert not check_posterior(wrong), wrong.__name__
    assert "underflows" in capsys.readouterr().out


# ---- exercise 3 -----------------------------------------------------------------------------
def test_downsample_reference_passes(capsys):
    assert check_downsample(downsample_reference)
    assert "passed" in capsys.readouterr().out
    x = torch.tensor([[[[0, 255], [255, 255]]]], dtype=torch.uint8)
    assert torch.allclose(downsample_reference(x, 1), torch.tensor([[[[0.75]]]]))


def test_downsample_accepts_another_correct_form():
    def by_reshape(x, size):
        k = x.shape[-1] // size
        return x.double().reshape(*x.shape[:2], size, k, size, k).mean((3, 5)) / 255

    assert check_downsample(by_reshape)


def test_downsample_rejects_wrong_answers(capsys):
    def subsample(x, size):
        k = x.shape[-1] // size
        return x[..., ::k, ::k].float() / 255

    def no_scaling(x, size):
        return F.avg_pool2d(x.float(), x.shape[-1] // size)

    def max_pool(x, size):
        return F.max_pool2d(x.float(), x.shape[-1] // size) / 255

    def bilinear(x, size):
        return F.interpolate(x.float() / 255, size=(size, size), mode="bilinear", align_corners=False)

    def only_seven(x, size):
        return F.avg_pool2d(x.float() / 255, 4)

    for wrong in (subsample, no_scaling, max_pool, bilinear, only_seven):
        assert not check_downsample(wrong), wrong.__name__
    assert "[0, 1]" in capsys.readouterr().out
