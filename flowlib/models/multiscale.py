"""The full multi-scale flow for 28x28 images, Glow/RealNVP family (notebook 06).

Data flow of ``encode`` (``x`` integer pixels ``(B, 1, 28, 28)``)::

    x --dequantize + logit--> y (1, 28, 28)
      --[pre_steps x checkerboard coupling]-->
      --level 1: squeeze -> (4, 14, 14) -> K Glow steps -> split prior -> keep (2, 14, 14), z_1 (2, 14, 14)
      --level 2: squeeze -> (8, 7, 7)   -> K Glow steps                  -> z_2 (8, 7, 7)

Every factored-out latent is standard normal under the model (the split prior standardises
it), so ``log p(x) >= sum_l log N(z_l; 0, I) + logdet`` where ``logdet`` collects every
layer's log-det, the logit's, the 256-bin term and ``-log q(u|x)`` of the dequantization
(see :mod:`flowlib.layers.dequantize`). ``decode`` inverts ``encode`` exactly up to float round-off.

Built from the parts of notebooks 02-05: RealNVP (Dinh et al. 2017) for the multi-scale
architecture, Glow (Kingma & Dhariwal 2018) for the steps and the split prior, Flow++
(Ho et al. 2019) for variational dequantization.

A conditional model (``FlowConfig.condition``, notebook 08) models ``p(x | c)``: every method
that maps images or latents takes the condition as ``cond`` (see :mod:`flowlib.models.conditions`),
every coupling's conditioner and every prior sees it, and the coarsest latent gets a
condition-dependent Gaussian prior (:class:`~flowlib.layers.squeeze.ConditionalPrior`).
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from ..core.bijection import Sequential, check_input, skip_finite_checks
from ..layers.actnorm import ActNorm
from ..layers.coupling import AffineCoupling, checkerboard_mask
from ..layers.dequantize import UniformDequantization, VariationalDequantization, check_pixels
from ..layers.glow import GlowStep
from ..layers.nets import GatedResNet
from ..layers.squeeze import ConditionalPrior, SplitPrior, Squeeze, split
from .conditions import CONDITIONS, BlockSumResidual, ConditionEncoder, downsample, half_masks, mask_condition

__all__ = ["FlowConfig", "MultiScaleFlow", "make_condition", "classify"]

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
        coupling: the Glow steps' coupling, ``"affine"``, ``"spline"`` (a rational-quadratic spline with
            ``spline_bins`` bins on ``[-spline_bound, spline_bound]`` before the affine map) or ``"mixture"``
            (Flow++'s logistic-mixture CDF with ``mixture_components`` logistics before it); issue 25's recipe study.
        split_couplings: Glow steps slice the channels instead of masking them (same map,
            half the conditioner input; ``False`` for checkpoints made before this existed).
        condition: ``None`` (unconditional), ``"class"``, ``"lowres"`` or ``"mask"``; see
            :mod:`flowlib.models.conditions`. The other fields below matter only for a conditional model.
        num_classes: labels lie in ``[0, num_classes)`` (``"class"``).
        lowres_size: side of the low-resolution copy (``"lowres"``); divides ``size``.
        cond_features: E, channels of the class embedding or of the encoded image condition.
        lowres_residual: a ``"lowres"`` model first maps the images whose block sums match the
            thumbnail onto all of ``R^D`` (:class:`~flowlib.models.conditions.BlockSumResidual`), so the flow
            need not learn that constraint (``False`` for checkpoints made before it existed).
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
    condition: str | None = None
    num_classes: int = 10
    lowres_size: int = 7
    cond_features: int = 16
    lowres_residual: bool = True
    coupling: str = "affine"
    spline_bins: int = 4
    spline_bound: float = 3.0
    mixture_components: int = 4

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
        if self.coupling not in ("affine", "spline", "mixture"):
            raise ValueError(f"coupling must be 'affine', 'spline' or 'mixture', got {self.coupling!r}")
        if self.coupling != "affine" and not self.split_couplings:
            raise ValueError(f"coupling={self.coupling!r} slices the channels: it needs split_couplings=True")
        if self.mixture_components < 2:
            raise ValueError(f"mixture_components must be >= 2, got {self.mixture_components}")
        if self.spline_bins < 2:
            raise ValueError(f"spline_bins must be >= 2, got {self.spline_bins}")
        if self.spline_bound <= 0:
            raise ValueError(f"spline_bound must be > 0, got {self.spline_bound}")
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
        if self.condition is not None and self.condition not in CONDITIONS:
            raise ValueError(f"condition must be None or one of {list(CONDITIONS)}, got {self.condition!r}")
        if self.condition == "lowres" and self.size % self.lowres_size:
            raise ValueError(f"lowres_size {self.lowres_size} must divide size {self.size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        """Rebuild a stored config; fields it predates take the value that reproduces the old model."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FlowConfig fields {sorted(unknown)}")
        legacy = dict(_LEGACY)
        if d.get("condition") == "lowres":  # only a super-resolution model has the residual layer
            legacy["lowres_residual"] = False
        return cls(**{**legacy, **d})


