"""Reference answers and automatic checks for the coding exercises of notebooks 01 and 02.

The notebooks import the checks from here, so a learner sees no solution until they open this
file, while the tests (tests/test_exercises.py) prove that every check accepts the reference
answer and rejects wrong ones that ``check_bijection`` alone would let through: the identity
map and answers with two parameters swapped.

Each ``check_*`` function takes the learner's class, prints what it found and returns whether
the answer is right; a ``NotImplementedError`` (the unfilled template) counts as "not yet".
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .bijection import Bijection
from .nets import MLP
from .testing import check_bijection, perturb

__all__ = ["LeakyReLUReference", "HalfCouplingReference", "check_leaky_relu", "check_half_coupling"]


class LeakyReLUReference(Bijection):
    """Notebook 01, exercise 1: ``z = x`` where ``x >= 0``, ``z = alpha * x`` where ``x < 0``.

    Elementwise on ``x: (B, D)``; ``log|det dz/dx| = log(alpha) * #{i : x_i < 0}``.
    """

    def __init__(self, alpha: float = 0.3):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        negative = x < 0
        return torch.where(negative, self.alpha * x, x), negative.to(x.dtype).sum(1) * math.log(self.alpha)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        negative = z < 0  # alpha > 0 keeps the sign, so z < 0 exactly where x < 0
        return torch.where(negative, z / self.alpha, z), -negative.to(z.dtype).sum(1) * math.log(self.alpha)


class HalfCouplingReference(Bijection):
    """Notebook 02, exercise 1: a coupling that splits ``x: (B, D)`` into halves (Glow-style scale).

    ``x_a = x[:, :d]``, ``x_b = x[:, d:]`` with ``d = D // 2``; ``[t, r] = net(x_a)``;
    ``z_b = (x_b + t) * sigmoid(r + 2)``; ``log|det J| = sum_j log sigmoid(r_j + 2)``.
    """

    def __init__(self, features: int, hidden: int = 32):
        super().__init__()
        self.d = features // 2
        self.net = MLP(self.d, 2 * (features - self.d), hidden=hidden)  # outputs [t, r]

    def shift_and_log_scale(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        t, r = self.net(x_a).chunk(2, dim=1)
        return t, F.logsigmoid(r + 2.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, :self.d], x[:, self.d:]
        t, log_scale = self.shift_and_log_scale(x_a)
        return torch.cat([x_a, (x_b + t) * log_scale.exp()], 1), log_scale.sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z_a, z_b = z[:, :self.d], z[:, self.d:]
        t, log_scale = self.shift_and_log_scale(z_a)
        return torch.cat([z_a, z_b * (-log_scale).exp() - t], 1), -log_scale.sum(1)


def _compare(name: str, got, expected: Tensor, tol: float = 1e-8) -> None:
    if not isinstance(got, Tensor) or got.shape != expected.shape:
        shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
        raise AssertionError(f"{name} has shape {shape}, expected {tuple(expected.shape)}")
    err = (got.double() - expected).abs().max().item()
    if not err <= tol:
        raise AssertionError(f"{name} differs from the map the exercise asks for (max abs error {err:.3g})")


def run_check(label: str, check, what: str = "the code") -> bool:
    """Run ``check()``; print "passed", "not yet right: <what differs>" or "not implemented yet"; return success.

    The one runner behind every exercise check of the course (notebooks 01-07).
    """
    try:
        report = check()
    except NotImplementedError:
        print(f"{label}: not implemented yet. Fill in {what} above, run that cell, then this one.")
        return False
    except AssertionError as err:
        print(f"{label}: not yet right: {err}")
        return False
    print(f"{label} passed: {report}")
    return True


def check_leaky_relu(cls: type[Bijection]) -> bool:
    """Notebook 01, exercise 1: ``cls(alpha)`` must be the leaky ReLU, with its log-det, both ways.

    Compared with :class:`LeakyReLUReference` for ``alpha = 0.3`` and ``alpha = 2.5`` (so a hard-coded
    or inverted alpha fails), then ``check_bijection``.
    """

    def check():
        x = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        for alpha in (0.3, 2.5):
            layer = cls(alpha=alpha)
            reference = LeakyReLUReference(alpha)
            z_ref, ld_ref = reference(x)
            z, ld = layer(x)
            _compare(f"forward(x)[0] with alpha = {alpha}", z, z_ref)
            _compare(f"the forward log-det with alpha = {alpha}", ld, ld_ref)
            x_back, ld_back = layer.inverse(z_ref)
            _compare(f"inverse(z)[0] with alpha = {alpha}", x_back, x)
            _compare(f"the inverse log-det with alpha = {alpha}", ld_back, -ld_ref)
        return check_bijection(cls(alpha=0.3), x)

    return run_check("Exercise 1", check, "the class")


def check_half_coupling(cls: type[Bijection]) -> bool:
    """Notebook 02, exercise 1: ``cls(features)`` must be the half-split coupling with scale ``sigmoid(r + 2)``.

    The learner's layer keeps the template's network ``net``; its (perturbed) weights are copied into
    :class:`HalfCouplingReference` and both are compared for odd and even ``features``, then
    ``check_bijection`` runs.
    """

    def check():
        report = None
        for features in (5, 4):  # odd on purpose: the two halves differ in size
            layer = perturb(cls(features=features), std=0.3, seed=features)
            reference = HalfCouplingReference(features)
            try:
                reference.load_state_dict(layer.state_dict())
            except RuntimeError as err:
                raise AssertionError("keep the template's __init__ (one network `net`, outputs [t, r]); "
                                     f"its parameters do not fit: {err}") from None
            layer64, reference = copy.deepcopy(layer).double(), reference.double()
            x = torch.randn(16, features, dtype=torch.float64, generator=torch.Generator().manual_seed(features))
            with torch.no_grad():
                z_ref, ld_ref = reference(x)
                z, ld = layer64(x)
                _compare(f"forward(x)[0] with D = {features}", z, z_ref)
                _compare(f"the forward log-det with D = {features}", ld, ld_ref)
                x_back, ld_back = layer64.inverse(z_ref)
                _compare(f"inverse(z)[0] with D = {features}", x_back, x)
                _compare(f"the inverse log-det with D = {features}", ld_back, -ld_ref)
            report = check_bijection(layer, x)
        return report

    return run_check("Exercise 1", check, "the class")
