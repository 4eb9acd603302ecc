"""End-to-end tests of a Flow on 2D data."""

from __future__ import annotations

import io
import math

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import perturb


def make_flow():
    return perturb(fl.coupling_flow_2d(layers=4, hidden=16), std=0.1)


def test_log_prob_and_sample_shapes():
    flow = make_flow()
    x = torch.randn(7, 2)
    assert flow.log_prob(x).shape == (7,)
    assert flow.sample(11).shape == (11, 2)
    assert flow.bits_per_dim(x).shape == (7,)


def test_identity_flow_gives_standard_normal_density():
    flow = fl.coupling_flow_2d(layers=2)  # starts as the identity
    x = torch.randn(5, 2)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert torch.allclose(flow.log_prob(x), expected, atol=1e-6)
    assert torch.allclose(flow.bits_per_dim(x), -expected / (2 * math.log(2)), atol=1e-6)


def test_density_integrates_to_one():
    flow = make_flow()
    X, Y, P = fl.plot.density_grid(flow, bounds=8.0, resolution=400)
    cell = (X[0, 1] - X[0, 0]) * (Y[1, 0] - Y[0, 0])
    assert abs(P.sum() * cell - 1.0) < 0.02


def test_every_parameter_gets_a_gradient():
    flow = make_flow()
    loss = -flow.log_prob(torch.randn(16, 2)).mean()
    loss.backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_sample_with_log_prob_matches_log_prob():
    flow = make_flow()
    x, logp = flow.sample_with_log_prob(6)
    assert torch.allclose(logp, flow.log_prob(x), atol=1e-4)


def test_save_and_load_give_identical_log_prob():
    flow = make_flow()
    buf = io.BytesIO()
    torch.save(flow.state_dict(), buf)
    buf.seek(0)
    other = fl.coupling_flow_2d(layers=4, hidden=16)
    other.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(9, 2)
    assert torch.equal(flow.log_prob(x), other.log_prob(x))


def test_wrong_shape_is_a_clear_error():
    flow = make_flow()
    with pytest.raises(ValueError, match="shape \\(B, 2\\)"):
        flow.log_prob(torch.randn(4, 3))
    with pytest.raises(ValueError, match="non-finite"):
        flow.log_prob(torch.tensor([[float("inf"), 0.0]]))


def test_needs_event_shape_or_base():
    with pytest.raises(ValueError, match="event_shape"):
        fl.Flow(fl.Sequential())


def test_flow_around_a_reshaping_bijection():
    flow = fl.Flow(fl.Squeeze(), base=fl.StandardNormal(4, 2, 2), event_shape=(1, 4, 4))
    x = torch.randn(3, 1, 4, 4)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(flow.log_prob(x), expected)
    assert flow.sample(2).shape == (2, 1, 4, 4)
