"""Notebook 06's exercises: the latent shapes of a configuration and the importance-weighted bits/dim,
reference answers and checks (see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..models.multiscale import FlowConfig, MultiScaleFlow
from .runner import run_check

__all__ = [
    "latent_shapes_reference", "check_latent_shapes", "importance_bpd_reference",
    "ScriptedLogProb", "check_importance_bpd",
]

LOG2 = math.log(2)


def latent_shapes_reference(config: FlowConfig) -> list[tuple[int, int, int]]:
    """Notebook 06, exercise 1: the latent shapes ``(C, H, W)``, finest first, without building the model.

    Each level squeezes (channels x 4, height and width / 2); every level but the last then
    splits off half of its channels as a latent; the last level's output is the coarsest latent.
    """
    c, s, shapes = config.channels, config.size, []
    for level in range(config.levels):
        c, s = 4 * c, s // 2
        if level < config.levels - 1:
            shapes.append((c // 2, s, s))
            c //= 2
    return shapes + [(c, s, s)]


def check_latent_shapes(fn: Callable[[FlowConfig], Sequence[Sequence[int]]]) -> bool:
    """Compare ``fn(config)`` with ``MultiScaleFlow(config).latent_shapes`` for four layouts."""
    configs = [FlowConfig(hidden=8), FlowConfig(hidden=8, levels=1), FlowConfig(hidden=8, channels=3, size=32, levels=3),
               FlowConfig(hidden=8, size=16, levels=4)]

    def check() -> str:
        for config in configs:
            mine = [tuple(int(n) for n in shape) for shape in fn(config)]
            expected = MultiScaleFlow(config).latent_shapes
            if mine != expected:
                raise AssertionError(f"for channels={config.channels}, size={config.size}, levels={config.levels} "
                                     f"you give {mine}, the model has {expected}")
            if sum(math.prod(s) for s in mine) != config.channels * config.size**2:
                raise AssertionError("the latent dimensions do not add up to channels * size * size")
        return f"your shapes match the model's for {len(configs)} configurations"

    return run_check("Exercise 1", check, "the function")


def importance_bpd_reference(model: nn.Module, x: Tensor, samples: int) -> Tensor:
    """Notebook 06, exercise 2: ``-(logsumexp_k log p_k(x) - log K) / (D ln 2)`` per image, ``(B,)``."""
    log_probs = torch.stack([model.log_prob(x) for _ in range(samples)])  # (K, B), nats
    log_px = torch.logsumexp(log_probs, dim=0) - math.log(samples)
    return -log_px / (x[0].numel() * LOG2)


class ScriptedLogProb(nn.Module):
    """A stand-in model whose ``log_prob`` hands out scripted values instead of drawing noise.

    Image ``i`` of ``images`` receives ``values[i, 0]`` the first time it is scored,
    ``values[i, 1]`` the second time, and so on, whichever call and batch position it comes
    in. So the set of values an answer sees does not depend on how it orders or batches its
    calls (a loop, or one call on a repeated batch), and the right answer is known exactly.
    """

    def __init__(self, images: Tensor, values: Tensor):
        super().__init__()
        if len({bytes(row.tolist()) for row in images.flatten(1).to(torch.uint8)}) != len(images):
            raise ValueError("the scripted images must be distinct")
        self.images, self.values = images, values.double()
        self.num_dims = images[0].numel()
        self.anchor = nn.Parameter(torch.zeros(()))  # so that next(model.parameters()) works
        self.calls = torch.zeros(len(images), dtype=torch.long)

    def _index(self, x: Tensor) -> Tensor:
        rows = x.detach().to("cpu", torch.uint8).flatten(1)
        known = self.images.flatten(1)
        match = (rows[:, None, :] == known[None, :, :]).all(-1)  # (batch, images)
        if not bool(match.any(1).all()):
            raise AssertionError("log_prob was called on an image that is not one of the images to score")
        return match.float().argmax(1)

    def log_prob(self, x: Tensor) -> Tensor:
        out = torch.empty(len(x), dtype=torch.float64)
        for row, i in enumerate(self._index(x).tolist()):
            k = int(self.calls[i])
            if k >= self.values.shape[1]:
                raise AssertionError(f"image {i} was scored more than samples = {self.values.shape[1]} times")
            out[row] = self.values[i, k]
            self.calls[i] += 1
        return out.to(x.device)

    def bits_per_dim(self, x: Tensor) -> Tensor:
        return -self.log_prob(x) / (self.num_dims * LOG2)

    def expected_bpd(self) -> Tensor:
        """The right answer for these scripted values, ``(B,)``."""
        k = self.values.shape[1]
        return -(torch.logsumexp(self.values, dim=1) - math.log(k)) / (self.num_dims * LOG2)


def _scripted_model(samples: int) -> ScriptedLogProb:
    images = torch.randint(0, 256, (6, 1, 28, 28), generator=torch.Generator().manual_seed(samples), dtype=torch.uint8)
    base = torch.linspace(-1800.0, -900.0, len(images))[:, None]       # nats, like an MNIST image
    spread = torch.tensor([0.0, -6.0, 2.5, -15.0, 1.0, -3.0, 4.0, -9.0])[:samples]
    return ScriptedLogProb(images, base + spread[None, :] * torch.arange(1, len(images) + 1)[:, None] / 3)


def check_importance_bpd(fn: Callable[[nn.Module, Tensor, int], Tensor], model: MultiScaleFlow | None = None,
                         x: Tensor | None = None) -> bool:
    """Notebook 06, exercise 2: ``fn(model, x, samples)`` must be the K-sample importance-weighted bits/dim.

    The exact test runs on :class:`ScriptedLogProb` for ``samples`` = 1, 4 and 8, so it does not
    depend on the order in which the answer draws its noise. If ``model`` and ``x`` are given, the
    answer also runs on them once (shape ``(B,)``, finite, within 0.1 bits/dim of
    ``model.importance_bits_per_dim`` on average).
    """

    def check() -> str:
        for samples in (1, 4, 8):
            scripted = _scripted_model(samples)
            try:
                with torch.no_grad():
                    mine = fn(scripted, scripted.images, samples)
            except AttributeError as err:
                raise AssertionError(f"{err}; build the answer from model.log_prob(x) (the check's stand-in model "
                                     f"has only log_prob and bits_per_dim)") from None
            expected = scripted.expected_bpd()
            mine = torch.as_tensor(mine).detach().cpu().double()
            if mine.shape != expected.shape:
                raise AssertionError(f"samples={samples}: expected shape {tuple(expected.shape)}, got {tuple(mine.shape)}")
            seen = scripted.calls.tolist()
            if any(n != samples for n in seen):
                raise AssertionError(f"samples={samples}: each image must be scored samples times; "
                                     f"they were scored {seen} times")
            if not torch.allclose(mine, expected, rtol=0, atol=1e-6):
                raise AssertionError(f"samples={samples}: on scripted log-probabilities you give "
                                     f"{[round(v, 4) for v in mine.tolist()[:3]]}... bits/dim, "
                                     f"expected {[round(v, 4) for v in expected.tolist()[:3]]}...")
        report = "exact on scripted log-probabilities for K = 1, 4 and 8"
        if model is not None and x is not None:
            torch.manual_seed(0)
            with torch.no_grad():
                mine = torch.as_tensor(fn(model, x, 4)).detach().cpu().double()
                reference = model.importance_bits_per_dim(x, 4).cpu().double()
            if mine.shape != reference.shape or not bool(torch.isfinite(mine).all()):
                raise AssertionError(f"on the model: expected {tuple(reference.shape)} finite values, got "
                                     f"shape {tuple(mine.shape)}")
            if abs(mine.mean() - reference.mean()) > 0.1:
                raise AssertionError(f"on the model: mean {mine.mean():.3f} bits/dim, "
                                     f"model.importance_bits_per_dim gives {reference.mean():.3f}")
            report += f"; on the model {mine.mean():.4f} bits/dim against {reference.mean():.4f} (K = 4, other noise)"
        return report

    return run_check("Exercise 2", check, "the function")
