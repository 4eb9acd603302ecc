r"""Flow matching: train a continuous flow by regression, sample it by an ODE, score it exactly (notebook 11).

**Path.** Noise ``x0 ~ N(0, I)`` at ``t = 0``, data ``x1`` at ``t = 1``, and the linear
(optimal-transport) conditional path of Lipman et al. (2023, *Flow Matching for Generative Modeling*)

.. math::
    x_t = (1 - (1 - \sigma_{min}) t)\, x_0 + t\, x_1, \qquad
    u_t(x_t \mid x_0, x_1) = \frac{d x_t}{dt} = x_1 - (1 - \sigma_{min})\, x_0 ,

so ``p_t(x | x1) = N(t x1, (1 - (1 - sigma_min) t)^2 I)``; ``sigma_min = 0`` is rectified flow
(Liu et al. 2023) and the interpolant of Albergo and Vanden-Eijnden (2023).

**Loss.** The marginal field ``u_t(x) = E[u_t(x | x1) | x_t = x]`` carries ``p_0`` to the data
distribution, but needs an integral over the data. The conditional loss

.. math::
    L_{CFM}(\theta) = \mathbb E_{t, x_0, x_1} \| v_\theta(t, x_t) - u_t(x_t \mid x_0, x_1) \|^2

differs from ``E || v_theta - u_t(x_t) ||^2`` by a constant independent of ``theta``, so both have
the same gradient (Lipman et al. 2023, theorem 2): no ODE is solved during training.

**Likelihood.** The learned ODE is a continuous normalizing flow; ``log p_1(x)`` follows from the
instantaneous change of variables, computed by :class:`flowlib.layers.cnf.CNF` (notebook 10) on the
time-reversed field (data at its ``t = 0``), with the exact trace (2D) or Hutchinson's estimator
(images). Image bits/dim go through the dequantization and logit of :mod:`flowlib.layers.dequantize`,
the same definition as :class:`flowlib.models.multiscale.MultiScaleFlow`.

**Reflow** (Liu et al. 2023): retrain on couples ``(x0, x1 = ODE(x0))`` of the model's own
deterministic map; the new paths cross less and are straighter, so few Euler steps suffice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchdiffeq
from torch import Tensor, nn

from ..core.flow import Flow
from .cnf import CNF

__all__ = [
    "LinearPath",
    "cfm_loss",
    "sample_ode",
    "TimeReversed",
    "likelihood_flow",
    "log_likelihood",
    "image_bits_per_dim",
    "marginal_field",
    "reflow_couples",
    "straightness",
]

Field = Callable[[Tensor, Tensor], Tensor]


class LinearPath:
    r"""The linear conditional path ``x_t = (1 - (1 - sigma_min) t) x0 + t x1`` and its velocity."""

    def __init__(self, sigma_min: float = 0.0):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
        self.sigma_min = float(sigma_min)

    def _t(self, t: Tensor, like: Tensor) -> Tensor:
        return t.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """``x_t`` for ``t: (B,)`` and ``x0, x1`` of the same shape ``(B, ...)``."""
        tt = self._t(t, x1)
        return (1 - (1 - self.sigma_min) * tt) * x0 + tt * x1

    def target(self, x0: Tensor, x1: Tensor, t: Tensor | None = None) -> Tensor:
        """``u_t(x_t | x0, x1) = x1 - (1 - sigma_min) x0`` (the same at every ``t``)."""
        return x1 - (1 - self.sigma_min) * x0

    def std(self, t: Tensor) -> Tensor:
        """``sigma_t = 1 - (1 - sigma_min) t``, the width of ``p_t(x | x1)``."""
        return 1 - (1 - self.sigma_min) * t


def cfm_loss(
    field: Field, x1: Tensor, path: LinearPath | None = None, x0: Tensor | None = None, t: Tensor | None = None
) -> Tensor:
    """Conditional flow-matching loss: mean over the batch and the dimensions of ``(v(t, x_t) - u_t)^2``.

    ``x0`` defaults to fresh standard normal noise (given for reflow couples), ``t`` to ``U[0, 1)``.
    """
    path = path or LinearPath()
    x0 = torch.randn_like(x1) if x0 is None else x0
    t = torch.rand(x1.shape[0], device=x1.device, dtype=x1.dtype) if t is None else t
    xt = path.sample(x0, x1, t)
    return (field(t, xt) - path.target(x0, x1, t)).pow(2).mean()


class _Counted(nn.Module):
    def __init__(self, field: Field):
        super().__init__()
        self.field, self.nfe = field, 0

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.nfe += 1
        return self.field(t, x)


@torch.no_grad()
def sample_ode(
    field: Field,
    x0: Tensor,
    steps: int | None = None,
    method: str = "euler",
    t0: float = 0.0,
    t1: float = 1.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[Tensor, int]:
    """Solve ``dx/dt = v(t, x)`` from ``x(t0) = x0`` to ``t1``; return ``(x(t1), nfe)``.

    ``method``: ``"euler"`` (``steps`` evaluations, first order), ``"midpoint"`` (``2 steps``,
    second order), or ``"adaptive"`` (torchdiffeq's Dormand-Prince with ``rtol``/``atol``; ``nfe`` as counted).
    """
    if method == "adaptive":
        f = _Counted(field)
        out = torchdiffeq.odeint(
            f, x0, torch.tensor([t0, t1], dtype=x0.dtype, device=x0.device), method="dopri5", rtol=rtol, atol=atol
        )
        return out[-1], f.nfe
    if method not in ("euler", "midpoint"):
        raise ValueError(f"method must be 'euler', 'midpoint' or 'adaptive', got {method!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    h = (t1 - t0) / steps
    x, nfe = x0, 0
    for k in range(steps):
        t = torch.tensor(t0 + k * h, dtype=x0.dtype, device=x0.device)
        if method == "euler":
            x = x + h * field(t, x)
            nfe += 1
        else:
            x_half = x + 0.5 * h * field(t, x)
            x = x + h * field(t + 0.5 * h, x_half)
            nfe += 2
    return x, nfe


class TimeReversed(nn.Module):
    """``f(s, z) = -v(1 - s, z)``: the field run from data (``s = 0``) to noise (``s = 1``), on flat ``z: (B, D)``.

    ``shape`` is the shape of one example ``v`` expects, e.g. ``(1, 28, 28)``; ``z`` is reshaped for it.
    """

    def __init__(self, field: nn.Module, shape: tuple[int, ...] | None = None):
        super().__init__()
        self.field, self.shape = field, shape

    def forward(self, s: Tensor, z: Tensor) -> Tensor:
        x = z if self.shape is None else z.reshape(z.shape[0], *self.shape)
        return -self.field(1 - s, x).reshape(z.shape)


def likelihood_flow(
    field: nn.Module,
    features: int,
    shape: tuple[int, ...] | None = None,
    trace: str = "exact",
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Flow:
    r"""The flow-matching model as a :class:`flowlib.Flow` on flat ``x: (B, D)`` with a standard normal base.

    ``forward`` (data -> latent) is notebook 10's :class:`CNF` on :class:`TimeReversed` ``(field)``, so

    .. math:: \log p_1(x) = \log N(z) + \int_1^0 \operatorname{tr} \frac{\partial v}{\partial x}(x_t, t)\, dt,

    with ``trace="exact"`` (``D`` backward passes) or ``"hutchinson"`` (one Rademacher vector per solve).
    ``flow.bijection.nfe`` counts the evaluations of the last solve.
    """
    cnf = CNF(features, trace=trace, rtol=rtol, atol=atol, dynamics=TimeReversed(field, shape))
    return Flow(cnf, event_shape=(features,))


@torch.no_grad()
def log_likelihood(
    field: nn.Module, x: Tensor, trace: str = "exact", rtol: float = 1e-5, atol: float = 1e-5
) -> tuple[Tensor, int]:
    """``log p_1(x)`` in nats for ``x: (B, ...)`` under the model, and the NFE of the solve."""
    shape = tuple(x.shape[1:])
    flow = likelihood_flow(field, math.prod(shape), shape if len(shape) > 1 else None, trace, rtol, atol)
    lp = flow.log_prob(x.reshape(x.shape[0], -1))
    return lp, flow.bijection.nfe


@torch.no_grad()
def image_bits_per_dim(
    field: nn.Module,
    images: Tensor,
    dequant: nn.Module,
    batch_size: int = 100,
    trace: str = "hutchinson",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    progress: bool = False,
) -> dict:
    r"""Test bits/dim of integer ``images: (N, C, H, W)`` with the standard error of their mean.

    ``dequant`` (e.g. ``UniformDequantization(alpha=0.05)``) maps pixels to logit space
    ``y`` with a log-det holding the logit, the ``-D log 256`` bin term and ``-log q(u|x)``; the
    field models ``y``. Per image ``b = -(log p_1(y) + logdet) / (D ln 2)``, an upper bound on the
    discrete bits/dim in expectation (dequantization and Hutchinson noise are both unbiased in ``log p``).
    Returns ``{"bpd", "stderr", "n", "nfe", "per_image"}``; ``stderr = std(b) / sqrt(N)`` includes the
    spread over images and both noises.
    """
    from tqdm.auto import tqdm

    values, nfes = [], []
    for chunk in tqdm(images.split(batch_size), desc="bits/dim", disable=not progress, leave=False):
        y, ld = dequant(chunk.to(torch.get_default_dtype()))
        lp, nfe = log_likelihood(field, y, trace, rtol, atol)
        values.append(-(lp + ld) / (y[0].numel() * math.log(2)))
        nfes.append(nfe)
    b = torch.cat(values).double()
    return {
        "bpd": b.mean().item(),
        "stderr": (b.std() / math.sqrt(len(b))).item() if len(b) > 1 else float("nan"),
        "n": len(b),
        "nfe": sum(nfes) / len(nfes),
        "per_image": b,
    }


def marginal_field(x: Tensor, t: float, data: Tensor, path: LinearPath | None = None) -> Tensor:
    r"""Monte Carlo estimate of the marginal field ``u_t(x) = E[u_t(x | x1) | x_t = x]`` from ``data`` samples of ``x1``.

    With ``p_t(x | x1) = N(t x1, sigma_t^2 I)`` and ``u_t(x | x1) = (x1 - (1 - sigma_min) x) / sigma_t``, the
    posterior weights are ``softmax_j(-||x - t x1_j||^2 / (2 sigma_t^2))``. ``x: (B, D)``, ``data: (N, D)``, ``t < 1``.
    """
    path = path or LinearPath()
    s = float(path.std(torch.tensor(t)))
    logw = -(x[:, None, :] - t * data[None]).pow(2).sum(-1) / (2 * s * s)  # (B, N)
    w = logw.softmax(1)
    cond = (data[None] - (1 - path.sigma_min) * x[:, None, :]) / s  # (B, N, D)
    return (w[..., None] * cond).sum(1)


@torch.no_grad()
def reflow_couples(
    field: Field, n: int, features: int, steps: int = 100, generator: torch.Generator | None = None, batch_size: int = 10_000
) -> tuple[Tensor, Tensor]:
    """``n`` couples ``(x0, x1)`` of the model's own map: ``x0 ~ N(0, I)``, ``x1`` its midpoint ODE solution."""
    x0 = torch.randn(n, features, generator=generator)
    x1 = torch.cat([sample_ode(field, c, steps, "midpoint")[0] for c in x0.split(batch_size)])
    return x0, x1


@torch.no_grad()
def straightness(field: Field, x0: Tensor, steps: int = 100) -> float:
    r"""Mean squared deviation of the ODE's paths from straight lines (Liu et al. 2023, eq. 5):

    .. math:: S = \int_0^1 \mathbb E \| (x_1 - x_0) - v(t, x_t) \|^2 dt,

    on a midpoint trajectory of ``steps`` steps from ``x0`` (per dimension); zero exactly when every path is straight.
    """
    h = 1.0 / steps
    vs = []
    x = x0
    for k in range(steps):
        t = torch.tensor((k + 0.5) * h, dtype=x0.dtype)
        x_half = x + 0.5 * h * field(torch.tensor(k * h, dtype=x0.dtype), x)
        v = field(t, x_half)
        vs.append(v)
        x = x + h * v
    total = x - x0
    return torch.stack([(total - v).pow(2).mean() for v in vs]).mean().item()
