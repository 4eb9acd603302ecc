"""The exercise check of notebook 01 accepts the reference answer and rejects wrong ones that are still perfectly
good bijections (so ``check_bijection`` alone would pass them)."""

from __future__ import annotations

import math

import torch

import flowlib as fl
from flowlib.exercises.nb01 import LeakyReLUReference, check_leaky_relu


class Identity(fl.Bijection):
    def __init__(self, alpha: float = 0.3, features: int = 2):
        super().__init__()

    def forward(self, x):
        return x, x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z, z.new_zeros(z.shape[0])


class LeakyReLUSwapped(LeakyReLUReference):
    # alpha and 1 / alpha swapped: the inverse map, still a bijection
    def __init__(self, alpha: float = 0.3):
        super().__init__(1 / alpha)


class LeakyReLUFixedAlpha(LeakyReLUReference):
    # ignores its argument
    def __init__(self, alpha: float = 0.3):
        super().__init__(0.3)


class LeakyReLUNotImplemented(fl.Bijection):
    def __init__(self, alpha: float = 0.3):
        super().__init__()

    def forward(self, x):
        raise NotImplementedError

    def inverse(self, z):
        raise NotImplementedError


def test_leaky_relu_reference_passes(capsys):
    assert check_leaky_relu(LeakyReLUReference)
    assert "passed" in capsys.readouterr().out


def test_leaky_relu_reference_values():
    x = torch.tensor([[-2.0, 1.0, -0.5]], dtype=torch.float64)
    z, logdet = LeakyReLUReference(0.5)(x)
    assert torch.equal(z, torch.tensor([[-1.0, 1.0, -0.25]], dtype=torch.float64))
    assert math.isclose(logdet.item(), 2 * math.log(0.5))


def test_leaky_relu_wrong_answers_fail(capsys):
    for wrong in (Identity, LeakyReLUSwapped, LeakyReLUFixedAlpha):
        # each is a valid bijection: only the comparison with the asked-for map can reject it
        fl.check_bijection(wrong(alpha=0.3), torch.randn(8, 3))
        assert not check_leaky_relu(wrong), wrong.__name__
    assert "not yet right" in capsys.readouterr().out


def test_leaky_relu_template_is_not_implemented(capsys):
    assert not check_leaky_relu(LeakyReLUNotImplemented)
    assert "not implemented yet" in capsys.readouterr().out


