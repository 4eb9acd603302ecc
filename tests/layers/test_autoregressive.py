from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import perturb
from flowlib.layers.autoregressive import MADE, MaskedAutoregressive, MaskedLinear, iaf_flow, made_masks, maf_flow

ORDER = torch.tensor([2, 0, 4, 1, 3])  # feature i is generated order[i]-th


def _jacobian(fn, x):
    # Jacobian of one example; fn maps a batch (B, D) to a batch
    return torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], x)


def test_made_output_depends_exactly_on_earlier_inputs():
    made = perturb(MADE(5, 3, hidden=16, order=ORDER), std=0.5).double()
    x = torch.randn(5, dtype=torch.float64)
    jac = _jacobian(made, x)  # (D, P, D): d out[i, p] / d x[j]
    depends = jac.abs().amax(1) > 0  # (D, D)
    allowed = ORDER[None, :] < ORDER[:, None]  # output i may see input j iff j comes before i
    assert torch.equal(depends, allowed)


def test_made_masks_connect_every_allowed_path():
    masks = made_masks(torch.arange(4), hidden=6, layers=2)
    assert [tuple(m.shape) for m in masks] == [(6, 4), (6, 6), (4, 6)]
    reach = (masks[2] @ masks[1] @ masks[0]) > 0
    assert torch.equal(reach, torch.ones(4, 4).tril(-1).bool())


@pytest.mark.parametrize("transform", ["affine", "spline"])
def test_jacobian_is_triangular_in_the_chosen_order(transform):
    layer = perturb(MaskedAutoregressive(5, hidden=16, transform=transform, order=ORDER, bins=4), std=0.5).double()
    x = torch.randn(5, dtype=torch.float64)
    jac = _jacobian(lambda v: layer(v)[0], x)
    by_order = torch.argsort(ORDER)  # features sorted by when they are generated
    j = jac[by_order][:, by_order]
    assert torch.allclose(j.triu(1), torch.zeros_like(j))
    assert (j.tril(-1).abs() > 1e-6).sum() >= 8  # and it is a real autoregressive map, not elementwise
    assert torch.all(j.diagonal() > 0)


def test_fresh_layer_is_the_identity():
    layer = MaskedAutoregressive(3)
    x = torch.randn(4, 3)
    z, ld = layer(x)
    assert torch.equal(z, x) and torch.equal(ld, torch.zeros(4))


def test_maf_density_is_one_pass_and_sampling_d_passes():
    d = 6
    layer = perturb(MaskedAutoregressive(d, hidden=16), std=0.3)
    calls = []
    layer.made.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(4, d)
    z, _ = layer(x)
    assert len(calls) == 1
    calls.clear()
    x_back, _ = layer.inverse(z)
    assert len(calls) == d
    assert torch.allclose(x_back, x, atol=1e-5)
    calls.clear()
    fl.Inverse(layer)(z)  # IAF: the density direction is now the slow one
    assert len(calls) == d


def test_iaf_samples_in_one_pass_per_layer_and_scores_its_samples():
    flow = perturb(iaf_flow(features=4, layers=3, hidden=16), std=0.2)
    calls = []
    for layer in flow.bijection.layers[1:]:
        layer.bijection.made.register_forward_hook(lambda *args: calls.append(1))
    x, logp = flow.sample_with_log_prob(8)
    assert len(calls) == 3
    assert torch.allclose(flow.log_prob(x), logp, atol=1e-4)


def test_maf_flow_trains_and_every_parameter_gets_a_gradient():
    flow = maf_flow(features=2, layers=2, hidden=16, transform="spline", bins=4)
    x = fl.make_toy("moons", 256)
    loss = -flow.log_prob(x).mean()
    loss.backward()
    assert all(p.grad is not None for p in flow.parameters())
    before = loss.item()
    fl.fit(flow, x, 30, lr=5e-3, batch_size=128, progress=False)
    assert -flow.log_prob(x).mean().item() < before - 0.2
    assert flow.sample(5).shape == (5, 2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="permutation"):
        MADE(3, 2, order=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="transform"):
        MaskedAutoregressive(3, transform="cubic")
    with pytest.raises(ValueError, match="mask must have shape"):
        MaskedLinear(3, 4, torch.ones(3, 4))
    with pytest.raises(ValueError, match="3 features"):
        MaskedAutoregressive(3)(torch.randn(2, 4))
