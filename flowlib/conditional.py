r"""Conditions for the multi-scale flow: class labels and images (notebook 08).

A conditional flow models ``p(x | c)``. For every fixed ``c`` the model is an ordinary flow,
so the change of variables holds as before:

.. math::
    \log p(x \mid c) = \log p_z(f(x; c) \mid c) + \log\left|\det \partial f(x; c) / \partial x\right|.

Only the conditioners and the priors see ``c``; the map stays a bijection of ``x``.
:class:`flowlib.model.MultiScaleFlow` takes three kinds of condition (``FlowConfig.condition``):

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
:class:`BlockSumResidual`, a parameter-free layer that turns the thumbnail's exact constraint on
each block's sum into one bounded coordinate per block.

:func:`make_condition` computes the condition of a batch for training and evaluation: the
labels, the deterministic low-resolution copy, or, for ``"mask"``, one random half of each
image hidden in training (top, bottom, left or right) and always the bottom half in evaluation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .bijection import Bijection

if TYPE_CHECKING:
    from .model import FlowConfig, MultiScaleFlow

__all__ = ["CONDITIONS", "BlockSumResidual", "ConditionEncoder", "corner_mask", "downsample", "half_masks",
           "mask_condition", "make_condition", "classify"]

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


def make_condition(config: FlowConfig, x: Tensor, labels: Tensor | None = None, train: bool = False) -> Tensor | None:
    """The condition of the images ``x`` (and their ``labels``) for a model with ``config``; None if unconditional.

    ``"class"`` returns ``labels``; ``"lowres"`` the ``lowres_size`` copy of ``x``; ``"mask"`` a
    masked copy, with a random half hidden when ``train`` and the bottom half otherwise.
    """
    kind = config.condition
    if kind is None:
        return None
    if kind == "class":
        if labels is None:
            raise ValueError("this model is class-conditional: pass the labels of the images")
        return labels
    if kind == "lowres":
        return downsample(x, config.lowres_size)
    return mask_condition(x, half_masks(x.shape[0], x.shape[-1], random=train, device=x.device))


def corner_mask(size: int, factor: int, device: torch.device | str | None = None) -> Tensor:
    """``(size, size)`` float map, 1 at the bottom-right pixel of every ``factor x factor`` block, else 0."""
    rows = torch.arange(size, device=device) % factor == factor - 1
    return (rows[:, None] & rows[None, :]).float()


class BlockSumResidual(Bijection):
    r"""Super-resolution's exact constraint, built in: one pixel per block becomes the block sum's residual.

    A ``r x r`` thumbnail fixes the sum ``S`` of every ``f x f`` block (``f = size / r``): with the
    dequantized pixels ``q_i = (x_i + u_i) / 256`` (recovered from the logit-space input ``v``),
    ``256 sum_i q_i = S + sum_i u_i``, so the block's mean noise ``n = (256 sum_i q_i - S) / f^2``
    lies in ``[0, 1)`` whatever the image. Smooth couplings learn such a sharp linear constraint
    slowly; this layer hands it over. The bottom-right pixel ``v_c`` of each block is replaced by

    .. math::
        g = eta\,(n - 	frac12) + \gamma\, v_c, \qquad eta = \sqrt{12}\, f,

    which has unit scale when the noise is uniform (``n`` is a mean of ``f^2`` uniforms). The small
    ``gamma v_c`` term keeps ``g`` strictly increasing in ``v_c`` and onto the real line, so for
    every fixed thumbnail the layer is a bijection of all of ``R^D`` (not only of images that agree
    with the thumbnail): ``inverse`` solves the monotone equation by bisection. Only ``v_c`` changes,
    so the Jacobian is triangular and

    .. math::
        \log|\det| = \sum_{	ext{blocks}} \log\left(eta\, rac{256}{f^2}\, rac{dq_c}{dv_c} + \gamma
ight),
        \qquad rac{dq}{dv} = rac{\sigma(v)(1 - \sigma(v))}{1 - 2lpha}.

    ``cond``: the thumbnail, intensities ``S / (255 f^2)`` in ``[0, 1]``, ``(B, C, r, r)``
    (:func:`downsample`). ``alpha`` is the logit margin of the dequantization.
    """

    takes_cond = True

    def __init__(self, size: int, lowres_size: int, alpha: float, gamma: float = 1e-3):
        super().__init__()
        self.factor = size // lowres_size
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.beta = math.sqrt(12) * self.factor
        self.register_buffer("corners", corner_mask(size, self.factor).bool(), persistent=False)

    def _q(self, v: Tensor) -> Tensor:
        return (torch.sigmoid(v) - self.alpha) / (1 - 2 * self.alpha)

    def _slope(self, v_c: Tensor) -> Tensor:
        s = torch.sigmoid(v_c)
        return self.beta * 256 / self.factor**2 * s * (1 - s) / (1 - 2 * self.alpha) + self.gamma

    def _sums(self, cond: Tensor) -> Tensor:
        return (cond * (255 * self.factor**2)).round()

    def _rest(self, v: Tensor) -> Tensor:
        """256 times the sum of each block's other pixels, ``(B, C, r, r)``."""
        q = torch.where(self.corners, torch.zeros_like(v), self._q(v))
        return F.avg_pool2d(q, self.factor) * (256 * self.factor**2)

    def _g(self, v_c: Tensor, rest: Tensor, sums: Tensor) -> Tensor:
        noise = (rest + 256 * self._q(v_c) - sums) / self.factor**2
        return self.beta * (noise - 0.5) + self.gamma * v_c

    def _corner(self, v: Tensor) -> Tensor:
        return v[..., self.factor - 1 :: self.factor, self.factor - 1 :: self.factor]

    def _put(self, v: Tensor, corner: Tensor) -> Tensor:
        up = corner.repeat_interleave(self.factor, -1).repeat_interleave(self.factor, -2)
        return torch.where(self.corners, up, v)

    def forward(self, v: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        v_c = self._corner(v)
        g = self._g(v_c, self._rest(v), self._sums(cond))
        return self._put(v, g), torch.log(self._slope(v_c)).flatten(1).sum(1)

    def inverse(self, z: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        g, rest, sums = self._corner(z), self._rest(z), self._sums(cond)
        # g(v_c) - gamma v_c is bounded by `reach`, so the root lies within reach / gamma of g / gamma
        reach = self.beta * ((rest.abs() + 256 + sums) / self.factor**2 + 0.5)
        lo, hi = (g - reach) / self.gamma, (g + reach) / self.gamma
        for _ in range(100):  # bisection: g is strictly increasing in v_c
            mid = (lo + hi) / 2
            above = self._g(mid, rest, sums) > g
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        v_c = (lo + hi) / 2
        return self._put(z, v_c), -torch.log(self._slope(v_c)).flatten(1).sum(1)


class ConditionEncoder(nn.Module):
    """A condition -> one feature tensor per resolution of the model, finest first.

    ``forward(cond)`` returns ``levels + 1`` tensors: for labels the same embedding ``(B, E)``
    each time (the layers broadcast it over their pixels); for an image condition
    ``(B, E, size / 2^l, size / 2^l)`` for ``l = 0..levels``, from a 3x3 conv net applied at full
    resolution (a low-resolution copy is first upsampled bilinearly) and then average-pooled.
    """

    def __init__(self, config: FlowConfig):
        super().__init__()
        cfg = config
        self.kind, self.size, self.levels = cfg.condition, cfg.size, cfg.levels
        e = cfg.cond_features
        if self.kind == "class":
            self.embed = nn.Embedding(cfg.num_classes, e)
        else:
            c = cfg.channels if self.kind == "lowres" else cfg.channels + 1
            # with BlockSumResidual the conditioners must know which pixels hold a block's residual
            self.corners = self.kind == "lowres" and cfg.lowres_residual
            if self.corners:
                self.register_buffer("corner_map", corner_mask(cfg.size, cfg.size // cfg.lowres_size),
                                     persistent=False)
            c += int(self.corners)
            self.net = nn.Sequential(nn.Conv2d(c, e, 3, padding=1), nn.ReLU(), nn.Conv2d(e, e, 3, padding=1))

    def forward(self, cond: Tensor) -> list[Tensor]:
        if self.kind == "class":
            return [self.embed(cond)] * (self.levels + 1)
        if cond.shape[-1] != self.size:
            cond = F.interpolate(cond, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.corners:
            cond = torch.cat([cond, self.corner_map.to(cond.dtype).expand(cond.shape[0], 1, -1, -1)], dim=1)
        h = self.net(cond)
        return [F.avg_pool2d(h, 2**level) if level else h for level in range(self.levels + 1)]


@torch.no_grad()
def classify(model: MultiScaleFlow, images: Tensor, batch_size: int = 500, progress: bool = False) -> Tensor:
    r"""Bayes classifier of a class-conditional model: ``argmax_c p(x | c)``, ``(N,)`` int64.

    With a uniform prior ``p(c)``, ``p(c | x) \propto p(x | c)``; see
    :meth:`MultiScaleFlow.class_log_likelihoods` for the likelihoods themselves. It costs one
    pass through the flow per image and class; ``progress`` shows a bar over the batches.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    chunks = images.split(batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"classify ({model.config.num_classes} passes per image)", unit="batch")
    return torch.cat([model.class_log_likelihoods(chunk).argmax(1).cpu() for chunk in chunks])
