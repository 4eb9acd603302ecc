"""The helpers and exercise checks of notebooks 06 and 07 (flowlib/exercises67.py): every check
accepts the reference answer and other correct ways to write it, and rejects plausible wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.exercises67 import (
    ScriptedLatents,
    ScriptedLogProb,
    check_importance_bpd,
    check_latent_shapes,
    check_matching_temperature,
    check_slerp,
    config_summary,
    importance_bpd_reference,
    latent_shapes_reference,
    matching_temperature_reference,
    run_summary,
    slerp_reference,
)
from flowlib.explore import LatentExplorer, lerp
from flowlib.model import FlowConfig, MultiScaleFlow


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


# ---- summaries ----------------------------------------------------------------------------
def test_config_summary_reads_the_config():
    text = config_summary(FlowConfig(levels=3, steps_per_level=5, hidden=24, pre_steps=2, dequantization="variational",
                                     alpha=1e-5, size=32))
    for part in ("3 levels x 5 Glow steps", "24 hidden channels", "2 checkerboard", "variational", "1e-05"):
        assert part in text, (part, text)
    assert "checkerboard" not in config_summary(FlowConfig(pre_steps=0))


def test_run_summary_reads_the_stored_values(tiny_model):
    info = {"step": 3000, "metrics": {"train_seconds": 600.0, "test_bpd": 1.2345, "test_bpd_images": 1000},
            "history": {"train_config": {"batch_size": 64, "lr": 2e-3, "minutes": 10.0}}}
    text = run_summary(tiny_model, info)
    for part in ("3,000 steps of 64 images (3.2 epochs)", "10.0 min of training", "time budget 10 min", "1.234",
                 "first 1000 test images", f"{tiny_model.num_parameters():,} parameters"):
        assert part in text, (part, text)
    assert "no test bits/dim" in run_summary(tiny_model, {"step": 0, "metrics": {}})


# ---- notebook 06, exercise 1 --------------------------------------------------------------
def test_latent_shapes_reference_passes(capsys):
    assert check_latent_shapes(latent_shapes_reference)
    assert "passed" in capsys.readouterr().out


def test_latent_shapes_rejects_wrong_answers(capsys):
    def split_every_level(config):   # also splits after the last level
        c, s, shapes = config.channels, config.size, []
        for _ in range(config.levels):
            c, s = 4 * c, s // 2
            shapes.append((c // 2, s, s))
            c //= 2
        return shapes + [(c, s, s)]

    def coarse_first(config):
        return latent_shapes_reference(config)[::-1]

    def two_levels_only(config):
        return [(2, config.size // 2, config.size // 2), (8, config.size // 4, config.size // 4)]

    for wrong in (split_every_level, coarse_first, two_levels_only):
        assert not check_latent_shapes(wrong), wrong.__name__
        assert "not yet right" in capsys.readouterr().out
    assert not check_latent_shapes(not_implemented)
    assert "not implemented" in capsys.readouterr().out


# ---- notebook 06, exercise 2 --------------------------------------------------------------
def vectorised_importance_bpd(model, x, samples):
    # one call on a repeated batch: draws its noise in another order than the loop
    log_probs = model.log_prob(x.repeat(samples, 1, 1, 1)).view(samples, len(x))
    return -(torch.logsumexp(log_probs, 0) - math.log(samples)) / (x[0].numel() * math.log(2))


def interleaved_importance_bpd(model, x, samples):
    log_probs = model.log_prob(x.repeat_interleave(samples, 0)).view(len(x), samples)
    return -(torch.logsumexp(log_probs, 1) - math.log(samples)) / (model.num_dims * math.log(2))


def test_importance_bpd_accepts_every_correct_answer(tiny_model, images, capsys):
    for right in (importance_bpd_reference, vectorised_importance_bpd, interleaved_importance_bpd):
        assert check_importance_bpd(right, tiny_model, images), right.__name__
        assert "passed" in capsys.readouterr().out


def test_importance_bpd_rejects_wrong_answers(tiny_model, images, capsys):
    def average_of_bpds(model, x, samples):   # the average outside the logarithm
        return torch.stack([model.bits_per_dim(x) for _ in range(samples)]).mean(0)

    def without_log_k(model, x, samples):
        lp = torch.stack([model.log_prob(x) for _ in range(samples)])
        return -torch.logsumexp(lp, 0) / (x[0].numel() * math.log(2))

    def in_nats(model, x, samples):
        lp = torch.stack([model.log_prob(x) for _ in range(samples)])
        return -(torch.logsumexp(lp, 0) - math.log(samples)) / x[0].numel()

    def one_sample_only(model, x, samples):
        return model.bits_per_dim(x)

    def best_sample(model, x, samples):
        lp = torch.stack([model.log_prob(x) for _ in range(samples)])
        return -lp.max(0).values / (x[0].numel() * math.log(2))

    def uses_the_library(model, x, samples):
        return model.importance_bits_per_dim(x, samples)

    for wrong in (average_of_bpds, without_log_k, in_nats, one_sample_only, best_sample, uses_the_library):
        assert not check_importance_bpd(wrong, tiny_model, images), wrong.__name__
        assert "not yet right" in capsys.readouterr().out
    assert not check_importance_bpd(not_implemented)
    assert "not implemented" in capsys.readouterr().out


def test_scripted_log_prob_is_independent_of_call_order():
    images = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    scripted = ScriptedLogProb(images, values)
    assert scripted.log_prob(images[[2, 0, 2]]).tolist() == [5.0, 1.0, 6.0]
    assert scripted.log_prob(images[[1, 0, 1]]).tolist() == [3.0, 2.0, 4.0]
    with pytest.raises(AssertionError, match="more than"):
        scripted.log_prob(images[:1])
    with pytest.raises(AssertionError, match="not one of"):
        scripted.log_prob(torch.full((1, 1, 2, 2), 9, dtype=torch.uint8))
    with pytest.raises(ValueError, match="distinct"):
        ScriptedLogProb(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), values[:2])


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
