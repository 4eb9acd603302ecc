"""The full multi-scale flow for 28x28 images, Glow/RealNVP family (notebook 06).

Data flow of ``encode`` (``x`` integer pixels ``(B, 1, 28, 28)``)::

    x --dequantize + logit--> y (1, 28, 28)
      --[pre_steps x checkerboard coupling]-->
      --level 1: squeeze -> (4, 14, 14) -> K Glow steps -> split prior -> keep (2, 14, 14), z_1 (2, 14, 14)
      --level 2: squeeze -> (8, 7, 7)   -> K Glow steps                  -> z_2 (8, 7, 7)

Every factored-out latent is standard normal under the model (the split prior standardises
it), so ``log p(x) >= sum_l log N(z_l; 0, I) + logdet`` where ``logdet`` collects every
layer's log-det, the logit's, the 256-bin term and ``-log q(u|x)`` of the dequantization
(see :mod:`flowlib.dequantize`). ``decode`` inverts ``encode`` exactly up to float round-off.

Built from the parts of notebooks 02-05: RealNVP (Dinh et al. 2017) for the multi-scale
architecture, Glow (Kingma & Dhariwal 2018) for the steps and the split prior, Flow++
(Ho et al. 2019) for variational dequantization.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from .actnorm import ActNorm
from .bijection import Sequential, check_input, skip_finite_checks
from .coupling import AffineCoupling, checkerboard_mask
from .dequantize import UniformDequantization, VariationalDequantization, check_pixels
from .glow import GlowStep
from .multiscale import SplitPrior, Squeeze, split
from .nets import GatedResNet

__all__ = ["FlowConfig", "MultiScaleFlow"]

LOG2 = math.log(2)


def _check_count(name: str, value: object, least: int, error: type[Exception] = TypeError) -> int:
    """``value`` as an int if it is a whole number >= ``least``; else a one-line error naming ``name``."""
    if isinstance(value, bool):
        raise error(f"{name} must be a whole number >= {least}, got {value!r}")
    if not isinstance(value, int):
        try:
            value = operator.index(value)  # numpy and 0-d torch integers are fine
        except TypeError:
            raise error(f"{name} must be a whole number >= {least}, got {value!r}") from None
    if value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value}")
    return int(value)


@dataclass
class FlowConfig:
    """Hyper-parameters of :class:`MultiScaleFlow`; stored in every checkpoint.

    Attributes:
        channels, size: image shape ``(channels, size, size)``.
        levels: number of [squeeze, K steps, split] levels; ``size`` must be divisible by ``2**levels``.
        steps_per_level: K, Glow steps per level.
        hidden, blocks: width and gated residual blocks of each coupling's conditioner.
        pre_steps: checkerboard affine couplings (with ActNorm) at full resolution before the first squeeze.
        dequantization: ``"uniform"`` or ``"variational"``.
        deq_hidden, deq_layers: size of the variational dequantization flow.
        split_prior: learned conditional Gaussian prior for the factored-out halves (Glow); else N(0, I).
        alpha: logit margin; scale_bound: bound of the couplings' log-scale.
        learn_bound: learn that bound per channel, starting from ``scale_bound``.
        split_couplings: Glow steps slice the channels instead of masking them (same map,
            half the conditioner input; ``False`` for checkpoints made before this existed).
    """

    channels: int = 1
    size: int = 28
    levels: int = 2
    steps_per_level: int = 4
    hidden: int = 64
    blocks: int = 1
    pre_steps: int = 2
    dequantization: str = "variational"
    deq_hidden: int = 32
    deq_layers: int = 4
    split_prior: bool = True
    alpha: float = 1e-5
    scale_bound: float = 2.0
    learn_bound: bool = False
    split_couplings: bool = True

    def __post_init__(self) -> None:
        """Reject a config that cannot build a working model, naming the field and the allowed values."""
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be True or False, got {value!r}")
            elif isinstance(default, int):
                least = 0 if f.name in ("pre_steps", "blocks") else 1
                _check_count(f.name, value, least, error=ValueError)
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"{f.name} must be a finite number, got {value!r}")
        if self.dequantization not in ("uniform", "variational"):
            raise ValueError(f"dequantization must be 'uniform' or 'variational', got {self.dequantization!r}")
        if self.size % (2 ** self.levels):
            raise ValueError(f"size {self.size} must be divisible by 2**levels = {2 ** self.levels} (levels >= 1)")
        if self.pre_steps and self.hidden < 2:
            raise ValueError(f"hidden must be >= 2 when pre_steps > 0 (their nets have hidden // 2 channels), "
                             f"got {self.hidden}")
        if not 0 <= self.alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {self.alpha}")
        if self.scale_bound <= 0:
            raise ValueError(f"scale_bound must be > 0, got {self.scale_bound}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        """Rebuild a stored config; fields it predates take the value that reproduces the old model."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FlowConfig fields {sorted(unknown)}")
        return cls(**{**_LEGACY, **d})


