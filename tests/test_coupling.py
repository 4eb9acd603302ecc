from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.testing import jacobian_logdet, perturb


def test_fresh_coupling_is_identity():
    layer = fl.AffineCoupling(fl.alternating_mask(4), fl.MLP(4, 8))
    x = torch.randn(5, 4)
    z, ld = layer(x)
    assert torch.equal(z, x)
    assert torch.equal(ld, torch.zeros(5))


def test_masked_features_pass_unchanged():
    layer = perturb(fl.AffineCoupling(fl.alternating_mask(6), fl.MLP(6, 12)), std=0.5)
    x = torch.randn(5, 6)
    z, _ = layer(x)
    keep = fl.alternating_mask(6).bool()
    assert torch.equal(z[:, keep], x[:, keep])
    assert not torch.allclose(z[:, ~keep], x[:, ~keep])


def test_jacobian_is_triangular_after_sorting_by_mask():
    layer = perturb(fl.AffineCoupling(fl.alternating_mask(4), fl.MLP(4, 8)), std=0.5).double()
    x = torch.randn(1, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    order = torch.argsort(1 - fl.alternating_mask(4), stable=True)  # unchanged features first
    j = jac[order][:, order]
    assert torch.allclose(j.triu(1), torch.zeros_like(j))


def test_scale_is_bounded():
    layer = fl.AffineCoupling(fl.alternating_mask(2), fl.MLP(2, 4), scale_bound=1.5)
    with torch.no_grad():
        layer.conditioner.net[-1].bias.fill_(100.0)
    x = torch.randn(8, 2)
    _, ld = layer(x)
    assert torch.all(ld <= 1.5 + 1e-6)


def test_additive_coupling_preserves_volume():
    layer = perturb(fl.AdditiveCoupling(fl.alternating_mask(4), fl.MLP(4, 4))).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(jacobian_logdet(lambda v: layer(v)[0], x), torch.zeros(3, dtype=torch.float64))


def test_masks():
    assert fl.alternating_mask(5).tolist() == [1, 0, 1, 0, 1]
    cb = fl.checkerboard_mask(4, 4)
    assert cb.shape == (1, 4, 4) and cb.sum() == 8 and cb[0, 0, 0] == 1 and cb[0, 0, 1] == 0
    assert torch.equal(fl.checkerboard_mask(4, 4, 1), 1 - cb)
    cm = fl.channel_mask(4)
    assert cm.flatten().tolist() == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="zeros and ones"):
        fl.AffineCoupling(torch.tensor([0.5, 1.0]), fl.MLP(2, 4))


@pytest.mark.parametrize("x, message", [
    (torch.randn(4), "shape \\(B, D\\)"),
    (torch.randn(2, 3), "\\(2, 3\\).*features differ"),
    (torch.tensor([[0.0, float("nan"), 1.0, 2.0]]), "non-finite"),
    ([[1.0, 2.0, 3.0, 4.0]], "torch.Tensor"),
])
def test_bad_input_raises_clear_errors(x, message):
    layer = fl.AffineCoupling(fl.alternating_mask(4), fl.MLP(4, 8))
    with pytest.raises((ValueError, TypeError), match=message):
        layer(x)


def test_image_coupling_rejects_wrong_channels():
    layer = fl.AffineCoupling(fl.channel_mask(4), fl.ConvNet(4, 8))
    with pytest.raises(ValueError, match="channels"):
        layer(torch.randn(2, 3, 4, 4))


def test_a_plain_sequential_works_as_a_conditioner():
    from torch import nn

    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 4))
    layer = fl.AffineCoupling(fl.alternating_mask(2), net)
    fl.check_bijection(layer, torch.randn(3, 2))
    additive = fl.AdditiveCoupling(fl.alternating_mask(2), nn.Sequential(nn.Linear(2, 2)))
    fl.check_bijection(additive, torch.randn(3, 2))
