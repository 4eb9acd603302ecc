from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.core.testing import perturb
from flowlib.layers.cnf import CNF, cnf_flow, exact_trace, hutchinson_trace


def _cnf(features: int = 2, tol: float = 1e-6, **kwargs) -> CNF:
    return perturb(CNF(features, hidden=16, rtol=tol, atol=tol, **kwargs), std=0.5)


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-8])
def test_check_bijection_with_a_tolerance_matched_to_the_solver(tol):
    x = torch.randn(4, 2, dtype=torch.float64)
    # the round trip and the log-det are exact only up to the solver's error, ~10-50 times its tolerance here
    report = fl.check_bijection(_cnf(tol=tol), x, atol=100 * tol, rtol=0)
    assert report.roundtrip_error < 100 * tol


def test_a_loose_solver_fails_a_tight_check():
    # the tolerance matters: the same check at 1e-6 rejects a solve accurate to only 1e-3
    with pytest.raises(AssertionError):
        fl.check_bijection(_cnf(tol=1e-3), torch.randn(4, 2, dtype=torch.float64))


def test_fresh_cnf_is_the_identity():
    layer = CNF(3)
    x = torch.randn(5, 3)
    z, ld = layer(x)
    assert torch.allclose(z, x) and torch.allclose(ld, torch.zeros(5))


def test_exact_trace_equals_the_trace_of_the_autograd_jacobian():
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    tr = exact_trace(net(z), z)
    for b in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], z[b].detach())
        assert torch.allclose(tr[b], jac.trace(), atol=1e-12)


def test_hutchinson_is_unbiased_but_not_exact():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    z = torch.randn(1, 3, dtype=torch.float64).expand(20_000, 3).clone().requires_grad_(True)
    dz = net(z)
    eps = torch.randint(0, 2, z.shape).double() * 2 - 1
    estimates = hutchinson_trace(dz, z, eps)
    exact = exact_trace(dz, z)[0]
    stderr = estimates.std() / len(estimates) ** 0.5
    assert estimates.std() > 1e-3  # one estimate alone is noisy...
    assert (estimates.mean() - exact).abs() < 4 * stderr  # ...but their mean is the trace


def test_hutchinson_cnf_log_det_averages_to_the_exact_one():
    layer = _cnf(tol=1e-6).double()
    x = torch.randn(1, 2, dtype=torch.float64).expand(2000, 2).clone()
    with torch.no_grad():
        _, ld_exact = layer(x)
        layer.trace = "hutchinson"
        _, ld_hutch = layer(x)
    # one Rademacher draw per example; in 2D the estimate can differ from the exact log-det
    stderr = ld_hutch.std() / len(ld_hutch) ** 0.5
    assert ld_hutch.std() > 1e-4
    assert (ld_hutch.mean() - ld_exact[0]).abs() < 4 * stderr + 1e-5


def test_adjoint_gives_the_same_gradients():
    x = torch.randn(8, 2, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(0)
        flow = fl.Flow(_cnf(tol=1e-8, adjoint=adjoint).double(), event_shape=(2,))
        (-flow.log_prob(x).mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in flow.parameters()]))
    assert grads[0].abs().max() > 1e-3
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_trajectory_ends_where_the_inverse_does_and_nfe_is_counted():
    layer = _cnf(tol=1e-6)
    z = torch.randn(6, 2)
    path = layer.trajectory(z, steps=11)
    assert path.shape == (11, 6, 2)
    assert torch.allclose(path[0], z)
    x, _ = layer.inverse(z)
    assert layer.nfe > 2
    assert torch.allclose(path[-1], x, atol=1e-4)
    forward_path = layer.trajectory(x, steps=5, inverse=False)
    assert torch.allclose(forward_path[-1], z, atol=1e-3)


def test_cnf_flow_trains():
    torch.manual_seed(0)
    flow = cnf_flow(2, hidden=16, rtol=1e-3, atol=1e-3)
    x = fl.make_toy("moons", 256)
    before = -flow.log_prob(x).mean().item()
    flow.zero_grad()
    (-flow.log_prob(x).mean()).backward()
    assert all(p.grad is not None for p in flow.parameters())
    last = flow.bijection.func.dynamics.net[-1]  # zero at the start: only it gets a gradient at first
    assert last.weight.grad.abs().sum() > 0
    fl.fit(flow, x, 15, lr=1e-2, batch_size=128, progress=False)
    assert -flow.log_prob(x).mean().item() < before - 0.1
    assert flow.sample(4).shape == (4, 2)


def test_bad_trace_option_raises():
    with pytest.raises(ValueError, match="trace"):
        CNF(2, trace="approximate")
    layer = CNF(2)
    with pytest.raises(ValueError, match="trace"):
        layer.trace = "approximate"
