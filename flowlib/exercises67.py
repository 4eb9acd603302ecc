"""Run summaries, reference answers and automatic exercise checks of notebooks 06 and 07.

The notebooks import the checks from here, so a learner sees no solution until they open this
file, while ``tests/test_exercises67.py`` proves that every check accepts the reference answer
(and other correct ways to write it) and rejects plausible wrong ones.

``config_summary`` and ``run_summary`` print what a loaded checkpoint (or a run trained in a
notebook) is, from the values it stores, so that no notebook types a checkpoint's size, budget
or result into its prose.

Each ``check_*`` function takes the learner's function, prints what it found and returns whether
the answer is right; a ``NotImplementedError`` (the unfilled template) counts as "not yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .exercises import run_check
from .explore import LatentExplorer, slerp
from .model import FlowConfig, MultiScaleFlow

__all__ = ["config_summary", "run_summary", "latent_shapes_reference", "check_latent_shapes",
           "importance_bpd_reference", "ScriptedLogProb", "check_importance_bpd", "slerp_reference", "check_slerp",
           "matching_temperature_reference", "ScriptedLatents", "check_matching_temperature"]

LOG2 = math.log(2)


# ---- what a run is, from what it stores ------------------------------------------------------
def config_summary(config: FlowConfig) -> str:
    """One line: the architecture choices of a :class:`FlowConfig` that notebook 06 explains."""
    pre = f"{config.pre_steps} checkerboard coupling(s) at full resolution, " if config.pre_steps else ""
    prior = "learned split prior" if config.split_prior else "N(0, I) for the split-off halves"
    return (f"{pre}{config.levels} levels x {config.steps_per_level} Glow steps, {config.hidden} hidden channels "
            f"x {config.blocks} gated block(s), {config.dequantization} dequantization, logit margin alpha = "
            f"{config.alpha:g}, {prior}")


def run_summary(model: nn.Module, info: dict[str, Any], train_images: int = 60_000) -> str:
    """A few lines on a loaded or trained run: model, training budget and its recorded test bits/dim.

    ``info`` is what :func:`flowlib.train.fit_or_load` returns (a checkpoint's dictionary or the
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
    lines.append("training: " + ", ".join(budget))
    if metrics.get("test_bpd") is not None:
        lines.append(f"recorded: {metrics['test_bpd']:.3f} test bits/dim on the first "
                     f"{metrics.get('test_bpd_images', '?')} test images (one dequantization sample)")
    else:
        lines.append("recorded: no test bits/dim")
    return "\n".join(lines)


# ---- notebook 06, exercise 1: latent shapes from the configuration ---------------------------
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


# ---- notebook 06, exercise 2: importance-weighted bits/dim -----------------------------------
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


# ---- notebook 07, exercise 1: slerp by hand --------------------------------------------------
def slerp_reference(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Notebook 07, exercise 1: spherical interpolation of each example as one vector, in float64.

    ``z(t) = (sin((1 - t) W) a + sin(t W) b) / sin W`` with ``cos W = a.b / (|a| |b|)``; the straight
    line where ``sin W`` is about 0 (parallel vectors).
    """
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos_omega = ((fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1))).clamp(-1, 1)
    omega = torch.arccos(cos_omega)[:, None]
    sin_omega = torch.sin(omega)
    nearly_parallel = sin_omega.abs() < 1e-6
    safe = torch.where(nearly_parallel, torch.ones_like(sin_omega), sin_omega)
    on_arc = (torch.sin((1 - t) * omega) * fa + torch.sin(t * omega) * fb) / safe
    on_line = (1 - t) * fa + t * fb
    return torch.where(nearly_parallel, on_line, on_arc).to(a.dtype).reshape(a.shape)


def check_slerp(fn: Callable[[Tensor, Tensor, float], Tensor], explorer: LatentExplorer, i: int = 0, j: int = 1) -> bool:
    """Compare ``fn`` with :func:`flowlib.explore.slerp` on random latents of the explorer's model
    (and a parallel pair), and check that ``t = 0`` decodes to the reconstruction of image ``i``."""
    model = explorer.model

    def check() -> str:
        gen = torch.Generator().manual_seed(1)
        pairs = [(torch.randn(3, *shape, generator=gen), torch.randn(3, *shape, generator=gen))
                 for shape in model.latent_shapes]
        parallel = torch.randn(2, *model.latent_shapes[0], generator=gen)
        pairs.append((parallel, 2 * parallel))  # angle 0: slerp must fall back to the straight line
        for a, b in pairs:
            for t in (0.0, 0.1, 0.3, 0.5, 0.8, 1.0):
                mine, ref = fn(a, b, t), slerp(a, b, t)
                if tuple(mine.shape) != tuple(ref.shape):
                    raise AssertionError(f"shape {tuple(mine.shape)}, expected {tuple(ref.shape)}")
                if not torch.allclose(mine, ref, rtol=1e-4, atol=1e-5):
                    raise AssertionError(f"at t = {t} for latents of shape {tuple(a.shape)}: "
                                         f"max |difference| = {(mine - ref).abs().max():.2e}")
        with torch.inference_mode():
            start = model.decode([fn(z[i:i + 1], z[j:j + 1], 0.0) for z in explorer.latents], quantize=False)[0]
        if not torch.allclose(start.cpu(), explorer.reconstruct(i), atol=1e-4):
            raise AssertionError(f"t = 0 does not decode to the reconstruction of image {i}")
        return "matches flowlib.explore.slerp, and t = 0 gives the reconstruction"

    return run_check("Exercise 1", check, "the function")


# ---- notebook 07, exercise 4: the temperature that matches real images -----------------------
def matching_temperature_reference(model: nn.Module, images: Tensor) -> float:
    """Notebook 07, exercise 4: the ``T`` with ``E|T eps|^2 = mean_i |z(x_i)|^2`` over all scales.

    A sample at temperature ``T`` has ``|z|^2 = T^2 |eps|^2`` with ``E|eps|^2 = D``, so
    ``T = sqrt(mean_i sum_l |z_l(x_i)|^2 / D)``.
    """
    with torch.inference_mode():
        latents = model.encode(images)
    squared = sum(z.double().flatten(1).pow(2).sum(1) for z in latents)  # (N,)
    dims = sum(z[0].numel() for z in latents)
    return math.sqrt(squared.mean().item() / dims)


class ScriptedLatents(nn.Module):
    """A stand-in model whose ``encode`` returns latents of chosen norms: scale ``l`` of image ``i``
    has ``|z_l| ~ ratios[l] * spread_i * sqrt(d_l)``, so the scales (and the images) differ."""

    def __init__(self, latent_shapes: Sequence[tuple[int, ...]], ratios: Sequence[float], seed: int = 0):
        super().__init__()
        self.latent_shapes = [tuple(s) for s in latent_shapes]
        self.ratios = list(ratios)
        self.num_dims = sum(math.prod(s) for s in self.latent_shapes)
        self.seed = seed
        self.anchor = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def encode(self, x: Tensor) -> list[Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        n = len(x)
        spread = torch.linspace(0.8, 1.25, n).view(n, 1, 1, 1)
        return [r * spread * torch.randn((n, *s), generator=gen) for r, s in zip(self.ratios, self.latent_shapes)]


def check_matching_temperature(fn: Callable[[nn.Module, Tensor], float], model: MultiScaleFlow | None = None,
                               images: Tensor | None = None) -> bool:
    """``fn(model, images)`` must return the temperature whose samples have the images' mean squared latent norm.

    Tested exactly (within 1%) on :class:`ScriptedLatents` stand-ins whose scales have different norms
    (so one scale alone, or the prior's ``T = 1``, fails), then on ``model`` and ``images`` if given.
    """

    def compare(where: str, stand_in: nn.Module, x: Tensor) -> float:
        mine = float(fn(stand_in, x))
        expected = matching_temperature_reference(stand_in, x)
        if not math.isfinite(mine) or abs(mine - expected) > 0.01 * expected:
            raise AssertionError(f"{where}: you give T = {mine:.4f}, expected {expected:.4f}")
        return expected

    def check() -> str:
        x = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
        for ratios in ((0.4, 0.9), (1.3, 0.6)):
            compare(f"latents with |z_l|/sqrt(d_l) about {ratios}", ScriptedLatents([(2, 14, 14), (8, 7, 7)], ratios), x)
        report = "right on two stand-ins whose scales have different norms"
        if model is not None and images is not None:
            expected = compare("on the model", model, images)
            report += f"; on the model T = {expected:.3f}"
        return report

    return run_check("Exercise 4", check, "the function")
