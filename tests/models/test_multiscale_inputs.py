"""Edge cases of the multi-scale flow's public API (flowlib.models.multiscale, and dequantize.check_pixels): clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowlib.layers.dequantize import check_pixels
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow

from .test_multiscale import TINY, tiny


def test_an_empty_batch_is_refused_before_it_can_poison_actnorm():
    model = MultiScaleFlow(TINY)
    empty = torch.zeros(0, 1, 8, 8, dtype=torch.uint8)
    for call in (check_pixels, model.log_prob, model.bits_per_dim, model.encode):
        with pytest.raises(ValueError, match=r"got an empty batch of shape \(0, 1, 8, 8\); pass at least one image"):
            call(empty)
    assert not any(bool(m.initialized) for m in model.modules() if hasattr(m, "initialized"))


def test_sample_counts_must_be_whole_and_positive():
    model, _ = tiny()
    with pytest.raises(ValueError, match="n must be a whole number >= 1, got 0"):
        model.sample(0)
    with pytest.raises(ValueError, match="n must be a whole number >= 1, got -3"):
        model.sample_latents(-3)
    with pytest.raises(TypeError, match="n must be a whole number >= 1, got 2.5"):
        model.sample(2.5)
    with pytest.raises(TypeError, match="got True"):
        model.sample(True)
    assert model.sample(np.int64(2)).shape == model.sample(torch.tensor(2)).shape == (2, 1, 8, 8)


def test_importance_samples_must_be_whole_and_positive():
    model, x = tiny()
    with pytest.raises(TypeError, match="samples must be a whole number >= 1, got 2.5"):
        model.importance_bits_per_dim(x, samples=2.5)
    with pytest.raises(ValueError, match="samples must be a whole number >= 1, got 0"):
        model.importance_bits_per_dim(x, samples=0)
    assert model.importance_bits_per_dim(x, samples=np.int64(2)).shape == (6,)


@pytest.mark.parametrize("kw, message", [
    ({"alpha": 0.7}, r"alpha must be in \[0, 0.5\), got 0.7"),
    ({"alpha": -0.1}, r"alpha must be in \[0, 0.5\)"),
    ({"hidden": 0}, "hidden must be a whole number >= 1, got 0"),
    ({"hidden": 8.5}, "hidden must be a whole number >= 1, got 8.5"),
    ({"levels": 0}, "levels must be a whole number >= 1, got 0"),
    ({"levels": 4}, "size 8 must be divisible by 2\\*\\*levels = 16"),
    ({"pre_steps": -1}, "pre_steps must be a whole number >= 0"),
    ({"pre_steps": 1, "hidden": 1}, "hidden must be >= 2 when pre_steps > 0"),
    ({"split_prior": "no"}, "split_prior must be True or False, got 'no'"),
    ({"scale_bound": 0.0}, "scale_bound must be > 0"),
    ({"scale_bound": float("nan")}, "scale_bound must be a finite number"),
    ({"dequantization": "gaussian"}, "dequantization must be 'uniform' or 'variational'"),
])
def test_flow_config_names_the_bad_field(kw, message):
    with pytest.raises(ValueError, match=message):
        FlowConfig(**{**TINY.to_dict(), **kw})


def test_valid_edge_configs_still_build():
    MultiScaleFlow(FlowConfig(**{**TINY.to_dict(), "alpha": 0.0, "blocks": 0, "pre_steps": 1, "hidden": 2}))
