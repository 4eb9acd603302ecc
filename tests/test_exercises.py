"""The exercise checks of notebooks 01 and 02 accept the reference answers and reject wrong ones
that are still perfectly good bijections (so ``check_bijection`` alone would pass them)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import flowlib as fl
from flowlib.exercises import HalfCouplingReference, LeakyReLUReference, check_half_coupling, check_leaky_relu


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


class HalfCouplingTemplateIdentity(HalfCouplingReference):
    # the template's network, but the map is the identity
    def forward(self, x):
        return x, x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z, z.new_zeros(z.shape[0])


class HalfCouplingSwapped(HalfCouplingReference):
    # t and r swapped: [r, t] = net(x_a); still an exact bijection
    def shift_and_log_scale(self, x_a):
        r, t = self.net(x_a).chunk(2, dim=1)
        return t, F.logsigmoid(r + 2.0)


class HalfCouplingNoOffset(HalfCouplingReference):
    # sigmoid(r) instead of sigmoid(r + 2)
    def shift_and_log_scale(self, x_a):
        t, r = self.net(x_a).chunk(2, dim=1)
        return t, F.logsigmoid(r)


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


def test_half_coupling_reference_passes(capsys):
    assert check_half_coupling(HalfCouplingReference)
    assert "passed" in capsys.readouterr().out


def test_half_coupling_reference_values():
    layer = fl.testing.perturb(HalfCouplingReference(3), std=0.3).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    z, logdet = layer(x)
    t, r = layer.net(x[:, :1]).chunk(2, dim=1)
    assert torch.equal(z[:, :1], x[:, :1])
    assert torch.allclose(z[:, 1:], (x[:, 1:] + t) * torch.sigmoid(r + 2))
    assert torch.allclose(logdet, torch.log(torch.sigmoid(r + 2)).sum(1))


def test_half_coupling_wrong_answers_fail(capsys):
    for wrong in (HalfCouplingTemplateIdentity, HalfCouplingSwapped, HalfCouplingNoOffset):
        fl.check_bijection(fl.testing.perturb(wrong(5), std=0.3), torch.randn(8, 5))
        assert not check_half_coupling(wrong), wrong.__name__
    assert "not yet right" in capsys.readouterr().out


def test_half_coupling_with_another_network_is_reported(capsys):
    class OtherNet(HalfCouplingReference):
        def __init__(self, features: int, hidden: int = 32):
            super().__init__(features, hidden=hidden + 1)

    assert not check_half_coupling(OtherNet)
    assert "keep the template's __init__" in capsys.readouterr().out
