from __future__ import annotations

import math

import pytest
import torch

from flowlib.layers.dequantize import UniformDequantization
from flowlib.layers.flow_matching import (
    LinearPath,
    cfm_loss,
    image_bits_per_dim,
    log_likelihood,
    marginal_field,
    reflow_couples,
    sample_ode,
    straightness,
)
from flowlib.layers.vector_fields import TimeMLP

MU, S = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.6


def gaussian_field(t, x):
    """The exact marginal field of the linear path (sigma_min = 0) to data N(MU, S^2 I)."""
    t = torch.as_tensor(t, dtype=x.dtype)
    var = (1 - t) ** 2 + t**2 * S**2
    return MU + ((t * S**2 - (1 - t)) / var) * (x - t * MU)


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_path_ends_and_its_velocity_is_the_derivative(sigma_min):
    path = LinearPath(sigma_min)
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(path.sample(x0, x1, torch.zeros(5)), x0)
    assert torch.allclose(path.sample(x0, x1, torch.ones(5)), x1 + sigma_min * x0)
    t, h = torch.rand(5, dtype=torch.float64), 1e-6
    fd = (path.sample(x0, x1, t + h) - path.sample(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(fd, path.target(x0, x1, t), atol=1e-8)
    assert torch.allclose(path.std(torch.tensor(1.0)), torch.tensor(sigma_min))


def test_cfm_loss_is_zero_only_for_the_true_field_of_one_data_point():
    # with data = the single point c the marginal field is (c - x) / (1 - t), and it equals every conditional target
    c = torch.tensor([[2.0, -1.0]])
    x1 = c.expand(512, 2)
    t = torch.rand(512) * 0.99
    true = lambda t, x: (c - x) / (1 - t[:, None])
    assert cfm_loss(true, x1, t=t).item() < 1e-10
    wrong = lambda t, x: (c - x) / (1 - t[:, None]) + 0.1
    assert cfm_loss(wrong, x1, t=t).item() > 5e-3
    assert cfm_loss(true, x1, LinearPath(0.1), t=t).item() > 1e-3  # the field of another path does not fit


def test_conditional_and_marginal_losses_have_the_same_gradient():
    torch.manual_seed(0)
    data = torch.tensor([[1.5, 0.0], [-1.5, 0.5]], dtype=torch.float64)
    net = TimeMLP(2, hidden=16, layers=2).double()
    n = 2000
    x1 = data[torch.randint(0, 2, (n,))]
    x0, t = torch.randn(n, 2, dtype=torch.float64), torch.rand(n, dtype=torch.float64) * 0.98
    path = LinearPath()
    xt = path.sample(x0, x1, t)
    grads = {}
    marg = torch.cat([marginal_field(xt[i : i + 1], float(t[i]), data) for i in range(0, 2000)])
    targets = {
        "conditional": path.target(x0, x1, t)[:2000],
        "marginal": marg,
        "wrong": -marg,
    }  # a negative control with a different gradient
    for name, target in targets.items():
        net.zero_grad()
        (net(t[:2000], xt[:2000]) - target).pow(2).sum(1).mean().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in net.parameters()])
    diff = (grads["conditional"] - grads["marginal"]).norm() / grads["marginal"].norm()
    assert diff < 0.15
    assert (grads["wrong"] - grads["marginal"]).norm() / grads["marginal"].norm() > 0.5


def test_monte_carlo_marginal_field_matches_the_gaussian_one():
    g = torch.Generator().manual_seed(0)
    data = MU + S * torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    for t in (0.2, 0.7):  # points where p_t has mass, so the self-normalised weights are not degenerate
        x = t * MU + math.sqrt((1 - t) ** 2 + t**2 * S**2) * torch.randn(5, 2, generator=g, dtype=torch.float64)
        assert torch.allclose(marginal_field(x, t, data), gaussian_field(t, x), atol=2e-2)
        assert not torch.allclose(marginal_field(x, t, data), gaussian_field(1 - t, x), atol=2e-2)


