"""One maximum-likelihood training loop for every model in the course (notebooks 01-06).

``fit`` minimises ``loss_fn(model, batch)`` (by default the negative mean
log-likelihood ``-model.log_prob(x).mean()``) with Adam, an optional linear
learning-rate warm-up, gradient-norm clipping and a tqdm progress bar. A non-finite
loss stops training with :class:`NonFiniteLossError` before the bad step touches
the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["fit", "History", "NonFiniteLossError", "batches_from_tensor", "nll_loss"]


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclass
class History:
    """Per-step training losses and any periodic evaluations ``(step, value)``."""

    loss: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    step: int = 0


def nll_loss(model: nn.Module, x: Tensor) -> Tensor:
    """Negative mean log-likelihood in nats."""
    return -model.log_prob(x).mean()


def batches_from_tensor(data: Tensor, batch_size: int, seed: int = 0) -> Iterator[Tensor]:
    """Endless shuffled mini-batches from a tensor held in memory (epoch after epoch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    g = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield data[perm[i:i + batch_size]]


def fit(model: nn.Module, batches: Iterable[Tensor] | Callable[[], Tensor] | Tensor, steps: int, *,
        lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None, batch_size: int = 256,
        warmup_steps: int = 0, lr_schedule: Callable[[int], float] | None = None, clip_grad: float | None = None,
        loss_fn: Callable[[nn.Module, Tensor], Tensor] = nll_loss,
        eval_fn: Callable[[nn.Module], float] | None = None, eval_every: int = 0,
        callback: Callable[[int, float], None] | None = None, history: History | None = None,
        device: torch.device | str | None = None, progress: bool = True, desc: str = "training") -> History:
    """Train ``model`` for ``steps`` optimiser steps and return the :class:`History`.

    Args:
        batches: an iterator of batches, a function returning a fresh batch (e.g. a toy
            sampler), or a tensor of training data to shuffle into batches of ``batch_size``.
        warmup_steps: the learning rate rises linearly from ~0 to ``lr`` over these steps.
        lr_schedule: instead of ``warmup_steps``, a function of the (1-based) step giving the
            factor the base learning rate is multiplied by.
        clip_grad: maximum global gradient norm, or None.
        eval_fn, eval_every: call ``eval_fn(model)`` every ``eval_every`` steps (in eval
            mode, without gradients) and record the value in ``history.evals``.
        callback: called as ``callback(step, loss)`` after every step.
        history: continue an earlier run's history (its ``step`` counts on).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(batches, Tensor):
        batches = batches_from_tensor(batches, batch_size)
    next_batch = batches if callable(batches) and not hasattr(batches, "__next__") else None
    iterator = None if next_batch is not None else iter(batches)
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    base_lrs = [g["lr"] for g in opt.param_groups]
    history = history or History()
    start = history.step

    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=True, mininterval=0.5)
    for _ in bar:
        step = history.step + 1
        if lr_schedule is not None or warmup_steps:
            factor = lr_schedule(step) if lr_schedule is not None else min(1.0, step / warmup_steps)
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * factor
        x = next_batch() if next_batch is not None else next(iterator)
        if isinstance(x, Tensor):
            x = x.to(device, non_blocking=True)
        loss = loss_fn(model, x)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"the loss became {loss.item()} at step {step}; lower the learning rate, "
                                     f"add warm-up or gradient clipping (the weights were not updated)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        opt.step()
        history.step = step
        value = loss.item()
        history.loss.append(value)
        if callback is not None:
            callback(step, value)
        if eval_fn is not None and eval_every and (step % eval_every == 0 or step == start + steps):
            model.eval()
            with torch.no_grad():
                ev = float(eval_fn(model))
            model.train()
            history.evals.append((step, ev))
            bar.set_postfix(loss=f"{value:.3f}", eval=f"{ev:.3f}")
        elif step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    bar.close()
    model.eval()
    if history.loss and not math.isfinite(history.loss[-1]):  # pragma: no cover - guarded above
        raise NonFiniteLossError("non-finite loss")
    return history
