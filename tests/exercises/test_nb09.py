"""The exercise checks of notebook 09 accept the reference answers and reject wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

from flowlib.apps import ood
from flowlib.exercises.nb09 import (
    check_detection_rate,
    check_norm_statistic,
    detection_rate_reference,
    norm_statistic_reference,
)

SHAPES = [(2, 14, 14), (4, 7, 7)]  # the latents of a two-level MNIST model


def test_detection_rate_check_accepts_the_reference_and_another_correct_answer(capsys):
    def by_sorting(s_in, s_out, q):
        tau = s_in.double().sort().values[math.ceil((1 - q) * (len(s_in) - 1))]
        return float((s_out.double() > tau).double().mean())

    assert check_detection_rate(detection_rate_reference)
    assert check_detection_rate(by_sorting)
    assert "passed" in capsys.readouterr().out


def test_detection_rate_reference_flags_the_asked_share_of_normal_scores():
    s = torch.arange(1000).double()
    assert detection_rate_reference(s, s, 0.05) == pytest.approx(0.05, abs=0.002)
    assert detection_rate_reference(s, s + 10_000, 0.05) == 1.0


def _wrong_quantile(s_in, s_out, q):
    return (s_out.double() > torch.quantile(s_in.double(), q)).double().mean().item()


@pytest.mark.parametrize("wrong", [
    _wrong_quantile,                                                                # flags 1 - q of the normal images
    lambda s_in, s_out, q: (s_out.double() > s_in.double().max()).double().mean().item(),   # no false alarm at all
    lambda s_in, s_out, q: (s_in.double() > torch.quantile(s_in.double(), 1 - q)).double().mean().item(),  # = q
    lambda s_in, s_out, q: (s_out > torch.quantile(s_in.double(), 1 - q)).double().mean(),  # a tensor, not a float
])
def test_detection_rate_check_rejects_wrong_answers(wrong, capsys):
    assert not check_detection_rate(wrong)
    assert "not yet right" in capsys.readouterr().out


def test_detection_rate_check_uses_the_extra_cases():
    s_in, s_out = torch.zeros(100).double(), torch.ones(100).double()

    def right_on_gaussians_only(a, b, q):
        return 0.0 if len(a) == 100 else detection_rate_reference(a, b, q)

    assert check_detection_rate(right_on_gaussians_only)
    assert not check_detection_rate(right_on_gaussians_only, extra_cases=[(s_in, s_out, 0.05)])


def test_a_stub_counts_as_not_yet(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not check_detection_rate(stub)
    assert not check_norm_statistic(stub, SHAPES)
    assert capsys.readouterr().out.count("not implemented yet") == 2


def test_norm_statistic_check_accepts_the_reference_and_the_library_function():
    assert check_norm_statistic(norm_statistic_reference, SHAPES)
    assert check_norm_statistic(ood.latent_norm_statistic, SHAPES)


@pytest.mark.parametrize("wrong", [
    # the norm instead of the squared norm (standardised to the same scale)
    lambda lat: torch.stack([(z.double().flatten(1).norm(dim=1) - z[0].numel() ** 0.5) * math.sqrt(2) for z in lat], 1),
    # divided by 2d instead of sqrt(2d)
    lambda lat: torch.stack([(z.double().flatten(1).pow(2).sum(1) - z[0].numel()) / (2 * z[0].numel()) for z in lat], 1),
    # one column for all scales together
    lambda lat: ood.latent_norm_statistic([torch.cat([z.flatten(1) for z in lat], 1)]),
    # the dimension of the whole batch instead of one example's
    lambda lat: torch.stack([(z.double().flatten(1).pow(2).sum(1) - z.numel()) / math.sqrt(2 * z.numel()) for z in lat], 1),
])
def test_norm_statistic_check_rejects_wrong_answers(wrong, capsys):
    assert not check_norm_statistic(wrong, SHAPES)
    assert "not yet right" in capsys.readouterr().out
