from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import jacobian_logdet, perturb


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


def test_sliced_channel_coupling_equals_the_masked_one_with_the_same_network():
    torch.manual_seed(0)
    c = 4
    sliced = perturb(fl.ChannelAffineCoupling(c, fl.GatedResNet(c // 2, c, hidden=8)), std=0.3).double()
    masked = fl.AffineCoupling(fl.channel_mask(c), fl.GatedResNet(c, 2 * c, hidden=8)).double()
    # give the masked conditioner the sliced one's weights: its zero inputs and unused outputs are padding
    with torch.no_grad():
        for (name, p_m), p_s in zip(masked.conditioner.named_parameters(), sliced.conditioner.parameters()):
            p_m.zero_()
            if name == "inp.weight":
                p_m[:, : c // 2] = p_s
            elif name == "out.1.weight":  # outputs [shift (c), s_raw (c)]; only the second half of each is used
                p_m[c // 2: c] = p_s[: c // 2]
                p_m[c + c // 2:] = p_s[c // 2:]
            elif name == "out.1.bias":
                p_m[c // 2: c] = p_s[: c // 2]
                p_m[c + c // 2:] = p_s[c // 2:]
            else:
                p_m.copy_(p_s)
    x = torch.randn(3, c, 4, 4, dtype=torch.float64)
    z_s, ld_s = sliced(x)
    z_m, ld_m = masked(x)
    assert torch.allclose(z_s, z_m) and torch.allclose(ld_s, ld_m)
    assert not torch.allclose(z_s, x)  # the check is not trivially passed by identities


def test_learned_bound_starts_at_scale_bound_and_bounds_the_log_scale():
    layer = fl.ChannelAffineCoupling(2, fl.ConvNet(1, 2, hidden=4), scale_bound=1.5, learn_bound=True)
    assert torch.allclose(layer.bound.log_bound.exp(), torch.tensor(1.5))
    with torch.no_grad():
        layer.conditioner.net[-1].bias.fill_(100.0)
        layer.bound.log_bound.fill_(math.log(0.5))
    _, ld = layer(torch.randn(3, 2, 2, 2))
    assert torch.all(ld <= 0.5 * 4 + 1e-5) and torch.all(ld >= 0.5 * 4 - 1e-3)  # 4 transformed numbers at the bound
    assert len(list(fl.AffineCoupling(fl.alternating_mask(2), fl.MLP(2, 4)).bound.parameters())) == 0
