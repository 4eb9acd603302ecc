"""What a run is, from what it stores (notebooks 06-08): ``config_summary`` and ``run_summary`` print a loaded
checkpoint's or a freshly trained run's architecture, budget and recorded result, so that no notebook types them
into its prose."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.multiscale import FlowConfig

__all__ = ["config_summary", "run_summary"]


def config_summary(config: FlowConfig) -> str:
    """One line: the architecture choices of a :class:`FlowConfig` that notebook 06 explains."""
    pre = f"{config.pre_steps} checkerboard coupling(s) at full resolution, " if config.pre_steps else ""
    prior = "learned split prior" if config.split_prior else "N(0, I) for the split-off halves"
    couplings = {"affine": "affine couplings", "spline": f"{config.spline_bins}-bin spline couplings",
                 "mixture": f"{config.mixture_components}-component logistic-mixture couplings"}
    coupling = couplings.get(config.coupling, config.coupling)
    return (f"{pre}{config.levels} levels x {config.steps_per_level} Glow steps ({coupling}), "
            f"{config.hidden} hidden channels "
            f"x {config.blocks} gated block(s), {config.dequantization} dequantization, logit margin alpha = "
            f"{config.alpha:g}, {prior}")


def run_summary(model: nn.Module, info: dict[str, Any], train_images: int = 60_000) -> str:
    """A few lines on a loaded or trained run: model, training budget and its recorded test bits/dim.

    ``info`` is what :func:`flowlib.training.train.fit_or_load` returns (a checkpoint's dictionary or the
    ``info`` of a run trained here); ``train_images`` is the size of the training set, for epochs.
    """
    metrics = info.get("metrics") or {}
    history = info.get("history") or {}
    tc = history.get("train_config") or {}
    step = int(info.get("step", 0))
    config = getattr(model, "config", None)
    lines = [f"model:    {config_summary(config) if config is not None else type(model).__name__}; "
             f"{sum(p.numel() for p in model.parameters()):,} parameters"]
    budget = []
    if tc.get("batch_size"):
        budget.append(f"{step:,} steps of {tc['batch_size']} images ({step * tc['batch_size'] / train_images:.1f} epochs)")
    else:
        budget.append(f"{step:,} steps")
    if metrics.get("train_seconds") is not None:
        budget.append(f"{metrics['train_seconds'] / 60:.1f} min of training")
    if tc.get("minutes") is not None:
        budget.append(f"time budget {tc['minutes']:g} min")
    if tc.get("lr") is not None:
        budget.append(f"peak learning rate {tc['lr']:g}")
    if tc.get("ema"):
        budget.append(f"weight average (decay {tc['ema']:g}) saved")
    if tc.get("precision", "float32") != "float32":
        budget.append(f"conditioner networks in {tc['precision']} while training")
    lines.append("training: " + ", ".join(budget))
    if metrics.get("test_bpd") is not None:
        lines.append(f"recorded: {metrics['test_bpd']:.3f} test bits/dim on the first "
                     f"{metrics.get('test_bpd_images', '?')} test images (one dequantization sample)")
    else:
        lines.append("recorded: no test bits/dim")
    return "\n".join(lines)
