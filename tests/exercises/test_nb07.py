"""The exercise checks of notebook 07 accept the reference answers and reject plausible wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.apps.explore import LatentExplorer, lerp
from flowlib.exercises.nb07 import (
    ScriptedLatents,
    check_matching_temperature,
    check_slerp,
    matching_temperature_reference,
    slerp_reference,
)
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow


@pytest.fixture(scope="module")
def tiny_model() -> MultiScaleFlow:
    torch.manual_seed(0)
    model = fl.testing.perturb(MultiScaleFlow(FlowConfig(hidden=4, steps_per_level=1)), std=0.01, seed=0)
    images = torch.randint(0, 256, (16, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        model.log_prob(images)  # ActNorm initialisation
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(0, 256, (8, 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def not_implemented(*args):
    raise NotImplementedError


# ---- notebook 07, exercise 1 --------------------------------------------------------------
def test_slerp_reference_passes_and_nlerp_fails(tiny_model, images, capsys):
    explorer = LatentExplorer(tiny_model, images)
    assert check_slerp(slerp_reference, explorer, 0, 1)
    assert "passed" in capsys.readouterr().out

    def nlerp(a, b, t):
        line = lerp(a, b, t).flatten(1)
        target = (1 - t) * a.flatten(1).norm(dim=1) + t * b.flatten(1).norm(dim=1)
        return (line * (target / line.norm(dim=1).clamp_min(1e-12))[:, None]).reshape(a.shape)

    def no_parallel_fallback(a, b, t):
        fa, fb = a.flatten(1).double(), b.flatten(1).double()
        omega = torch.arccos((fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)))[:, None]
        return ((torch.sin((1 - t) * omega) * fa + torch.sin(t * omega) * fb) / torch.sin(omega)).to(a.dtype).view(a.shape)

    for wrong in (lerp, nlerp, no_parallel_fallback, lambda a, b, t: slerp_reference(b, a, t)):
        assert not check_slerp(wrong, explorer, 0, 1)
        assert "not yet right" in capsys.readouterr().out


# ---- notebook 07, exercise 4 --------------------------------------------------------------
def test_matching_temperature_reference_values():
    stand_in = ScriptedLatents([(2, 14, 14), (8, 7, 7)], (0.4, 0.9))
    x = torch.zeros(400, 1, 28, 28, dtype=torch.uint8)
    spread2 = torch.linspace(0.8, 1.25, 400).pow(2).mean().item()
    expected = math.sqrt(spread2 * (0.4**2 + 0.9**2) / 2)   # equal dimensions in both scales
    assert matching_temperature_reference(stand_in, x) == pytest.approx(expected, rel=0.01)


def test_matching_temperature_accepts_right_and_rejects_wrong(tiny_model, images, capsys):
    def mean_of_norms(model, x):   # mean |z| / sqrt(D) instead of the root mean square: equally right
        z = torch.cat([v.flatten(1) for v in model.encode(x)], 1)
        return (z.norm(dim=1).mean() / z.shape[1] ** 0.5).item()

    assert check_matching_temperature(matching_temperature_reference, tiny_model, images)
    assert check_matching_temperature(mean_of_norms, tiny_model, images)
    assert "passed" in capsys.readouterr().out

    def coarse_only(model, x):
        z = model.encode(x)[-1].flatten(1)
        return (z.pow(2).sum(1).mean() / z.shape[1]).sqrt().item()

    def mean_of_scale_ratios(model, x):
        return sum((z.flatten(1).pow(2).sum(1).mean() / z[0].numel()).sqrt().item() for z in model.encode(x)) / 2

    def squared(model, x):   # forgets the square root
        return matching_temperature_reference(model, x) ** 2

    def prior(model, x):
        return 1.0

    for wrong in (coarse_only, mean_of_scale_ratios, squared, prior):
        assert not check_matching_temperature(wrong, tiny_model, images), wrong.__name__
        assert "not yet right" in capsys.readouterr().out
    assert not check_matching_temperature(not_implemented)
