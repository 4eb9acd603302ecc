r"""Latent-space exploration of a trained multi-scale flow (notebook 07).

Interpolation between two images walks between their latents ``z_a`` and ``z_b`` at every
scale and decodes. Two paths:

* linear: ``z(t) = (1 - t) z_a + t z_b``. Midway its norm shrinks (for independent
  Gaussian latents ``|z(1/2)| ~ |z_a| / sqrt(2)``), so the midpoint lies where the Gaussian
  rarely puts its samples: a low-"temperature", blurrier image.
* spherical (slerp): rotates from ``z_a`` to ``z_b`` on the great circle they span, keeping
  the norm nearly constant, so every frame stays in the typical shell of the Gaussian.

Both give ``z_a`` at ``t = 0`` and ``z_b`` at ``t = 1`` exactly. :func:`slerp` documents what it
does where the great circle is not unique (a zero, parallel or opposite endpoint).

:class:`LatentExplorer` caches encodings and works under ``torch.inference_mode`` so a
slider move costs one ``decode``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..models.multiscale import MultiScaleFlow

__all__ = ["lerp", "slerp", "interpolate_latents", "resample_scales", "LatentExplorer"]


def lerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Linear interpolation ``(1 - t) a + t b``."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return torch.lerp(a, b, t)


def slerp(a: Tensor, b: Tensor, t: float, eps: float = 1e-6) -> Tensor:
    r"""Spherical interpolation per example: ``a[i]`` and ``b[i]`` are each taken as one vector.

    With :math:`\Omega` the angle between :math:`a` and :math:`b` (Shoemake 1985),

    .. math::
        z(t) = \frac{\sin((1 - t)\Omega)}{\sin\Omega}\, a + \frac{\sin(t\Omega)}{\sin\Omega}\, b,

    the arc from :math:`a` to :math:`b` in the plane they span. The angle is computed as
    :math:`\Omega = 2\,\mathrm{atan2}(\lVert\hat a - \hat b\rVert, \lVert\hat a + \hat b\rVert)` with unit
    vectors :math:`\hat a, \hat b`, which is accurate at every angle (``arccos`` is not near 0 and pi).

    Where the formula has no unique answer, per example:

    * ``t = 0`` and ``t = 1`` give ``a`` and ``b`` exactly.
    * ``a = 0`` or ``b = 0``: no angle exists; the straight line ``lerp(a, b, t)``.
    * parallel, :math:`\Omega < \varepsilon` (``eps``, radians): the formula tends to the straight
      line as :math:`\Omega \to 0`, and ``lerp(a, b, t)`` is used.
    * opposite, :math:`\Omega > \pi - \varepsilon`: every great circle through :math:`\hat a` and
      :math:`-\hat a` is as good as another. A fixed one is used: through :math:`u`, the coordinate
      axis on which :math:`|\hat a|` is smallest (the first such), made orthogonal to :math:`\hat a`
      and of unit length; :math:`z(t) = ((1 - t)\lVert a\rVert + t\lVert b\rVert)(\cos(t\pi)\,\hat a +
      \sin(t\pi)\, u)`. For :math:`\lVert a\rVert = \lVert b\rVert` this is the arc the formula tends to
      as :math:`b` approaches :math:`-a` from the side of :math:`u`. Examples of one number have no
      orthogonal direction and take ``lerp``.

    Nearly (not exactly) opposite vectors of unequal length make the formula's weights large: the
    path bulges out to a norm of about :math:`|\lVert a\rVert - \lVert b\rVert| / (\pi - \Omega)`.

    Args:
        a, b: ``(B, ...)`` tensors of the same shape; computed in float64, returned in ``a``'s dtype.
        t: position along the path, 0 at ``a`` and 1 at ``b``.
        eps: angle (radians) within which ``a`` and ``b`` count as parallel or opposite.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 2:
        raise ValueError(f"a and b must have shape (B, ...) with a batch dimension, got {tuple(a.shape)}")
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    na, nb = fa.norm(dim=1, keepdim=True), fb.norm(dim=1, keepdim=True)
    ua, ub = fa / torch.where(na > 0, na, 1.0), fb / torch.where(nb > 0, nb, 1.0)
    omega = 2 * torch.atan2((ua - ub).norm(dim=1, keepdim=True), (ua + ub).norm(dim=1, keepdim=True))
    line = torch.lerp(fa, fb, t)
    zero = (na == 0) | (nb == 0)
    parallel = omega < eps
    opposite = (omega > math.pi - eps) & ~zero
    arc_ok = ~(zero | parallel | opposite)
    so = torch.where(arc_ok, torch.sin(omega), 1.0)
    arc = (torch.sin((1 - t) * omega) * fa + torch.sin(t * omega) * fb) / so
    out = torch.where(arc_ok, arc, line)
    if fa.shape[1] > 1 and opposite.any():
        k = ua.abs().argmin(dim=1, keepdim=True)
        u = torch.zeros_like(ua).scatter_(1, k, 1.0) - ua.gather(1, k) * ua
        u = u / u.norm(dim=1, keepdim=True)
        turn = ((1 - t) * na + t * nb) * (math.cos(t * math.pi) * ua + math.sin(t * math.pi) * u)
        out = torch.where(opposite, turn, out)
    return out.to(a.dtype).reshape(a.shape)


def interpolate_latents(za: Sequence[Tensor], zb: Sequence[Tensor], t: float, method: str = "slerp") -> list[Tensor]:
    """Interpolate every scale's latent; ``method`` is ``"slerp"`` or ``"linear"``."""
    if method not in ("slerp", "linear"):
        raise ValueError(f"method must be 'slerp' or 'linear', got {method!r}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")
    if len(za) != len(zb):
        raise ValueError(f"za has {len(za)} scales but zb has {len(zb)}; pass the latents of two images "
                         f"encoded by the same model")
    for i, (a, b) in enumerate(zip(za, zb)):
        if a.shape != b.shape:
            raise ValueError(f"scale {i}: za has shape {tuple(a.shape)} but zb has {tuple(b.shape)}; "
                             f"pass latents of the same shapes")
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
