"""The checker must catch broken layers, or it proves nothing."""

from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import check_bijection, jacobian_logdet, perturb


class WrongLogdet(fl.Bijection):
    """Scales by 2 but claims log-det 0."""

    def forward(self, x):
        return 2 * x, x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z / 2, z.new_zeros(z.shape[0])


class BadInverse(fl.Bijection):
    def forward(self, x):
        return x + 1, x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z - 0.5, z.new_zeros(z.shape[0])


class ScalarLogdet(fl.Bijection):
    def forward(self, x):
        return x, 0.0

    def inverse(self, z):
        return z, 0.0


class InconsistentInverseLogdet(fl.Bijection):
    def forward(self, x):
        return 3 * x, torch.full((x.shape[0],), x.shape[1] * torch.log(torch.tensor(3.0)).item(), dtype=x.dtype)

    def inverse(self, z):
        return z / 3, z.new_zeros(z.shape[0])


@pytest.mark.parametrize("layer, message", [
    (WrongLogdet(), "slogdet"),
    (BadInverse(), "inverse\\(forward\\(x\\)\\)"),
    (ScalarLogdet(), "logdet tensor"),
    (InconsistentInverseLogdet(), "sum to zero"),
])
def test_checker_catches_broken_layers(layer, message):
    with pytest.raises(AssertionError, match=message):
        check_bijection(layer, torch.randn(2, 3))


def test_checker_leaves_the_layer_unchanged():
    layer = perturb(fl.ElementwiseAffine(3))
    before = layer.shift.detach().clone()
    check_bijection(layer, torch.randn(2, 3))
    assert layer.shift.dtype == torch.float32
    assert torch.equal(layer.shift, before)


def test_jacobian_logdet_of_a_linear_map():
    a = torch.tensor([[2.0, 1.0], [0.5, 3.0]], dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    ld = jacobian_logdet(lambda v: v @ a.T, x)
    assert torch.allclose(ld, torch.logdet(a).expand(4))


def test_perturb_changes_every_parameter():
    layer = fl.AffineCoupling(fl.alternating_mask(4), fl.MLP(4, 8))
    before = [p.detach().clone() for p in layer.parameters()]
    perturb(layer)
    assert all(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))