# Fields added after checkpoints were first shipped, with the value that rebuilds those checkpoints.
_LEGACY = {"learn_bound": False, "split_couplings": False}


class MultiScaleFlow(nn.Module):
    """Multi-scale flow over 8-bit images ``(B, C, H, W)``; see the module docstring."""

    def __init__(self, config: FlowConfig | None = None):
        super().__init__()
        cfg = config or FlowConfig()
        self.config = cfg
        c, s = cfg.channels, cfg.size
        if cfg.dequantization == "variational":
            self.dequant = VariationalDequantization(c, cfg.deq_hidden, cfg.deq_layers, alpha=cfg.alpha, size=(s, s))
        else:
            self.dequant = UniformDequantization(alpha=cfg.alpha)
        pre = []
        for i in range(cfg.pre_steps):
            pre += [ActNorm(c), AffineCoupling(checkerboard_mask(s, s, parity=i % 2),
                                               GatedResNet(c, 2 * c, hidden=cfg.hidden // 2, blocks=cfg.blocks),
                                               scale_bound=cfg.scale_bound, learn_bound=cfg.learn_bound)]
        self.pre = Sequential(*pre)
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.latent_shapes: list[tuple[int, int, int]] = []
        for level in range(cfg.levels):
            c, s = 4 * c, s // 2
            steps = [GlowStep(c, hidden=cfg.hidden, blocks=cfg.blocks, scale_bound=cfg.scale_bound,
                              learn_bound=cfg.learn_bound, split=cfg.split_couplings)
                     for _ in range(cfg.steps_per_level)]
            self.levels.append(Sequential(Squeeze(), *steps))
            if level < cfg.levels - 1:
                self.priors.append(SplitPrior(c) if cfg.split_prior else Sequential())
                self.latent_shapes.append((c // 2, s, s))
                c = c // 2
        self.latent_shapes.append((c, s, s))
        self.num_dims = cfg.channels * cfg.size * cfg.size

    # ---- the bijective part: continuous y (logit space) <-> latents -----------------------
    def transform(self, y: Tensor) -> tuple[list[Tensor], Tensor]:
        """``y: (B, C, H, W)`` logit-space images -> (list of latents, logdet ``(B,)``)."""
        h, logdet = self.pre(y)
        latents = []
        for i, level in enumerate(self.levels):
            h, ld = level(h)
            logdet = logdet + ld
            if i < len(self.priors):
                h, ld = self.priors[i](h)
                logdet = logdet + ld
                h, z = split(h)
                latents.append(z)
        latents.append(h)
        return latents, logdet

    def untransform(self, latents: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`transform`: latents -> (y, logdet of the inverse)."""
        self._check_latents(latents)
        with skip_finite_checks():  # checked once above; the layers need not scan again
            return self._untransform(latents)

    def _untransform(self, latents: list[Tensor]) -> tuple[Tensor, Tensor]:
        h = latents[-1]
        logdet = h.new_zeros(h.shape[0])
        for i in reversed(range(len(self.levels))):
            if i < len(self.priors):
                h = torch.cat([h, latents[i]], dim=1)
                h, ld = self.priors[i].inverse(h)
                logdet = logdet + ld
            h, ld = self.levels[i].inverse(h)
            logdet = logdet + ld
        y, ld = self.pre.inverse(h)
        return y, logdet + ld

    def _check_latents(self, latents: list[Tensor]) -> None:
        if not isinstance(latents, (list, tuple)) or len(latents) != len(self.latent_shapes):
            raise ValueError(f"expected a list of {len(self.latent_shapes)} latents with shapes "
                             f"{self.latent_shapes} (per example)")
        for i, (z, shape) in enumerate(zip(latents, self.latent_shapes)):
            check_input(z, ndim=len(shape) + 1, name=f"latent {i}")
            if tuple(z.shape[1:]) != shape:
                raise ValueError(f"latent {i} must have shape (B, {', '.join(map(str, shape))}), got {tuple(z.shape)}")

    # ---- data <-> latents ---------------------------------------------------------------------
    def _check_images(self, x: Tensor) -> None:
        check_pixels(x)
        want = (self.config.channels, self.config.size, self.config.size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"images must have shape (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")

    def _dequantize(self, x: Tensor, sample_noise: bool) -> tuple[Tensor, Tensor]:
        return self.dequant(x.to(self._dtype()), deterministic=not sample_noise)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def log_prob(self, x: Tensor) -> Tensor:
        """Dequantized log-likelihood (nats) of integer images ``x``, one noise sample; ``(B,)``.

        A lower bound on ``log P(x)`` in expectation over the noise.
        """
        self._check_images(x)
        with skip_finite_checks():  # the integer pixels were checked; the layers need not scan again
            y, logdet = self.dequant(x.to(self._device(), self._dtype()))
            latents, ld = self.transform(y)
        return self._log_normal(latents) + logdet + ld

    @staticmethod
    def _log_normal(latents: list[Tensor]) -> Tensor:
        total = 0.0
        for z in latents:
            total = total - 0.5 * z.pow(2).flatten(1).sum(1) - 0.5 * z[0].numel() * math.log(2 * math.pi)
        return total

    def bits_per_dim(self, x: Tensor) -> Tensor:
        """``-log_prob(x) / (D ln 2)`` per image, ``(B,)``."""
        return -self.log_prob(x) / (self.num_dims * LOG2)

    @torch.no_grad()
    def importance_bits_per_dim(self, x: Tensor, samples: int = 8) -> Tensor:
        r"""Bits/dim from ``K = samples`` dequantization samples per image, ``(B,)``.

        ``log P(x) ~ logsumexp_k [log p(x + u_k) - log q(u_k|x)] - log K``: a tighter bound
        than one sample, converging to ``log P(x)`` as ``K`` grows (Ho et al. 2019, sec. 3.1).
        """
        samples = _check_count("samples", samples, 1)
        lps = torch.stack([self.log_prob(x) for _ in range(samples)])
        log_px = torch.logsumexp(lps, dim=0) - math.log(samples)
        return -log_px / (self.num_dims * LOG2)

    @torch.no_grad()
    def encode(self, x: Tensor, sample_noise: bool = False) -> list[Tensor]:
        """Integer images -> list of latents, finest scale first, coarsest last.

        With ``sample_noise=False`` (default) the dequantization noise is fixed (bin centres),
        so the same image always gives the same latents.
        """
        self._check_images(x)
        with skip_finite_checks():
            y, _ = self._dequantize(x.to(self._device()), sample_noise)
            return self.transform(y)[0]

    @torch.no_grad()
    def decode(self, latents: list[Tensor], quantize: bool = True) -> Tensor:
        """Latents -> images: uint8 pixels (``quantize=True``) or intensities in ``[0, 1]``."""
        y, _ = self.untransform(latents)
        if quantize:
            return self.dequant.inverse(y)[0].to(torch.uint8)
        return self.dequant.to_unit(y)

    @torch.no_grad()
    def sample_latents(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> list[Tensor]:
        """Draw latents ``z_l ~ N(0, T^2 I)`` for ``n >= 1`` images."""
        n = _check_count("n", n, 1)
        dev, dt = self._device(), self._dtype()
        return [temperature * torch.randn((n, *shape), generator=generator, device=generator.device if generator else dev,
                                          dtype=dt).to(dev) for shape in self.latent_shapes]

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               quantize: bool = True) -> Tensor:
        """Draw ``n`` images; ``temperature < 1`` trades diversity for cleaner samples (Glow, sec. 5)."""
        return self.decode(self.sample_latents(n, temperature, generator), quantize=quantize)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
