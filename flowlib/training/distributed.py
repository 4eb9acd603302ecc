"""Training on several processes, GPUs or machines with ``torchrun`` and DDP (README, notebook 06).

    torchrun --nproc_per_node=2 -m flowlib.train --dataset mnist --out runs/mnist.pt --steps 3000

flowlib writes no process management and no gradient exchange of its own: ``torchrun``
starts one process per device and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`init` joins PyTorch's process group (NCCL on CUDA, gloo on the CPU), and the model
is wrapped in ``DistributedDataParallel``, which averages the gradients during
``backward``. Averaging the gradients of ``W`` ranks that each hold ``B / W`` images is
the gradient of the mean loss over the global batch of ``B`` images, so one step of
``W`` ranks is one step of a single process on their batches put together.

What the ranks must agree on, and how they do here:

- **The data.** Every rank holds the whole training set and draws the same per-epoch
  permutation (seed ``seed + epoch``); global batch ``j`` of the epoch is the slice
  ``[j B, (j + 1) B)`` of it, and rank ``r`` takes the ``r``-th of its ``W`` equal parts
  (:func:`shard_batches`). The batch is a function of the step, so a resumed run goes on
  with exactly the batches an uninterrupted one would have seen.
- **The noise.** The random generator is re-seeded from ``(seed, rank, step)`` before
  each step (:func:`step_seed`): ranks draw different dequantization noise, and resuming
  replays it exactly.
- **The clock.** Each step counts the slowest rank's time (``all_reduce`` with MAX), so
  every rank holds the same training seconds, uses the same learning rate under a time
  budget and stops at the same step.
- **A bad loss.** The loss is averaged over the ranks before ``backward``; when it is not
  finite every rank raises the same :class:`~flowlib.training.loop.NonFiniteLossError`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["world_size_from_env", "rank_from_env", "backend_for", "init", "shutdown", "is_active", "rank", "world_size",
           "is_main", "barrier", "shard_batches", "step_seed", "mean_over_ranks", "max_over_ranks", "sum_over_ranks",
           "LossModule", "wrap_loss"]


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as set by ``torchrun`` (1 when the program was started without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_from_env() -> int:
    """Global ``RANK`` as set by ``torchrun`` (0 without it); known before :func:`init`."""
    return int(os.environ.get("RANK", "0"))


def backend_for(device: torch.device) -> str:
    """The collective backend for ``device``: NCCL for CUDA, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: torch.device | str, timeout: float = 600.0) -> torch.device:
    """Join the process group that ``torchrun`` described in the environment; return this rank's device.

    On CUDA a rank uses GPU ``LOCAL_RANK`` of its machine. ``timeout`` (seconds) bounds how
    long a collective waits for a rank that has died or hangs.
    """
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not is_active():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend_for(device), timeout=timedelta(seconds=timeout), **kwargs)
    return device


def shutdown() -> None:
    """Leave the process group, if this process is in one."""
    if is_active():
        dist.destroy_process_group()


def is_active() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """True on global rank 0, the only rank that writes checkpoints, logs and progress bars."""
    return rank() == 0


def barrier() -> None:
    if is_active():
        dist.barrier()


def shard_batches(data: Tensor, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                  start_step: int = 0) -> Iterator[Tensor]:
    """Endless batches of ``batch_size // world_size`` images for ``rank``, from step ``start_step + 1`` on.

    ``batch_size`` is the global batch. Epoch ``e`` shuffles ``data`` with the permutation
    seeded by ``seed + e`` (the same on every rank); its ``len(data) // batch_size`` global
    batches are consecutive slices of it (the ``len(data) % batch_size`` images left over
    wait for another epoch's shuffle), and ``rank`` takes part ``rank`` of each slice. So in
    one epoch the ranks see disjoint images, and together every image of the used slices.
    """
    n = data.shape[0]
    if batch_size < 1 or batch_size % world_size:
        raise ValueError(f"batch_size must be a positive multiple of the {world_size} processes, got {batch_size}")
    if n < batch_size:
        raise ValueError(f"the training set has {n} images, fewer than one global batch of {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    per_epoch, part = n // batch_size, batch_size // world_size
    step = start_step
    while True:
        epoch, first = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        for j in range(first, per_epoch):
            start = j * batch_size + rank * part
            yield data[perm[start:start + part].to(data.device)]
        step = (epoch + 1) * per_epoch


def step_seed(seed: int, rank: int, step: int) -> int:
    """A seed for the random draws of ``step`` on ``rank``, well mixed (numpy's ``SeedSequence``)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] >> 1)


def _reduce(values: list[float], op: dist.ReduceOp, device: torch.device) -> Tensor:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if is_active():
        dist.all_reduce(t, op=op)
    return t


def mean_over_ranks(x: Tensor) -> Tensor:
    """The mean of the scalar ``x`` over all ranks (``x`` itself outside a process group)."""
    if not is_active():
        return x
    t = x.detach().double().reshape(1).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / world_size()).reshape(()).to(x.dtype)


def max_over_ranks(value: float, device: torch.device | str = "cpu") -> float:
    """The largest ``value`` over all ranks."""
    return float(_reduce([value], dist.ReduceOp.MAX, torch.device(device))[0])


def sum_over_ranks(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sums of ``values`` over all ranks, in float64."""
    return _reduce(values, dist.ReduceOp.SUM, torch.device(device)).tolist()


class LossModule(nn.Module):
    """``forward(x) = loss_fn(model, x)``: puts the loss inside a module, so DDP sees the forward pass it syncs."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Tensor], Tensor]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, x: Tensor) -> Tensor:
        return self.loss_fn(self.model, x)


def wrap_loss(model: nn.Module, loss_fn: Callable[[nn.Module, Tensor], Tensor]) -> nn.Module:
    """``LossModule(model, loss_fn)`` in ``DistributedDataParallel`` (itself outside a process group).

    Wrapping broadcasts rank 0's parameters and buffers (ActNorm's initialisation
    included) to every rank, so all ranks start identical. Buffers are not re-broadcast
    at each step: a flow's buffers (masks, ActNorm's flag) never change while training.
    """
    module = LossModule(model, loss_fn)
    if not is_active():
        return module
    device = next(model.parameters()).device
    # newer PyTorch renamed the switch; both keep the broadcast at construction
    new_name = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_resync = {"forward_sync_buffers": False} if new_name else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None, **no_resync)
