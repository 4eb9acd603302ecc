from __future__ import annotations

import pytest
import torch

from flowlib.layers.vector_fields import TimeMLP, UNet, time_features


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_time_features_take_a_scalar_or_one_time_per_example():
    a = time_features(torch.tensor(0.3), 4, 8, torch.float32)
    b = time_features(torch.full((4,), 0.3), 4, 8, torch.float32)
    assert a.shape == (4, 8) and torch.allclose(a, b)
    assert not torch.allclose(a, time_features(torch.tensor(0.6), 4, 8, torch.float32))


def test_mlp_field_depends_on_time_and_matches_notebook_10s_size():
    torch.manual_seed(0)
    v = TimeMLP(2)
    assert abs(_count(v) - 33_794) / 33_794 < 0.05  # notebook 10's CNF(hidden=128, layers=3)
    x = torch.randn(5, 2)
    out = v(torch.tensor(0.1), x)
    assert out.shape == (5, 2)
    assert (out - v(torch.tensor(0.9), x)).abs().max() > 1e-4
    assert torch.allclose(v(torch.full((5,), 0.1), x), out)


@pytest.mark.parametrize("base", [32, 48])
def test_unet_shapes_zero_start_gradients_and_size(base):
    torch.manual_seed(0)
    v = UNet(1, base=base)
    assert 0.4e6 < _count(v) < 3e6
    x = torch.randn(3, 1, 28, 28)
    out = v(torch.rand(3), x)
    assert out.shape == x.shape and out.abs().max() == 0  # zero-initialised last layer
    out.pow(2).sum().backward()  # only the last layer has a gradient at a zero output; check it is there
    assert v.out[-1].weight.grad is not None
    loss = (v(torch.rand(3), x) - x).pow(2).mean()
    v.zero_grad()
    loss.backward()
    assert all(p.grad is not None for p in v.parameters())
    with torch.no_grad():
        v.out[-1].weight.normal_()
        assert (v(torch.tensor(0.2), x) - v(torch.tensor(0.8), x)).abs().max() > 1e-4


def test_time_features_change_slowly_on_the_unit_interval():
    # every feature's slope is at most MAX_FREQUENCY: no wiggle in t faster than an ODE step can follow
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    f = time_features(t, len(t), 16, torch.float64)
    slope = (f[1:] - f[:-1]).abs().max() / (t[1] - t[0])
    assert 5 < slope <= 30 + 1e-6