def test_samplers_have_their_order_of_accuracy_and_count_evaluations():
    field = lambda t, x: -x * (1 + t) ** 2  # x(1) = x0 exp(-7 / 3)
    x0 = torch.randn(4, 2, dtype=torch.float64)
    exact = x0 * math.exp(-7 / 3)
    for method, order in [("euler", 1), ("midpoint", 2)]:
        errs = []
        for steps in (20, 40):
            x, nfe = sample_ode(field, x0, steps, method)
            assert nfe == steps * order
            errs.append((x - exact).abs().max().item())
        assert abs(math.log2(errs[0] / errs[1]) - order) < 0.3
    x, nfe = sample_ode(field, x0, method="adaptive", rtol=1e-8, atol=1e-8)
    assert (x - exact).abs().max() < 1e-6 and nfe > 6
    with pytest.raises(ValueError, match="steps"):
        sample_ode(field, x0, 0)


def test_exact_log_likelihood_of_a_known_field_is_the_gaussian_density():
    x = MU + S * torch.randn(64, 2, dtype=torch.float64)
    lp, nfe = log_likelihood(gaussian_field, x, rtol=1e-8, atol=1e-8)
    true = -0.5 * ((x - MU) / S).pow(2).sum(1) - 2 * math.log(S) - math.log(2 * math.pi)
    assert nfe > 0
    assert torch.allclose(lp, true, atol=1e-5)
    wrong = -0.5 * (x - MU).pow(2).sum(1) - math.log(2 * math.pi)  # the density of S = 1
    assert (lp - wrong).abs().max() > 0.1


def test_hutchinson_log_likelihood_is_unbiased_around_the_exact_one():
    torch.manual_seed(0)
    net = TimeMLP(3, hidden=16, layers=2).double()
    for p in net.parameters():
        p.data.normal_(0, 0.5)
    x = torch.randn(1, 3, dtype=torch.float64).expand(1000, 3).clone()
    exact, _ = log_likelihood(net, x[:1], "exact", 1e-5, 1e-5)
    hutch, _ = log_likelihood(net, x, "hutchinson", 1e-5, 1e-5)
    se = hutch.std() / len(hutch) ** 0.5
    assert hutch.std() > 1e-3
    assert (hutch.mean() - exact[0]).abs() < 4 * se + 1e-5


def test_image_bits_per_dim_uses_the_dequantization_definition():
    # with v = 0 the ODE is the identity: log p_1(y) = log N(y), so bpd = -(log N(y) + logdet) / (D ln 2)
    images = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    dequant = UniformDequantization(alpha=0.05)
    zero = lambda t, x: 0 * x
    torch.manual_seed(1)
    result = image_bits_per_dim(zero, images, dequant, batch_size=4, trace="exact")
    torch.manual_seed(1)
    y, ld = dequant(images.float())
    logn = -0.5 * y.pow(2).flatten(1).sum(1) - 8 * math.log(2 * math.pi)
    expected = -(logn + ld) / (16 * math.log(2))
    assert torch.allclose(result["per_image"], expected.double(), atol=1e-5)
    assert result["n"] == 6 and result["stderr"] == pytest.approx(expected.std().item() / 6**0.5, rel=1e-4)
    assert not torch.allclose(result["per_image"], (-(logn + ld + 16 * math.log(256)) / (16 * math.log(2))).double())


def test_straightness_is_zero_for_straight_paths_only():
    c = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    x0 = torch.randn(50, 2, dtype=torch.float64)
    assert straightness(lambda t, x: (c - x) / (1 - t), x0, steps=50) < 1e-12
    rotate = lambda t, x: torch.stack([-x[:, 1], x[:, 0]], 1)
    assert straightness(rotate, x0, steps=50) > 0.1


def test_reflow_couples_are_the_models_own_map():
    g = torch.Generator().manual_seed(0)
    x0, x1 = reflow_couples(gaussian_field, 100, 2, steps=50, generator=g)
    again, _ = sample_ode(gaussian_field, x0.double(), 50, "midpoint")
    assert x0.shape == x1.shape == (100, 2)
    assert torch.allclose(x1.double(), again, atol=1e-5)
    assert (x1 - x0).abs().mean() > 0.1
