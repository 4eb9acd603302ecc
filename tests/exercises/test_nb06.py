"""The exercise checks of notebook 06 accept the reference answers and reject plausible wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.exercises.nb06 import (
    ScriptedLogProb,
    check_importance_bpd,
    check_latent_shapes,
    importance_bpd_reference,
    latent_shapes_reference,
)
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow


@pytest.fixture(scope="module")
def tiny_model() -> MultiScaleFlow:
    torch.manual_seed(0)
    model = fl.testing.perturb(MultiScaleFlow(FlowConfig(hidden=4, steps_per_level=1)), std=0.01, seed=0)
    images = torch.randint(0, 256, (16, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        model.log_prob(images)  # ActNorm initialisation
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(0, 256, (8, 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def not_implemented(*args):
    raise NotImplementedError


# ---- notebook 06, exercise 1 --------------------------------------------------------------
def test_latent_shapes_reference_passes(capsys):
    assert check_latent_shapes(latent_shapes_reference)
    assert "passed" in capsys.readouterr().out


def test_latent_shapes_rejects_wrong_answers(capsys):
    def split_every_level(config):   # also splits after the last level
        c, s, shapes = config.channels, config.size, []
        for _ in range(config.levels):
            c, s = 4 * c, s // 2
            shapes.append((c // 2, s, s))
            c //= 2
        return shapes + [(c, s, s)]

    def coarse_first(config):
        return latent_shapes_reference(config)[::-1]

    def two_levels_only(config):
        return [(2, config.size // 2, config.size // 2), (8, config.size // 4, config.size // 4)]

    for wrong in (split_every_level, coarse_first, two_levels_only):
        assert not check_latent_shapes(wrong), wrong.__name__
        assert "not yet right" in capsys.readouterr().out
    assert not check_latent_shapes(not_implemented)
    assert "not implemented" in capsys.readouterr().out


# ---- notebook 06, exercise 2 --------------------------------------------------------------
def vectorised_importance_bpd(model, x, samples):
    # one call on a repeated batch: draws its noise in another order than the loop
    log_probs = model.log_prob(x.repeat(samples, 1, 1, 1)).view(samples, len(x))
    return -(torch.logsumexp(log_probs, 0) - math.log(samples)) / (x[0].numel() * math.log(2))


def interleaved_importance_bpd(model, x, samples):
    log_probs = model.log_prob(x.repeat_interleave(samples, 0)).view(len(x), samples)
    return -(torch.logsumexp(log_probs, 1) - math.log(samples)) / (model.num_dims * math.log(2))


def test_importance_bpd_accepts_every_correct_answer(tiny_model, images, capsys):
    for right in (importance_bpd_reference, vectorised_importance_bpd, interleaved_importance_bpd):
        assert check_importance_bpd(right, tiny_model, images), right.__name__
        assert "passed" in capsys.readouterr().out


def test_importance_bpd_rejects_wrong_answers(tiny_model, images, capsys):
    def average_of_bpds(model, x, samples):   # the average outside the logarithm
        return torch.stack([model.bits_per_dim(x) for _ in range(samples)]).mean(0)

    def without_log_k(model, x, samples):
        lp = torch.stack([model.log_prob(x) for _ in range(samples)])
        return -torch.logsumexp(lp, 0) / (x[0].numel() * math.log(2))

    def in_nats(model, x, samples):
        lp = torch.stack([model.log_prob(x) for _ in range(samples)])
        return -(torch.logsumexp(lp, 0) - math.log(samples)) / x[0].numel()

    def one_sample_only(model, x, samples):
        return model.bits_per_dim(x)

    def best_sample(model, x, samples):
        lp = torch.stack([model.log_prob(x) for _ in range(samples)])
        return -lp.max(0).values / (x[0].numel() * math.log(2))

    def uses_the_library(model, x, samples):
        return model.importance_bits_per_dim(x, samples)

    for wrong in (average_of_bpds, without_log_k, in_nats, one_sample_only, best_sample, uses_the_library):
        assert not check_importance_bpd(wrong, tiny_model, images), wrong.__name__
        assert "not yet right" in capsys.readouterr().out
    assert not check_importance_bpd(not_implemented)
    assert "not implemented" in capsys.readouterr().out


def test_scripted_log_prob_is_independent_of_call_order():
    images = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    scripted = ScriptedLogProb(images, values)
    assert scripted.log_prob(images[[2, 0, 2]]).tolist() == [5.0, 1.0, 6.0]
    assert scripted.log_prob(images[[1, 0, 1]]).tolist() == [3.0, 2.0, 4.0]
    with pytest.raises(AssertionError, match="more than"):
        scripted.log_prob(images[:1])
    with pytest.raises(AssertionError, match="not one of"):
        scripted.log_prob(torch.full((1, 1, 2, 2), 9, dtype=torch.uint8))
    with pytest.raises(ValueError, match="distinct"):
        ScriptedLogProb(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), values[:2])


