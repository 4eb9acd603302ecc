"""One maximum-likelihood training loop for every model in the course (notebooks 01-06).

``fit`` minimises ``loss_fn(model, batch)`` (by default the negative mean
log-likelihood ``-model.log_prob(x).mean()``) with Adam, an optional linear
learning-rate warm-up, gradient-norm clipping and a tqdm progress bar, for a number
of steps or a budget of training seconds (evaluation time not counted). A non-finite
loss stops training with :class:`NonFiniteLossError` before the bad step touches
the weights. When it ends, ``fit`` prints one summary line, so a rendered notebook
shows that training ran even where the progress bar's text is frozen.
"""

from __future__ import annotations

import math
import time
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
    """Per-step training losses, periodic evaluations ``(step, value)`` and training seconds.

    ``seconds`` counts training time only (not evaluation); ``eval_seconds[i]`` is its
    value when ``evals[i]`` was taken, so ``zip(eval_seconds, values)`` is a learning curve
    against time.
    """

    loss: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0
    eval_seconds: list[float] = field(default_factory=list)


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
        device: torch.device | str | None = None, progress: bool = True, desc: str = "training",
        time_budget: float | None = None, eval_every_seconds: float | None = None,
        stop_fn: Callable[[History], bool] | None = None, clock: Callable[[], float] = time.perf_counter,
        before_step: Callable[[int], None] | None = None, reduce_loss: Callable[[Tensor], Tensor] | None = None,
        reduce_seconds: Callable[[float], float] | None = None) -> History:
    """Train ``model`` for ``steps`` optimiser steps (or until ``time_budget``) and return the :class:`History`.

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
        history: continue an earlier run's history (its ``step`` and ``seconds`` count on).
        time_budget: stop once ``history.seconds`` (training time, evaluation excluded, as
            measured by ``clock``) reaches this many seconds; ``steps`` is then an upper bound.
        eval_every_seconds: also evaluate each time this many more training seconds have passed.
        stop_fn: called after each evaluation; training stops when it returns True.
        clock: the timer, ``time.perf_counter`` (wall clock) or ``time.process_time`` (CPU time).
        before_step, reduce_loss, reduce_seconds: hooks for training on several processes
            (:mod:`flowlib.training.distributed`): ``before_step(step)`` runs first in each step (to seed
            it); ``reduce_loss(loss)`` gives the value all processes agree on (their mean), which
            is checked for NaN before ``backward`` and recorded; ``reduce_seconds(elapsed)``
            makes the step's time the same on every process (the slowest one's).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget}")
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
    start, start_seconds = history.step, history.seconds
    next_eval_at = history.seconds + eval_every_seconds if eval_every_seconds else math.inf
    value, stopped = math.nan, False

    def evaluate(step: int) -> float:
        model.eval()
        with torch.no_grad():
            ev = float(eval_fn(model))
        model.train()
        history.evals.append((step, ev))
        history.eval_seconds.append(history.seconds)
        return ev

    model.train()
    if time_budget is None:
        bar = tqdm(total=steps, desc=desc, disable=not progress, leave=True, mininterval=0.5)
    else:
        bar = tqdm(total=round(max(0.0, time_budget - history.seconds)), desc=desc, unit="s", disable=not progress,
                   leave=True, mininterval=0.5, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}{postfix}]")
    for _ in range(steps):
        if time_budget is not None and history.seconds >= time_budget:
            break
        tick = clock()
        step = history.step + 1
        if before_step is not None:
            before_step(step)
        if lr_schedule is not None or warmup_steps:
            factor = lr_schedule(step) if lr_schedule is not None else min(1.0, step / warmup_steps)
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * factor
        x = next_batch() if next_batch is not None else next(iterator)
        if isinstance(x, Tensor):
            x = x.to(device, non_blocking=True)
        loss = loss_fn(model, x)
        agreed = loss.detach() if reduce_loss is None else reduce_loss(loss.detach())
        if not torch.isfinite(agreed):
            raise NonFiniteLossError(f"the loss became {agreed.item()} at step {step}; lower the learning rate, "
                                     f"add warm-up or gradient clipping (the weights were not updated)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        opt.step()
        value = agreed.item()  # waits for the step to finish, so the clock below is honest on a GPU
        elapsed = clock() - tick
        if reduce_seconds is not None:
            elapsed = reduce_seconds(elapsed)
        history.step = step
        history.seconds += elapsed
        history.loss.append(value)
        bar.update(1 if time_budget is None else min(elapsed, bar.total - bar.n))
        if callback is not None:
            callback(step, value)
        due = (eval_every and step % eval_every == 0) or history.seconds >= next_eval_at
        last = step == start + steps or (time_budget is not None and history.seconds >= time_budget)
        if eval_fn is not None and (due or last):
            while next_eval_at <= history.seconds:
                next_eval_at += eval_every_seconds
            ev = evaluate(step)
            bar.set_postfix(loss=f"{value:.3f}", eval=f"{ev:.3f}")
            if stop_fn is not None and stop_fn(history):
                stopped = True
                break
        elif step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    bar.close()
    model.eval()
    if progress:
        done = history.step - start
        line = f"{desc}: {done} steps in {history.seconds - start_seconds:.1f} s"
        if done:
            line += f", last loss {value:.4f}"
        if eval_fn is not None and history.evals and history.evals[-1][0] == history.step:
            line += f", eval {history.evals[-1][1]:.4f}"
        print(line + (" (stopped: target reached)" if stopped else ""), flush=True)
    if history.loss and not math.isfinite(history.loss[-1]):  # pragma: no cover - guarded above
        raise NonFiniteLossError("non-finite loss")
    return history
