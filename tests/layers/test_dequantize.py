from __future__ import annotations

import math

import pytest
import torch

from flowlib.core.testing import jacobian_logdet, perturb
from flowlib.layers.dequantize import Logit, UniformDequantization, VariationalDequantization, check_pixels, quantize


def all_pixel_values():
    return torch.arange(256).reshape(1, 1, 16, 16).to(torch.uint8)


@pytest.mark.parametrize("deq", [UniformDequantization(), perturb(VariationalDequantization(size=(16, 16)), std=0.2)],
                         ids=["uniform", "variational"])
def test_dequantize_then_quantize_gives_back_every_value(deq):
    x = all_pixel_values().repeat(4, 1, 1, 1)
    z, logdet = deq(x)
    assert z.dtype == torch.float32 and torch.isfinite(z).all() and logdet.shape == (4,)
    x_back, _ = deq.inverse(z)
    assert torch.equal(x_back.to(torch.uint8), x)


def test_uniform_logdet_contains_the_256_bin_term():
    deq = UniformDequantization(alpha=0.0, margin=0.0)
    x = torch.full((1, 1, 2, 2), 128, dtype=torch.uint8)
    torch.manual_seed(1)
    z, logdet = deq(x)
    torch.manual_seed(1)
    u = torch.rand(x.shape)
    y = (128 + u) / 256
    # d logit(y)/dy = 1 / (y (1 - y)); dy/dv = 1/256
    expected = (-torch.log(y) - torch.log1p(-y)).sum() - 4 * math.log(256)
    assert torch.allclose(logdet, expected.reshape(1), atol=1e-5)


def test_standard_normal_on_logits_gives_sensible_bits_per_dim():
    # A model that is exactly N(0,1) on the logits: its bpd on uniform noise images must be below
    # 8 + a few bits and finite; forgetting the -D log 256 term would make it ~8 lower (negative).
    deq = UniformDequantization()
    x = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    z, logdet = deq(x)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
    bpd = -(log_pz + logdet) / (64 * math.log(2))
    assert torch.all(bpd > 7.5) and torch.all(bpd < 10)


def test_variational_log_q_matches_autograd_jacobian():
    deq = perturb(VariationalDequantization(size=(4, 4), hidden=4), std=0.3).double()
    x = torch.randint(0, 256, (1, 1, 4, 4)).double()
    eps = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    u, log_q = deq.noise_from(eps, x)
    assert ((u > 0) & (u < 1)).all()
    log_n = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum()
    ld = jacobian_logdet(lambda e: deq.noise_from(e, x)[0], eps)
    assert torch.allclose(log_q, log_n - ld, atol=1e-8)


def test_variational_noise_gets_gradients():
    deq = VariationalDequantization(size=(4, 4), hidden=4)
    z, logdet = deq(torch.randint(0, 256, (2, 1, 4, 4)))
    (z.sum() + logdet.sum()).backward()
    assert all(p.grad is not None for p in deq.parameters())


@pytest.mark.parametrize("x, message", [
    (torch.rand(1, 1, 4, 4), "fractional"),
    (torch.full((1, 1, 4, 4), 300.0), "\\[0, 255\\]"),
    (torch.full((1, 1, 4, 4), -1, dtype=torch.long), "\\[0, 255\\]"),
    (torch.zeros(4, 4, dtype=torch.uint8), "\\(B, C, H, W\\)"),
])
def test_bad_pixels_raise_clear_errors(x, message):
    with pytest.raises(ValueError, match=message):
        check_pixels(x)


def test_quantize_clamps():
    assert quantize(torch.tensor([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]


def test_logit_alpha_bounds_the_output():
    z, _ = Logit(alpha=0.05)(torch.tensor([[0.0, 1.0]]))
    assert z.abs().max() < 3.0
    with pytest.raises(ValueError, match="alpha"):
        Logit(alpha=0.5)
