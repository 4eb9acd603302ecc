from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import perturb
from flowlib.layers.mixture import ChannelMixtureCoupling, mixture_logistic_logit


def params(shape, k, seed=0, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, k, generator=g, dtype=torch.float64)
    means = spread * torch.randn(*shape, k, generator=g, dtype=torch.float64)
    log_scales = torch.randn(*shape, k, generator=g, dtype=torch.float64) - 0.5
    return logits, means, log_scales


def test_the_map_is_the_logit_of_the_mixture_cdf_and_its_derivative():
    x = torch.linspace(-6, 6, 41, dtype=torch.float64)
    logits, means, log_scales = params((41,), 3)
    u, ld = mixture_logistic_logit(x, logits, means, log_scales)
    pi = torch.softmax(logits, -1)
    cdf = (pi * torch.sigmoid((x[:, None] - means) / log_scales.exp())).sum(-1)
    assert torch.allclose(u, torch.log(cdf / (1 - cdf)), atol=1e-10)
    xg = x.clone().requires_grad_(True)
    du = torch.autograd.grad(mixture_logistic_logit(xg, logits, means, log_scales)[0].sum(), xg)[0]
    assert torch.allclose(ld, du.log(), atol=1e-10)
    assert (du > 0).all()


def test_far_tails_stay_finite_and_invert():
    # F rounds to 0 or 1 in float64 beyond about |x| = 37 sigma: the log-space formulas do not
    x = torch.tensor([-300.0, -60.0, -1.0, 0.0, 2.0, 60.0, 300.0], dtype=torch.float64)
    logits, means, log_scales = params((7,), 4, seed=1)
    u, ld = mixture_logistic_logit(x, logits, means, log_scales)
    assert torch.isfinite(u).all() and torch.isfinite(ld).all()
    back, ld_inv = mixture_logistic_logit(u, logits, means, log_scales, inverse=True)
    assert torch.allclose(back, x, rtol=1e-10, atol=1e-9)
    assert torch.allclose(ld + ld_inv, torch.zeros_like(ld), atol=1e-9)


def test_the_bisection_bracket_holds_the_solution_for_wide_mixtures():
    logits, means, log_scales = params((2000,), 5, seed=2, spread=8.0)
    u = 10 * torch.randn(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x, _ = mixture_logistic_logit(u, logits, means, log_scales, inverse=True)
    assert torch.allclose(mixture_logistic_logit(x, logits, means, log_scales)[0], u, atol=1e-8)
    # too few halvings leave the answer inside the bracket but not at the solution: the check notices
    rough, _ = mixture_logistic_logit(u, logits, means, log_scales, inverse=True, iterations=5)
    assert (mixture_logistic_logit(rough, logits, means, log_scales)[0] - u).abs().max() > 1e-3


def test_the_coupling_passes_the_checker_in_float32_too():
    net = fl.GatedResNet(2, ChannelMixtureCoupling.out_channels(4, 4), hidden=8)
    layer = perturb(ChannelMixtureCoupling(4, net, components=4), std=0.5)
    fl.check_bijection(layer, 2 * torch.randn(2, 4, 3, 3))
    # float32: the bisection finds an x whose image is z to float precision. Where the map is nearly flat
    # (between two far-apart, narrow components) many x share that image to float precision, so x itself can
    # land far from the original: the inverse is ill-conditioned there, as for any solver
    x = 2 * torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z, ld = layer(x)
        back, ld_inv = layer.inverse(z)
        again, _ = layer(back)
    assert (again - z).abs().max() < 1e-5 * (1 + z.abs().max())
    assert (back - x).abs().median() < 1e-6
    assert torch.equal(z[:, :2], x[:, :2])  # the kept half passes through


def test_the_components_start_apart_so_their_gradients_differ():
    net = fl.GatedResNet(2, ChannelMixtureCoupling.out_channels(4, 3), hidden=8)
    layer = ChannelMixtureCoupling(4, net, components=3)
    x = torch.randn(4, 4, 3, 3)
    z, ld = layer(x)
    (z.square().sum() - ld.sum()).backward()
    last = [p for p in net.parameters() if p.grad is not None][-1].grad  # the zero-initialised output layer's bias
    per_param = last.reshape(2, 3 * 3 + 2)[:, 2 + 3:2 + 6]  # the three means of each transformed channel
    assert (per_param[:, 0] - per_param[:, 1]).abs().max() > 1e-6


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="components must be >= 2"):
        ChannelMixtureCoupling(4, fl.GatedResNet(2, 8, hidden=8), components=1)
    with pytest.raises(ValueError, match="must return 28 channels"):
        ChannelMixtureCoupling(4, fl.GatedResNet(2, 8, hidden=8), components=4)(torch.randn(1, 4, 2, 2))
    with pytest.raises(ValueError, match="needs at least 2 channels"):
        ChannelMixtureCoupling(1, fl.GatedResNet(1, 5, hidden=8))
    assert math.isclose(ChannelMixtureCoupling.out_channels(5, 4), 3 * 14)
