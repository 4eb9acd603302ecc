"""Notebook 07's exercises: slerp by hand and the temperature that matches real images, reference answers and
checks (see :mod:`flowlib.exercises` for how every exercise module works).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..apps.explore import LatentExplorer, slerp
from ..models.multiscale import MultiScaleFlow
from .runner import run_check

__all__ = [
    "slerp_reference", "check_slerp", "matching_temperature_reference",
    "ScriptedLatents", "check_matching_temperature",
]

LOG2 = math.log(2)


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
    """Compare ``fn`` with :func:`flowlib.apps.explore.slerp` on random latents of the explorer's model
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
        return "matches flowlib.apps.explore.slerp, and t = 0 gives the reconstruction"

    return run_check("Exercise 1", check, "the function")


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
