"""The exercise check of notebook 02 accepts the reference answer and rejects wrong ones that are still perfectly
good bijections (so ``check_bijection`` alone would pass them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import flowlib as fl
from flowlib.exercises.nb02 import HalfCouplingReference, check_half_coupling


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
