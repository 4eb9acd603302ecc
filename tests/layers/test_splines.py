from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import perturb
from flowlib.layers.splines import (
    ElementwiseSpline,
    SplineCoupling,
    rational_quadratic_spline,
    spline_coupling_flow,
    spline_knots,
    spline_params_from_knots,
    spline_params_per_feature,
)

B = 3.0


def _params(n: int, bins: int = 6, scale: float = 2.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = scale * torch.randn(n, bins, generator=g, dtype=torch.float64)
    h = scale * torch.randn(n, bins, generator=g, dtype=torch.float64)
    d = scale * torch.randn(n, bins - 1, generator=g, dtype=torch.float64)
    return w, h, d


def _spline(x, params, inverse=False):
    return rational_quadratic_spline(x, *params, bound=B, inverse=inverse)


def test_zero_parameters_give_the_identity():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    params = [torch.zeros(101, 7, dtype=torch.float64), torch.zeros(101, 7, dtype=torch.float64),
              torch.zeros(101, 6, dtype=torch.float64)]
    y, ld = _spline(x, params)
    assert torch.allclose(y, x, atol=1e-12)
    assert torch.allclose(ld, torch.zeros_like(ld), atol=1e-12)


def test_knots_span_the_interval_and_derivatives_are_positive():
    kx, ky, kd = spline_knots(*_params(50, bins=6, scale=5.0), bound=B)
    assert kx.shape == ky.shape == kd.shape == (50, 7)
    assert torch.all(kx[:, 0] == -B) and torch.all(kx[:, -1] == B) and torch.all(ky[:, 0] == -B)
    assert torch.all(kx.diff(dim=1) > 0) and torch.all(ky.diff(dim=1) > 0)
    assert torch.all(kd > 0) and torch.all(kd[:, 0] == 1) and torch.all(kd[:, -1] == 1)


def test_spline_is_monotone_and_passes_through_its_knots():
    params = [p[:1].expand(2001, -1) for p in _params(1, scale=3.0)]
    x = torch.linspace(-B, B, 2001, dtype=torch.float64)
    y, ld = _spline(x, params)
    assert torch.all(y.diff() > 0)
    assert torch.isfinite(ld).all()
    kx, ky, kd = (v[0] for v in spline_knots(*(p[:1] for p in params), bound=B))
    at_knots, _ = _spline(kx, [p[:len(kx)] for p in params])
    assert torch.allclose(at_knots, ky, atol=1e-12)


def test_logdet_is_the_log_derivative_at_knots_inside_and_in_the_tails():
    n = 300
    params = _params(n, scale=2.0)
    kx = spline_knots(*params, bound=B)[0]
    # points exactly on knots (where the derivative must equal the knot derivative), inside bins and in the tails
    x = torch.cat([kx[:100, 3], torch.empty(100, dtype=torch.float64).uniform_(-B, B), 6 * torch.randn(100).double()])
    x.requires_grad_(True)
    y, ld = _spline(x, params)
    dydx = torch.autograd.grad(y.sum(), x)[0]
    assert torch.allclose(ld, dydx.log(), atol=1e-10)
    kd = spline_knots(*params, bound=B)[2]
    assert torch.allclose(dydx[:100], kd[:100, 3], atol=1e-10)


def test_tails_are_the_identity():
    params = _params(4, scale=3.0)
    x = torch.tensor([-100.0, -B - 1e-9, B + 1e-9, 7.5], dtype=torch.float64)
    for inverse in (False, True):
        y, ld = _spline(x, params, inverse=inverse)
        assert torch.equal(y, x)
        assert torch.equal(ld, torch.zeros_like(x))
    # continuous across the boundary, with slope 1 on both sides
    inner, _ = _spline(torch.tensor([-B + 1e-9, B - 1e-9], dtype=torch.float64), [p[:2] for p in params])
    assert torch.allclose(inner, torch.tensor([-B, B], dtype=torch.float64), atol=1e-8)


@pytest.mark.parametrize("offset", [0.0, 1e-14, -1e-14, 1e-9, -1e-9, 1e-6, -1e-6])
def test_inverse_near_bin_edges_in_float64(offset):
    n, bins = 200, 8
    params = _params(n, bins=bins, scale=3.0, seed=1)
    ky = spline_knots(*params, bound=B)[1]
    column = torch.arange(n) % (bins + 1)
    y = (ky[torch.arange(n), column] + offset).clamp(-B, B)  # every knot, including both ends
    x, ld_inv = _spline(y, params, inverse=True)
    y_back, ld_fwd = _spline(x, params)
    assert torch.isfinite(x).all()
    assert (y_back - y).abs().max() < 1e-12
    assert (ld_inv + ld_fwd).abs().max() < 1e-8  # log-derivatives up to ~6 in size; rounding at the knot


def test_inverse_is_the_root_found_by_bisection():
    n = 64
    params = _params(n, scale=2.5, seed=2)
    y = torch.empty(n, dtype=torch.float64).uniform_(-B, B)
    lo, hi = torch.full_like(y, -B), torch.full_like(y, B)
    for _ in range(80):  # bisection on the monotone forward map, independent of the closed form
        mid = (lo + hi) / 2
        above = _spline(mid, params)[0] > y
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    x, _ = _spline(y, params, inverse=True)
    assert torch.allclose(x, (lo + hi) / 2, atol=1e-12)


def test_inverse_roundtrip_with_extreme_parameters():
    params = _params(1000, bins=10, scale=8.0, seed=3)  # bins and derivatives near their minimum size
    x = 4 * torch.randn(1000, dtype=torch.float64)
    y, ld = _spline(x, params)
    x_back, ld_back = _spline(y, params, inverse=True)
    assert torch.allclose(x_back, x, atol=1e-9)
    assert torch.allclose(ld + ld_back, torch.zeros_like(ld), atol=1e-6)


def test_parameter_counts_are_checked():
    w, h, d = _params(3, bins=4)
    with pytest.raises(ValueError, match="K - 1 derivatives"):
        spline_knots(w, h, d[:, :2], bound=B)
    with pytest.raises(ValueError, match="too many bins"):
        spline_knots(torch.zeros(1, 1000), torch.zeros(1, 1000), torch.zeros(1, 999), bound=B)


def test_elementwise_spline_starts_as_identity_and_is_a_bijection():
    layer = ElementwiseSpline(3, bins=5)
    x = torch.randn(6, 3)
    z, ld = layer(x)
    assert torch.allclose(z, x, atol=1e-6) and torch.allclose(ld, torch.zeros(6), atol=1e-6)
    fl.check_bijection(perturb(layer, std=1.0), 2 * torch.randn(6, 3))


def test_spline_coupling_keeps_masked_features_and_is_triangular():
    mask = fl.alternating_mask(5)
    n = int((mask == 0).sum())
    layer = perturb(SplineCoupling(mask, fl.MLP(5, n * spline_params_per_feature(4), hidden=16), bins=4), std=0.5)
    layer = layer.double()
    x = torch.randn(4, 5, dtype=torch.float64)
    z, _ = layer(x)
    keep = mask.bool()
    assert torch.equal(z[:, keep], x[:, keep])
    assert not torch.allclose(z[:, ~keep], x[:, ~keep])
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    order = torch.argsort(1 - mask, stable=True)
    j = jac[order][:, order]
    assert torch.allclose(j.triu(1), torch.zeros_like(j))
    assert j.tril(-1).abs().max() > 1e-3  # the transformed features do depend on the kept ones


def test_spline_coupling_rejects_a_conditioner_of_the_wrong_size():
    layer = SplineCoupling(fl.alternating_mask(4), fl.MLP(4, 8), bins=4)
    with pytest.raises(ValueError, match="conditioner must return"):
        layer(torch.randn(2, 4))
    with pytest.raises(ValueError, match="vectors"):
        SplineCoupling(fl.checkerboard_mask(4, 4), fl.MLP(4, 8))


def test_spline_coupling_flow_starts_as_identity_and_trains():
    flow = spline_coupling_flow(features=2, layers=2, hidden=16, bins=4)
    x = fl.make_toy("moons", 256)
    z, ld = flow(x)
    assert torch.allclose(z, x, atol=1e-5) and torch.allclose(ld, torch.zeros(256), atol=1e-5)
    before = -flow.log_prob(x).mean().item()
    fl.fit(flow, x, 30, lr=5e-3, batch_size=128, progress=False)
    assert -flow.log_prob(x).mean().item() < before - 0.2
    assert flow.sample(7).shape == (7, 2)


def test_params_from_knots_invert_spline_knots_and_place_the_map():
    g = torch.Generator().manual_seed(5)
    raw = [2 * torch.randn(3, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    raw.append(2 * torch.randn(3, 5, generator=g, dtype=torch.float64))
    knots = spline_knots(*raw, bound=3.0)
    back = spline_params_from_knots(*knots, bound=3.0)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(spline_knots(*back, bound=3.0), knots))
    # hand-placed knots: the map passes through them with the derivatives asked for
    kx = torch.tensor([-3.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    ky = torch.tensor([-3.0, 0.0, 1.0, 3.0], dtype=torch.float64)
    kd = torch.tensor([1.0, 2.5, 0.2, 1.0], dtype=torch.float64)
    params = spline_params_from_knots(kx, ky, kd, bound=3.0)
    y, log_deriv = fl.rational_quadratic_spline(kx[1:3], *[p.expand(2, -1) for p in params], bound=3.0)
    assert torch.allclose(y, ky[1:3], atol=1e-9) and torch.allclose(log_deriv.exp(), kd[1:3], atol=1e-9)


@pytest.mark.parametrize("kx, ky, kd, message", [
    ([-3.0, 1.0, 0.5, 3.0], [-3.0, 0.0, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0], "knots_x must increase"),
    ([-3.0, -1.0, 0.5, 2.0], [-3.0, 0.0, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0], "knots_x must run"),
    ([-3.0, -1.0, 0.5, 3.0], [-3.0, 2.0, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0], "knots_y must increase"),
    ([-3.0, -1.0, 0.5, 3.0], [-3.0, 0.0, 1.0, 3.0], [1.0, 0.0, 1.0, 1.0], "interior derivatives"),
    ([-3.0, -1.0, 0.5, 3.0], [-3.0, 0.0, 1.0, 3.0], [2.0, 1.0, 1.0, 1.0], "end derivatives"),
])
def test_params_from_knots_refuse_knots_no_spline_has(kx, ky, kd, message):
    with pytest.raises(ValueError, match=message):
        spline_params_from_knots(*(torch.tensor(v, dtype=torch.float64) for v in (kx, ky, kd)), bound=3.0)


def test_channel_spline_coupling_keeps_the_first_half_and_starts_as_identity():
    from flowlib.layers.splines import ChannelSplineCoupling

    torch.manual_seed(0)
    net = fl.GatedResNet(2, ChannelSplineCoupling.out_channels(4, 3), hidden=8)
    layer = ChannelSplineCoupling(4, net, bins=3)
    x = 2 * torch.randn(3, 4, 5, 5)
    z, logdet = layer(x)
    torch.testing.assert_close(z, x)  # zero last layer: identity, log-det 0
    torch.testing.assert_close(logdet, torch.zeros(3))
    torch.nn.init.normal_(net.out[1].weight, std=0.5)
    z, _ = layer(x)
    torch.testing.assert_close(z[:, :2], x[:, :2])
    assert (z[:, 2:] - x[:, 2:]).abs().max() > 0.1  # the second half moved
    # a spline shapes each pixel's map: the map of one pixel is not affine in its input
    grid = torch.linspace(-2.5, 2.5, 11)
    xs = x[:1].repeat(11, 1, 1, 1)
    xs[:, 2, 0, 0] = grid
    slopes = torch.diff(layer(xs)[0][:, 2, 0, 0]) / torch.diff(grid)
    assert slopes.max() - slopes.min() > 1e-3


def test_channel_spline_coupling_checks_its_conditioner_and_bins():
    from flowlib.layers.splines import ChannelSplineCoupling

    with pytest.raises(ValueError, match="must return 26 channels"):
        ChannelSplineCoupling(4, fl.GatedResNet(2, 4, hidden=8), bins=4)(torch.randn(1, 4, 2, 2))
    with pytest.raises(ValueError, match="bins must be >= 2"):
        ChannelSplineCoupling(4, fl.GatedResNet(2, 4, hidden=8), bins=1)
