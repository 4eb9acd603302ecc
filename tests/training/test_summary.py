"""The run and config summaries of notebooks 06-08 read what the model and checkpoint store."""

from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow
from flowlib.training.summary import config_summary, run_summary


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
    assert "(affine couplings)" in text
    assert "(3-component logistic-mixture couplings)" in config_summary(FlowConfig(coupling="mixture",
                                                                                   mixture_components=3))
    assert "(5-bin spline couplings)" in config_summary(FlowConfig(coupling="spline", spline_bins=5))


def test_run_summary_reads_the_stored_values(tiny_model):
    info = {"step": 3000, "metrics": {"train_seconds": 600.0, "test_bpd": 1.2345, "test_bpd_images": 1000},
            "history": {"train_config": {"batch_size": 64, "lr": 2e-3, "minutes": 10.0}}}
    text = run_summary(tiny_model, info)
    for part in ("3,000 steps of 64 images (3.2 epochs)", "10.0 min of training", "time budget 10 min", "1.234",
                 "first 1000 test images", f"{tiny_model.num_parameters():,} parameters"):
        assert part in text, (part, text)
    assert "no test bits/dim" in run_summary(tiny_model, {"step": 0, "metrics": {}})
    assert "weight average" not in text and "bfloat16" not in text
    info["history"]["train_config"].update(ema=0.999, precision="bfloat16")
    text = run_summary(tiny_model, info)
    assert "weight average (decay 0.999) saved" in text and "conditioner networks in bfloat16 while training" in text


