r"""Conditions for the multi-scale flow: class labels and images (notebook 08).

A conditional flow models ``p(x | c)``. For every fixed ``c`` the model is an ordinary flow,
so the change of variables holds as before:

.. math::
    \log p(x \mid c) = \log p_z(f(x; c) \mid c) + \log\left|\det \partial f(x; c) / \partial x\right|.

Only the conditioners and the priors see ``c``; the map stays a bijection of ``x``.
:class:`flowlib.models.multiscale.MultiScaleFlow` takes three kinds of condition (``FlowConfig.condition``):

* ``"class"``: labels, an int64 tensor ``(B,)`` in ``[0, num_classes)``. A learned embedding
  ``(B, E)`` is broadcast over the pixels of every coupling's conditioner and gives the
  priors class-dependent means and scales (Glow, Kingma & Dhariwal 2018, sec. 5).
* ``"lowres"``: a low-resolution copy, float intensities in ``[0, 1]`` of shape
  ``(B, C, r, r)`` with ``r = lowres_size`` (:func:`downsample`): super-resolution.
* ``"mask"``: a masked copy and its mask, ``(B, C + 1, H, W)`` (:func:`mask_condition`):
  inpainting. The mask is 1 where a pixel is seen.

An image condition is encoded once by a small conv net at full resolution and average-pooled
to the resolution of each level (:class:`ConditionEncoder`). The dequantization ignores it. A
``"lowres"`` model with ``FlowConfig.lowres_residual`` (the default) first applies
:class:`BlockSumResidual`, a parameter-free layer that maps exactly the images whose block sums
match the thumbnail onto all of ``R^D``.

:func:`flowlib.models.multiscale.make_condition` computes the condition of a batch for training and evaluation: the
labels, the deterministic low-resolution copy, or, for ``"mask"``, one random half of each
image hidden in training (top, bottom, left or right) and always the bottom half in evaluation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.bijection import Bijection

__all__ = ["CONDITIONS", "BlockSumResidual", "ConditionEncoder", "corner_mask", "downsample", "half_masks",
           "mask_condition"]

CONDITIONS = ("class", "lowres", "mask")


def downsample(x: Tensor, size: int) -> Tensor:
    """Integer images ``(B, C, H, W)`` -> their ``size x size`` block averages, intensities in ``[0, 1]``."""
    factor = x.shape[-1] // size
    if size < 1 or x.shape[-1] != factor * size or x.shape[-2] != factor * size:
        raise ValueError(f"cannot shrink images of shape {tuple(x.shape)} to {size}x{size}: "
                         f"the image side must be a multiple of {size}")
    return F.avg_pool2d(x.float() / 255, factor)


def half_masks(n: int, size: int, random: bool = True, device: torch.device | str | None = None) -> Tensor:
    """``(n, 1, size, size)`` masks, 1 where a pixel is seen and 0 on one hidden half.

    ``random=True``: each image hides its top, bottom, left or right half, drawn with torch's
    global generator (training). ``random=False``: every image hides its bottom half (evaluation).
    """
    rows = torch.arange(size, device=device)
    hidden = torch.stack([
        (rows[:, None] < size // 2).expand(size, size),    # top
        (rows[:, None] >= size // 2).expand(size, size),   # bottom
        (rows[None, :] < size // 2).expand(size, size),    # left
        (rows[None, :] >= size // 2).expand(size, size),   # right
    ])
    which = torch.randint(0, 4, (n,), device=device) if random else torch.full((n,), 1, device=device)
    return (~hidden[which]).float()[:, None]


def mask_condition(x: Tensor, mask: Tensor) -> Tensor:
    """Integer images ``(B, C, H, W)`` and masks ``(B, 1, H, W)`` -> ``[x / 255 * mask, mask]``, ``(B, C + 1, H, W)``."""
    mask = mask.to(x.device, torch.float32)
    return torch.cat([x.float() / 255 * mask, mask], dim=1)


def corner_mask(size: int, factor: int, device: torch.device | str | None = None) -> Tensor:
    """``(size, size)`` float map, 1 at the bottom-right pixel of every ``factor x factor`` block, else 0."""
    rows = torch.arange(size, device=device) % factor == factor - 1
    return (rows[:, None] & rows[None, :]).float()


class BlockSumResidual(Bijection):
    r"""Super-resolution's exact constraint, built in: the images that fit a thumbnail <-> all of ``R^D``.

    A ``r x r`` thumbnail fixes the sum ``S`` of every ``f x f`` block (``f = size / r``). With the
    dequantized pixels ``q_i = (x_i + u_i) / 256`` in ``(0, 1)`` (recovered from the logit-space input
    ``v``), ``256 sum_i q_i = S + sum_i u_i``, so the block's mean noise ``n = (256 sum_i q_i - S) / f^2``
    lies in ``(0, 1)`` for every image that fits the thumbnail. Smooth couplings learn such a sharp
    linear constraint slowly, and a flow that has not learned it draws samples that do not fit. This
    layer maps the images that fit onto all of ``R^D``, so the flow after it need learn nothing about
    the constraint, and every sample fits. In each block:

    * the last pixel (bottom-right) becomes ``logit(n)``: where in its window the block's total lies;
    * every other pixel, in raster order, becomes the logit of where ``q_i`` lies in the interval the
      pixels before it leave open. With ``R_i`` the total still to share among the ``m_i = f^2 - i``
      pixels from ``i`` on: ``q_i in (lo_i, hi_i) = (max(0, R_i - (m_i - 1)), min(1, R_i))`` and
      ``c_i = logit(r_i)``, ``r_i = (q_i - lo_i) / (hi_i - lo_i)``. The last pixel is what remains.

    In the order (total, ``q_1, ..., q_{f^2 - 1}``) the Jacobian is triangular, so

    .. math::
        \log|\det| = \sum_{\text{blocks}} \Big[\log\tfrac{256}{f^2} - \log n(1 - n)
            - \sum_{i < f^2} \big(\log(hi_i - lo_i) + \log r_i (1 - r_i)\big)\Big]
            + \sum_{\text{pixels}} \log\frac{dq}{dv}, \qquad \frac{dq}{dv} = \frac{\sigma(v)(1 - \sigma(v))}{1 - 2\alpha}.

    An image that does not fit the thumbnail lies outside the domain: ``forward`` gives it log-det
    ``-inf`` (probability zero) and finite placeholder outputs. The layer has no parameters and
    computes in float64, since an interval can be a millionth wide.

    ``cond``: the thumbnail, intensities ``S / (255 f^2)`` in ``[0, 1]``, ``(B, C, r, r)``
    (:func:`downsample`). ``alpha`` is the logit margin of the dequantization.
    """

    takes_cond = True

    def __init__(self, size: int, lowres_size: int, alpha: float, eps: float = 1e-9):
        super().__init__()
        self.size, self.factor = size, size // lowres_size
        self.alpha, self.eps = float(alpha), eps

    def _blocks(self, t: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, r, r, f * f)``, each block's pixels in raster order."""
        f = self.factor
        return t.unfold(2, f, f).unfold(3, f, f).flatten(-2)

    def _image(self, b: Tensor) -> Tensor:
        """Inverse of :meth:`_blocks`."""
        f, r = self.factor, self.size // self.factor
        return b.unflatten(-1, (f, f)).permute(0, 1, 2, 4, 3, 5).reshape(b.shape[0], b.shape[1], r * f, r * f)

    def _log_dq_dv(self, v: Tensor) -> Tensor:
        return (F.logsigmoid(v) + F.logsigmoid(-v) - math.log(1 - 2 * self.alpha)).flatten(1).sum(1)

    def _sums(self, cond: Tensor) -> Tensor:
        return (cond.double() * (255 * self.factor**2)).round()

    def _interval(self, rest: Tensor, i: int) -> tuple[Tensor, Tensor]:
        """Where pixel ``i`` of a block can lie when ``rest`` is left for it and the pixels after it."""
        lo = (rest - (self.factor**2 - i - 1)).clamp(min=0)
        return lo, rest.clamp(max=1) - lo

    def forward(self, v: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        dtype, f2 = v.dtype, self.factor**2
        v = v.double()
        q = self._blocks((torch.sigmoid(v) - self.alpha) / (1 - 2 * self.alpha))
        total = q.sum(-1)
        n = (256 * total - self._sums(cond)) / f2
        outside = (n <= 0) | (n >= 1)
        n = n.clamp(self.eps, 1 - self.eps)
        logdet = self._log_dq_dv(v) + (math.log(256 / f2) - torch.log(n) - torch.log1p(-n)).flatten(1).sum(1)
        out, rest = [], total
        for i in range(f2 - 1):
            lo, width = self._interval(rest, i)
            outside |= width <= 0
            width = width.clamp(min=self.eps)
            r = ((q[..., i] - lo) / width).clamp(self.eps, 1 - self.eps)
            out.append(torch.log(r) - torch.log1p(-r))
            logdet = logdet - (torch.log(width) + torch.log(r) + torch.log1p(-r)).flatten(1).sum(1)
            rest = rest - q[..., i]
        out.append(torch.log(n) - torch.log1p(-n))
        logdet = torch.where(outside.flatten(1).any(1), torch.full_like(logdet, -math.inf), logdet)
        return self._image(torch.stack(out, -1)).to(dtype), logdet.to(dtype)

    def inverse(self, z: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        dtype, f2 = z.dtype, self.factor**2
        c = self._blocks(z.double())
        n = torch.sigmoid(c[..., -1])
        logdet = (F.logsigmoid(c[..., -1]) + F.logsigmoid(-c[..., -1]) - math.log(256 / f2)).flatten(1).sum(1)
        q, rest = [], (self._sums(cond) + f2 * n) / 256
        for i in range(f2 - 1):
            lo, width = self._interval(rest, i)
            q.append(lo + width * torch.sigmoid(c[..., i]))
            logdet = logdet + (torch.log(width) + F.logsigmoid(c[..., i]) + F.logsigmoid(-c[..., i])).flatten(1).sum(1)
            rest = rest - q[-1]
        q.append(rest)
        s = self.alpha + (1 - 2 * self.alpha) * self._image(torch.stack(q, -1)).clamp(1e-12, 1 - 1e-12)
        v = torch.log(s) - torch.log1p(-s)
        return v.to(dtype), (logdet - self._log_dq_dv(v)).to(dtype)


class ConditionEncoder(nn.Module):
    """A condition -> one feature tensor per resolution of the model, finest first.

    ``forward(cond)`` returns ``levels + 1`` tensors: for labels the same embedding ``(B, E)``
    each time (the layers broadcast it over their pixels); for an image condition
    ``(B, E, size / 2^l, size / 2^l)`` for ``l = 0..levels``, from a 3x3 conv net applied at full
    resolution (a low-resolution copy is first upsampled bilinearly) and then average-pooled.

    ``kind`` is one of :data:`CONDITIONS`, ``features`` is ``E``, ``channels`` those of the images;
    ``corner_factor`` (the thumbnail's block size, for a model with :class:`BlockSumResidual`) adds
    the map of the pixels that hold a block's residual as one more input channel.
    """

    def __init__(self, kind: str, size: int, levels: int, features: int, channels: int = 1, num_classes: int = 10,
                 corner_factor: int | None = None):
        super().__init__()
        if kind not in CONDITIONS:
            raise ValueError(f"kind must be one of {list(CONDITIONS)}, got {kind!r}")
        self.kind, self.size, self.levels = kind, size, levels
        if kind == "class":
            self.embed = nn.Embedding(num_classes, features)
        else:
            c = channels if kind == "lowres" else channels + 1
            # with BlockSumResidual the conditioners must know which pixels hold a block's residual
            self.corners = kind == "lowres" and corner_factor is not None
            if self.corners:
                self.register_buffer("corner_map", corner_mask(size, corner_factor), persistent=False)
            c += int(self.corners)
            self.net = nn.Sequential(nn.Conv2d(c, features, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(features, features, 3, padding=1))

    def forward(self, cond: Tensor) -> list[Tensor]:
        if self.kind == "class":
            return [self.embed(cond)] * (self.levels + 1)
        if cond.shape[-1] != self.size:
            cond = F.interpolate(cond, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.corners:
            cond = torch.cat([cond, self.corner_map.to(cond.dtype).expand(cond.shape[0], 1, -1, -1)], dim=1)
        h = self.net(cond)
        return [F.avg_pool2d(h, 2**level) if level else h for level in range(self.levels + 1)]
