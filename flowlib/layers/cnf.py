"""A continuous normalizing flow, FFJORD-style (notebook 10).

The map is the solution of an ordinary differential equation ``dz/dt = f(z, t)``
with a neural network ``f``. By the instantaneous change of variables (Chen et al.
2018), the log-density along a solution moves as ``d log p(z(t))/dt = -tr(df/dz)``, so

    forward (data -> latent):  z = z(T) from z(0) = x,
                               log|det dz/dx| = int_0^T tr(df/dz(z(t), t)) dt,

and ``inverse`` integrates the same ODE from ``t = T`` back to ``t = 0``. Here data sits at
``t = 0`` and the latent at ``t = T``. The trace is exact (``D`` backward passes, the right
choice for 2D) or Hutchinson's unbiased estimate ``E[eps^T (df/dz) eps]`` with one
``eps`` per solve (Grathwohl et al. 2019, FFJORD). The ODE is solved by torchdiffeq
(adaptive Dormand-Prince by default); ``adjoint=True`` uses its adjoint method for the
gradients (memory independent of the number of solver steps).

Invertibility and the log-determinant hold up to the solver's tolerance, so tests
check this layer with a tolerance that matches ``rtol``/``atol``.
"""

from __future__ import annotations

import torch
import torchdiffeq
from torch import Tensor, nn

from ..core.bijection import Bijection, check_input
from ..core.flow import Flow
from .nets import zero_init

__all__ = ["CNF", "exact_trace", "hutchinson_trace", "cnf_flow"]


def exact_trace(dz: Tensor, z: Tensor, create_graph: bool = False) -> Tensor:
    """``tr(d dz / d z)`` per example from ``D`` backward passes; ``dz, z: (B, D) -> (B,)``."""
    trace = z.new_zeros(z.shape[0])
    for i in range(z.shape[1]):
        grad = torch.autograd.grad(dz[:, i].sum(), z, create_graph=create_graph, retain_graph=True)[0]
        trace = trace + grad[:, i]
    return trace


def hutchinson_trace(dz: Tensor, z: Tensor, eps: Tensor, create_graph: bool = False) -> Tensor:
    """Hutchinson's estimate ``eps^T (d dz / d z) eps`` from one backward pass; unbiased
    when ``E[eps eps^T] = I`` (Rademacher or standard normal ``eps``). Shapes ``(B, D) -> (B,)``."""
    vjp = torch.autograd.grad((dz * eps).sum(), z, create_graph=create_graph, retain_graph=True)[0]
    return (vjp * eps).sum(1)


class _Dynamics(nn.Module):
    """``f(z, t)``: an MLP on ``[z, t]`` with smooth (tanh) activations; last layer zero, so
    a fresh CNF is the identity map."""

    def __init__(self, features: int, hidden: int, layers: int):
        super().__init__()
        dims = [features + 1] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.Tanh()]
        mods.append(zero_init(nn.Linear(dims[-1], features)))
        self.net = nn.Sequential(*mods)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([z, t.to(z.dtype).expand(z.shape[0], 1)], 1))


class _ODEFunc(nn.Module):
    """The augmented ODE ``d(z, logdet)/dt = (f(z, t), tr(df/dz))`` that torchdiffeq solves."""

    def __init__(self, dynamics: nn.Module, trace: str):
        super().__init__()
        self.dynamics = dynamics
        self.trace = trace
        self.eps: Tensor | None = None
        self.nfe = 0

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        self.nfe += 1
        z = state[0]
        keep_graph = torch.is_grad_enabled()  # training, the adjoint, or a Jacobian check
        with torch.enable_grad():
            if not (keep_graph and z.requires_grad):  # a fresh leaf to differentiate dz with respect to
                z = z.detach().requires_grad_(True)
            dz = self.dynamics(t, z)
            if self.trace == "exact":
                tr = exact_trace(dz, z, create_graph=keep_graph)
            else:
                tr = hutchinson_trace(dz, z, self.eps, create_graph=keep_graph)
        if not keep_graph:
            dz, tr = dz.detach(), tr.detach()
        return dz, tr


class CNF(Bijection):
    """Continuous normalizing flow on ``x: (B, D)``: ``dz/dt = f(z, t)``, data at ``t = 0``,
    latent at ``t = T``.

    Args:
        hidden, layers: size of the network ``f`` (tanh MLP on ``[z, t]``).
        time: ``T``, the integration time.
        trace: ``"exact"`` or ``"hutchinson"`` (Rademacher noise, one draw per solve).
        solver, rtol, atol, options: passed to ``torchdiffeq.odeint``.
        adjoint: compute gradients with ``torchdiffeq.odeint_adjoint``.
        dynamics: a module ``f(t, z)`` on ``z: (B, D)`` to use instead of the tanh MLP (``hidden``
            and ``layers`` are then unused); flow matching (notebook 11) passes its learned field.

    ``nfe`` holds the number of evaluations of ``f`` in the last solve.
    """

    def __init__(self, features: int, hidden: int = 64, layers: int = 2, time: float = 1.0, trace: str = "exact",
                 solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5, adjoint: bool = False,
                 options: dict | None = None, dynamics: nn.Module | None = None):
        super().__init__()
        if trace not in ("exact", "hutchinson"):
            raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
        self.features, self.time = features, float(time)
        self.solver, self.rtol, self.atol, self.adjoint, self.options = solver, rtol, atol, adjoint, options
        self.func = _ODEFunc(dynamics if dynamics is not None else _Dynamics(features, hidden, layers), trace)

    @property
    def trace(self) -> str:
        """``"exact"`` or ``"hutchinson"``; may be changed between calls."""
        return self.func.trace

    @trace.setter
    def trace(self, value: str) -> None:
        if value not in ("exact", "hutchinson"):
            raise ValueError(f"trace must be 'exact' or 'hutchinson', got {value!r}")
        self.func.trace = value

    @property
    def nfe(self) -> int:
        return self.func.nfe

    def _solve(self, v: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        # integrate (z, logdet) over ``times``; returns both at every time, shapes (T, B, D), (T, B)
        self.func.nfe = 0
        if self.func.trace == "hutchinson":  # one Rademacher draw, fixed for the whole solve
            self.func.eps = torch.randint(0, 2, v.shape, device=v.device).to(v.dtype) * 2 - 1
        odeint = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        state = (v, v.new_zeros(v.shape[0]))
        return odeint(self.func, state, times.to(v.device, v.dtype), method=self.solver,
                      rtol=self.rtol, atol=self.atol, options=self.options)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=2, features=self.features)
        z, logdet = self._solve(x, torch.tensor([0.0, self.time]))
        return z[-1], logdet[-1]

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=2, name="z", features=self.features)
        x, logdet = self._solve(z, torch.tensor([self.time, 0.0]))
        return x[-1], logdet[-1]

    @torch.no_grad()
    def trajectory(self, v: Tensor, steps: int = 21, inverse: bool = True) -> Tensor:
        """Positions at ``steps`` equally spaced times, ``(steps, B, D)``: from latent to data
        (``inverse=True``, ``t`` from ``T`` to 0) or from data to latent."""
        check_input(v, ndim=2, features=self.features)
        times = torch.linspace(self.time, 0.0, steps) if inverse else torch.linspace(0.0, self.time, steps)
        return self._solve(v, times)[0]


def cnf_flow(features: int = 2, hidden: int = 64, layers: int = 2, **kwargs) -> Flow:
    """A :class:`CNF` on a standard normal base; ``kwargs`` go to :class:`CNF`."""
    return Flow(CNF(features, hidden=hidden, layers=layers, **kwargs), event_shape=(features,))