# Fields added after checkpoints were first shipped, with the value that rebuilds those checkpoints.
_LEGACY = {"learn_bound": False, "split_couplings": False}


class MultiScaleFlow(nn.Module):
    """Multi-scale flow over 8-bit images ``(B, C, H, W)``; see the module docstring."""

    def __init__(self, config: FlowConfig | None = None):
        super().__init__()
        cfg = config or FlowConfig()
        self.config = cfg
        c, s = cfg.channels, cfg.size
        e = cfg.cond_features if cfg.condition else 0  # condition channels every conditioner and prior gets
        if cfg.dequantization == "variational":
            self.dequant = VariationalDequantization(c, cfg.deq_hidden, cfg.deq_layers, alpha=cfg.alpha, size=(s, s))
        else:
            self.dequant = UniformDequantization(alpha=cfg.alpha)
        pre = []
        for i in range(cfg.pre_steps):
            net = GatedResNet(c, 2 * c, hidden=cfg.hidden // 2, blocks=cfg.blocks, cond_channels=e)
            pre += [ActNorm(c), AffineCoupling(checkerboard_mask(s, s, parity=i % 2), net,
                                               scale_bound=cfg.scale_bound, learn_bound=cfg.learn_bound)]
        self.pre = Sequential(*pre)
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.latent_shapes: list[tuple[int, int, int]] = []
        for level in range(cfg.levels):
            c, s = 4 * c, s // 2
            steps = [GlowStep(c, hidden=cfg.hidden, blocks=cfg.blocks, scale_bound=cfg.scale_bound,
                              learn_bound=cfg.learn_bound, split=cfg.split_couplings, cond_channels=e,
                              coupling=cfg.coupling, bins=cfg.spline_bins, spline_bound=cfg.spline_bound,
                              components=cfg.mixture_components)
                     for _ in range(cfg.steps_per_level)]
            self.levels.append(Sequential(Squeeze(), *steps))
            if level < cfg.levels - 1:
                self.priors.append(SplitPrior(c, cond_channels=e) if cfg.split_prior else Sequential())
                self.latent_shapes.append((c // 2, s, s))
                c = c // 2
        self.latent_shapes.append((c, s, s))
        self.num_dims = cfg.channels * cfg.size * cfg.size
        if cfg.condition:  # only conditional models have these, so unconditional checkpoints keep their keys
            self.cond_encoder = ConditionEncoder(
                cfg.condition, cfg.size, cfg.levels, cfg.cond_features, cfg.channels, cfg.num_classes,
                corner_factor=cfg.size // cfg.lowres_size if cfg.condition == "lowres" and cfg.lowres_residual else None)
            self.top_prior = ConditionalPrior(c, e)
        self.residual = None  # no parameters: old checkpoints load unchanged
        if cfg.condition == "lowres" and cfg.lowres_residual:
            self.residual = BlockSumResidual(cfg.size, cfg.lowres_size, cfg.alpha)

    # ---- the condition ---------------------------------------------------------------------------
    @property
    def condition_shape(self) -> tuple[int, ...] | None:
        """Shape of one example's ``cond``: ``()`` for a label, ``(C', H', W')`` for an image; None if unconditional."""
        cfg = self.config
        return {None: None, "class": (), "lowres": (cfg.channels, cfg.lowres_size, cfg.lowres_size),
                "mask": (cfg.channels + 1, cfg.size, cfg.size)}[cfg.condition]

    def _check_condition(self, cond: Tensor | None, n: int) -> None:
        kind = self.config.condition
        if kind is None:
            if cond is not None:
                raise TypeError("this model is unconditional (its config has condition=None); call it without cond")
            return
        if cond is None:
            raise TypeError(f"this model is conditioned on {kind!r}: pass cond= (see flowlib.models.make_condition)")
        if not isinstance(cond, Tensor):
            raise TypeError(f"cond must be a torch.Tensor, got {type(cond).__name__}")
        want = (n, *self.condition_shape)
        if kind == "class":
            if cond.dtype == torch.bool or cond.is_floating_point() or cond.is_complex():
                raise TypeError(f"class labels must be an integer tensor (torch.long) of shape (B,), got dtype {cond.dtype}")
            if tuple(cond.shape) != want:
                raise ValueError(f"class labels must have shape ({n},), one per image, got {tuple(cond.shape)}")
            lo, hi = cond.min().item(), cond.max().item()
            if lo < 0 or hi >= self.config.num_classes:
                raise ValueError(f"class labels must lie in [0, {self.config.num_classes}), got values from {lo} to {hi}")
            return
        if not cond.is_floating_point():
            raise TypeError(f"a {kind!r} condition is a float image in [0, 1], got dtype {cond.dtype}; "
                            f"make it with flowlib.models.conditions.make_condition")
        if tuple(cond.shape) != want:
            raise ValueError(f"a {kind!r} condition must have shape {want} for {n} images, got {tuple(cond.shape)}; "
                             f"make it with flowlib.models.conditions.make_condition")
        if not torch.isfinite(cond).all() or cond.min() < 0 or cond.max() > 1:
            raise ValueError(f"a {kind!r} condition must hold intensities in [0, 1]; "
                             f"make it with flowlib.models.conditions.make_condition")

    def _features(self, cond: Tensor | None, n: int) -> list[Tensor | None]:
        """The checked condition -> its features at each resolution (``levels + 1`` entries; all None if unconditional)."""
        self._check_condition(cond, n)
        if cond is None:
            return [None] * (len(self.levels) + 1)
        if cond.is_floating_point():
            cond = cond.to(self._device(), self._dtype())
        return self.cond_encoder(cond.to(self._device()))

    # ---- the bijective part: continuous y (logit space) <-> latents -----------------------
    def transform(self, y: Tensor, cond: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        """``y: (B, C, H, W)`` logit-space images (and their condition) -> (list of latents, logdet ``(B,)``)."""
        feats = self._features(cond, y.shape[0])  # feats[0] at full resolution, feats[i + 1] for level i
        logdet = y.new_zeros(y.shape[0])
        if self.residual is not None:
            y, logdet = self.residual(y, cond.to(y.device, y.dtype))
        h, ld = self.pre(y, feats[0])
        logdet = logdet + ld
        latents = []
        for i, level in enumerate(self.levels):
            h, ld = level(h, feats[i + 1])
            logdet = logdet + ld
            if i < len(self.priors):
                h, ld = self.priors[i](h, feats[i + 1])
                logdet = logdet + ld
                h, z = split(h)
                latents.append(z)
        if self.config.condition:
            h, ld = self.top_prior(h, feats[-1])
            logdet = logdet + ld
        latents.append(h)
        return latents, logdet

    def untransform(self, latents: list[Tensor], cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`transform`: latents (and the condition) -> (y, logdet of the inverse)."""
        self._check_latents(latents)
        feats = self._features(cond, latents[-1].shape[0])
        with skip_finite_checks():  # checked once above; the layers need not scan again
            return self._untransform(latents, feats, cond)

    def _untransform(self, latents: list[Tensor], feats: list[Tensor | None],
                     cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = latents[-1]
        logdet = h.new_zeros(h.shape[0])
        if self.config.condition:
            h, logdet = self.top_prior.inverse(h, feats[-1])
        for i in reversed(range(len(self.levels))):
            if i < len(self.priors):
                h = torch.cat([h, latents[i]], dim=1)
                h, ld = self.priors[i].inverse(h, feats[i + 1])
                logdet = logdet + ld
            h, ld = self.levels[i].inverse(h, feats[i + 1])
            logdet = logdet + ld
        y, ld = self.pre.inverse(h, feats[0])
        if self.residual is not None:
            y, ld_res = self.residual.inverse(y, cond.to(y.device, y.dtype))
            ld = ld + ld_res
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

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Dequantized log-likelihood (nats) of integer images ``x`` (given ``cond``), one noise sample; ``(B,)``.

        A lower bound on ``log P(x)`` (``log P(x | c)``) in expectation over the noise.
        """
        self._check_images(x)
        self._check_condition(cond, x.shape[0])  # before the dequantization runs
        with skip_finite_checks():  # the integer pixels were checked; the layers need not scan again
            y, logdet = self.dequant(x.to(self._device(), self._dtype()))
            latents, ld = self.transform(y, cond)
        return self._log_normal(latents) + logdet + ld

    @torch.no_grad()
    def class_log_likelihoods(self, x: Tensor) -> Tensor:
        r"""``log p(x | c)`` in nats for every class ``c``, ``(B, num_classes)``, of a class-conditional model.

        All classes share one dequantization sample, so their differences are not blurred by the
        noise. Bayes' rule with a uniform ``p(c)``: ``log p(c | x) = log_softmax`` of these over ``c``
        (:func:`flowlib.models.conditions.classify`).
        """
        if self.config.condition != "class":
            raise TypeError(f"class_log_likelihoods needs a class-conditional model; this one has "
                            f"condition={self.config.condition!r}")
        self._check_images(x)
        with skip_finite_checks():
            y, logdet = self.dequant(x.to(self._device(), self._dtype()))
            out = []
            for c in range(self.config.num_classes):
                labels = torch.full((x.shape[0],), c, dtype=torch.long, device=y.device)
                latents, ld = self.transform(y, labels)
                out.append(self._log_normal(latents) + logdet + ld)
        return torch.stack(out, dim=1)

    @staticmethod
    def _log_normal(latents: list[Tensor]) -> Tensor:
        total = 0.0
        for z in latents:
            total = total - 0.5 * z.pow(2).flatten(1).sum(1) - 0.5 * z[0].numel() * math.log(2 * math.pi)
        return total

    def bits_per_dim(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``-log_prob(x, cond) / (D ln 2)`` per image, ``(B,)``."""
        return -self.log_prob(x, cond) / (self.num_dims * LOG2)

    @torch.no_grad()
    def importance_bits_per_dim(self, x: Tensor, samples: int = 8, cond: Tensor | None = None) -> Tensor:
        r"""Bits/dim from ``K = samples`` dequantization samples per image, ``(B,)``.

        ``log P(x) ~ logsumexp_k [log p(x + u_k) - log q(u_k|x)] - log K``: a tighter bound
        than one sample, converging to ``log P(x)`` as ``K`` grows (Ho et al. 2019, sec. 3.1).
        """
        samples = _check_count("samples", samples, 1)
        lps = torch.stack([self.log_prob(x, cond) for _ in range(samples)])
        log_px = torch.logsumexp(lps, dim=0) - math.log(samples)
        return -log_px / (self.num_dims * LOG2)

    @torch.no_grad()
    def encode(self, x: Tensor, cond: Tensor | None = None, sample_noise: bool = False) -> list[Tensor]:
        """Integer images -> list of latents, finest scale first, coarsest last.

        With ``sample_noise=False`` (default) the dequantization noise is fixed (bin centres),
        so the same image always gives the same latents.
        """
        self._check_images(x)
        self._check_condition(cond, x.shape[0])
        with skip_finite_checks():
            y, _ = self._dequantize(x.to(self._device()), sample_noise)
            return self.transform(y, cond)[0]

    @torch.no_grad()
    def decode(self, latents: list[Tensor], cond: Tensor | None = None, quantize: bool = True) -> Tensor:
        """Latents (and the condition) -> images: uint8 pixels (``quantize=True``) or intensities in ``[0, 1]``."""
        y, _ = self.untransform(latents, cond)
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
               quantize: bool = True, cond: Tensor | None = None) -> Tensor:
        """Draw ``n`` images (given ``cond``, one per image); ``temperature < 1`` trades diversity for cleaner samples.

        (Glow, sec. 5.)
        """
        n = _check_count("n", n, 1)
        self._check_condition(cond, n)
        return self.decode(self.sample_latents(n, temperature, generator), cond, quantize=quantize)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


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




@torch.no_grad()
def classify(model: MultiScaleFlow, images: Tensor, batch_size: int = 100, progress: bool = False) -> Tensor:
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
