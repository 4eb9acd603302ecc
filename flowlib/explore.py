r"""Latent-space exploration of a trained multi-scale flow (notebook 07).

Interpolation between two images walks between their latents ``z_a`` and ``z_b`` at every
scale and decodes. Two paths:

* linear: ``z(t) = (1 - t) z_a + t z_b``. Midway its norm shrinks (for independent
  Gaussian latents ``|z(1/2)| ~ |z_a| / sqrt(2)``), so the midpoint lies where the Gaussian
  rarely puts its samples: a low-"temperature", blurrier image.
* spherical (slerp): rotates from ``z_a`` to ``z_b`` on the great circle they span, keeping
  the norm nearly constant, so every frame stays in the typical shell of the Gaussian.

Both give ``z_a`` at ``t = 0`` and ``z_b`` at ``t = 1`` exactly.

:class:`LatentExplorer` caches encodings and works under ``torch.inference_mode`` so a
slider move costs one ``decode``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .model import MultiScaleFlow

__all__ = ["lerp", "slerp", "interpolate_latents", "resample_scales", "LatentExplorer"]


def lerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Linear interpolation ``(1 - t) a + t b``."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return torch.lerp(a, b, t)


def slerp(a: Tensor, b: Tensor, t: float, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation per example (each example's tensor treated as one vector)."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1 + eps, 1 - eps))
    so = torch.sin(omega)
    wa = torch.sin((1 - t) * omega) / so
    wb = torch.sin(t * omega) / so
    out = wa[:, None] * fa + wb[:, None] * fb
    parallel = so.abs() < 1e-6  # (anti)parallel vectors: fall back to the straight line
    if parallel.any():
        out[parallel] = torch.lerp(fa[parallel], fb[parallel], t)
    return out.to(a.dtype).reshape(a.shape)


def interpolate_latents(za: Sequence[Tensor], zb: Sequence[Tensor], t: float, method: str = "slerp") -> list[Tensor]:
    """Interpolate every scale's latent; ``method`` is ``"slerp"`` or ``"linear"``."""
    if method not in ("slerp", "linear"):
        raise ValueError(f"method must be 'slerp' or 'linear', got {method!r}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")
    fn = slerp if method == "slerp" else lerp
    return [fn(a, b, t) for a, b in zip(za, zb)]


def resample_scales(latents: Sequence[Tensor], keep: str = "coarse", temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> list[Tensor]:
    """Keep one end of the scale hierarchy and redraw the rest from ``N(0, T^2)``.

    ``latents`` are ordered finest first (as :meth:`MultiScaleFlow.encode` returns them).
    ``keep="coarse"`` keeps the coarsest latent bit for bit and resamples the finer ones;
    ``keep="fine"`` keeps the finer ones and resamples the coarsest.
    """
    if keep not in ("coarse", "fine"):
        raise ValueError(f"keep must be 'coarse' or 'fine', got {keep!r}")
    out = []
    last = len(latents) - 1
    for i, z in enumerate(latents):
        kept = (i == last) if keep == "coarse" else (i < last)
        if kept:
            out.append(z.clone())
        else:
            noise = torch.randn(z.shape, generator=generator, dtype=z.dtype,
                                device=generator.device if generator is not None else z.device)
            out.append(temperature * noise.to(z.device))
    return out


class LatentExplorer:
    """Cached encodings of a gallery of images and the decodes the notebook's widgets need.

    Args:
        model: a trained :class:`MultiScaleFlow` (put in eval mode).
        images: uint8 gallery ``(N, C, H, W)``; encoded once.
    """

    def __init__(self, model: MultiScaleFlow, images: Tensor):
        self.model = model.eval()
        self.images = images
        with torch.inference_mode():
            self.latents = model.encode(images.to(next(model.parameters()).device))

    def _pair(self, i: int, j: int) -> tuple[list[Tensor], list[Tensor]]:
        n = self.images.shape[0]
        for k in (i, j):
            if not 0 <= k < n:
                raise IndexError(f"image index {k} is outside the gallery of {n} images")
        return [z[i:i + 1] for z in self.latents], [z[j:j + 1] for z in self.latents]

    def reconstruct(self, i: int) -> Tensor:
        """Decoded gallery image ``i`` in ``[0, 1]``, ``(C, H, W)``."""
        with torch.inference_mode():
            return self.model.decode([z[i:i + 1] for z in self.latents], quantize=False)[0].cpu()

    def interpolate(self, i: int, j: int, t: float, method: str = "slerp") -> Tensor:
        """The image a fraction ``t`` of the way from gallery image ``i`` to ``j``, ``(C, H, W)`` in [0, 1]."""
        za, zb = self._pair(i, j)
        with torch.inference_mode():
            return self.model.decode(interpolate_latents(za, zb, t, method), quantize=False)[0].cpu()

    def strip(self, i: int, j: int, frames: int = 8, method: str = "slerp") -> Tensor:
        """``frames`` images from ``i`` to ``j`` (both ends included), decoded in one batch."""
        if frames < 2:
            raise ValueError(f"frames must be >= 2, got {frames}")
        za, zb = self._pair(i, j)
        ts = torch.linspace(0, 1, frames).tolist()
        steps = [interpolate_latents(za, zb, t, method) for t in ts]
        batch = [torch.cat([s[k] for s in steps]) for k in range(len(za))]
        with torch.inference_mode():
            return self.model.decode(batch, quantize=False).cpu()

    def samples(self, n: int = 16, temperature: float = 0.7, seed: int = 0) -> Tensor:
        """``n`` samples at ``temperature`` from a fixed seed (the same noise at every temperature)."""
        g = torch.Generator().manual_seed(seed)
        p = next(self.model.parameters())
        z = [torch.randn((n, *s), generator=g, dtype=p.dtype).to(p.device) * temperature for s in self.model.latent_shapes]
        with torch.inference_mode():
            return self.model.decode(z, quantize=False).cpu()

    def resample(self, i: int, keep: str = "coarse", n: int = 8, temperature: float = 0.7, seed: int = 0) -> Tensor:
        """``n`` variations of gallery image ``i`` that keep its coarse (or fine) latents."""
        za, _ = self._pair(i, i)
        g = torch.Generator().manual_seed(seed)
        rep = [z.expand(n, *z.shape[1:]) for z in za]
        with torch.inference_mode():
            return self.model.decode(resample_scales(rep, keep, temperature, g), quantize=False).cpu()
