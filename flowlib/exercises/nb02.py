"""Notebook 02's exercise: a half coupling layer, its reference answer and automatic check.

The identity map and an answer with shift and scale swapped, both perfect bijections, are rejected (see
:mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.bijection import Bijection
from ..core.testing import check_bijection, perturb
from ..layers.nets import MLP
from .runner import _compare_bijections, run_check

__all__ = ["HalfCouplingReference", "check_half_coupling"]



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
                _compare_bijections(layer64, reference, x, f"D = {features}")
            report = check_bijection(layer, x)
        return report

    return run_check("Exercise 1", check, "the class")
