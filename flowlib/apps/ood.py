r"""What a flow's likelihood knows: scores for out-of-distribution and anomaly detection (notebook 09).

Every score here is *higher for more anomalous* images, so that one AUROC convention fits all
(in-distribution = negative class, out-of-distribution = positive class):

* :func:`bits_per_dim` (:func:`model_scores` also returns the latent statistics): the model's
  ``-log2 p(x) / D``. Nalisnick et al. (2019, "Do deep generative models know what they don't
  know?") found that a flow trained on FashionMNIST gives MNIST *fewer* bits, so this raw score
  can rank the wrong way round.
* :func:`complexity_score`: ``bpd(x) - L(x)/D``, with ``L(x)`` the length in bits of the image
  compressed by a generic lossless compressor (:func:`compression_bits_per_dim`, PNG or zlib).
  Serrà et al. (2020, "Input complexity and out-of-distribution detection with likelihood-based
  generative models"): the compressor's length estimates how many bits *any* model needs for a
  simple or a busy image, and the difference keeps what the trained model adds.
* :func:`typicality_score`: built on the latent norm shell of notebook 07. Under the model every
  latent ``z_l`` of dimension ``d_l`` is ``N(0, I)``, so ``|z_l|^2`` has mean ``d_l`` and variance
  ``2 d_l``; :func:`latent_norm_statistic` standardises it per scale, and the score measures how far
  an image's statistics lie from those of in-distribution reference images (fitted with
  :func:`fit_typicality`). Too *close* to the centre is as untypical as too far (Nalisnick et al.
  2019b, "Detecting out-of-distribution inputs to deep generative models using typicality").
* :func:`likelihood_ratio_score`: ``bpd_model(x) - bpd_background(x)``, a log-likelihood ratio
  against a weaker background model that learns the low-level statistics (smooth areas, black
  backgrounds, how a pixel relates to its neighbours) but not the objects (Ren et al. 2019,
  "Likelihood ratios for out-of-distribution detection", train it on images with mutated pixels;
  Schirrmeister et al. 2020, "Understanding anomaly detection with deep invertible networks through
  hierarchies of distributions and features", use a general or a local model). The shipped
  background models are small one-scale flows (:data:`BACKGROUND_CONFIG`, :func:`train_background`,
  ``python -m flowlib.ood``); :func:`load_background` loads one.

:func:`auroc` and :func:`roc` wrap scikit-learn. :func:`bits_map` splits an image's bits over its
pixels, so that a picture shows *where* the model is surprised.
"""

from __future__ import annotations

import contextlib
import io
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..core.bijection import Sequential
from ..layers.coupling import AffineCoupling, ChannelAffineCoupling
from ..layers.mixture import ChannelMixtureCoupling
from ..layers.splines import ChannelSplineCoupling
from ..layers.squeeze import SplitPrior, Squeeze
from ..models.multiscale import FlowConfig, MultiScaleFlow

__all__ = ["ModelScores", "model_scores", "bits_per_dim", "compression_bits_per_dim", "complexity_score",
           "latent_norm_statistic", "Typicality", "fit_typicality", "batch_means", "typicality_score",
           "likelihood_ratio_score", "auroc", "roc", "BitsMap", "bits_map", "mutate", "BACKGROUND_CONFIG",
           "BACKGROUND_STEPS", "BACKGROUND_MUTATION_RATE", "BACKGROUND_COMMAND", "background_checkpoint", "load_background",
           "train_background", "main"]

LOG2 = math.log(2)


# ---- raw likelihood ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Draw the dequantization noise from ``seed`` without touching the caller's random state."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class ModelScores:
    """What one pass of a model over images gives: bits/dim ``(N,)`` and the latent norm statistics ``(N, L)``."""

    bpd: Tensor
    latent_stats: Tensor


@torch.no_grad()
def model_scores(model: MultiScaleFlow, images: Tensor, batch_size: int = 100, seed: int | None = 0,
                 progress: bool = False) -> ModelScores:
    """Bits/dim and :func:`latent_norm_statistic` of every image, in one pass (float64, on the CPU).

    ``images``: uint8 ``(N, C, H, W)`` on any device. One dequantization sample per image, drawn
    from ``seed`` without touching the caller's random state: the same seed gives the same numbers.
    The latents are those of that noisy sample, the ones ``log_prob`` scores.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = _device(model)
    bpd, stats = [], []
    with _seeded(seed, device):
        for chunk in tqdm(images.split(batch_size), desc="scoring", disable=not progress, leave=False):
            x = chunk.to(device)
            model._check_images(x)
            y, logdet = model.dequant(x.to(model._dtype()))
            latents, ld = model.transform(y)
            log_p = model._log_normal(latents) + logdet + ld
            bpd.append((-log_p / (model.num_dims * LOG2)).double().cpu())
            stats.append(latent_norm_statistic(latents).cpu())
    model.train(was_training)
    if not bpd:
        empty = torch.zeros(0, dtype=torch.float64)
        return ModelScores(empty, empty.reshape(0, 1).expand(0, len(model.latent_shapes)))
    return ModelScores(torch.cat(bpd), torch.cat(stats))


def bits_per_dim(model: MultiScaleFlow, images: Tensor, batch_size: int = 100, seed: int | None = 0,
                 progress: bool = False) -> Tensor:
    """Bits/dim of every image, ``(N,)`` float64 on the CPU (see :func:`model_scores`)."""
    return model_scores(model, images, batch_size, seed, progress).bpd


# ---- input complexity (Serrà et al. 2020) ---------------------------------------------------------------
def _compressed_bytes(image: np.ndarray, method: str) -> int:
    if method == "png":
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", optimize=True)
        return buf.tell()
    return len(zlib.compress(image.tobytes(), 9))


def compression_bits_per_dim(images: Tensor, method: str = "png") -> Tensor:
    """Length of each image losslessly compressed, in bits per dimension, ``(N,)`` float64.

    ``images``: uint8 ``(N, C, H, W)``. ``method="png"`` uses Pillow's PNG encoder (its filters
    predict each pixel from its neighbours, then deflate), ``"zlib"`` deflates the raw bytes.
    Both lengths include a small fixed container overhead (PNG about 60 bytes, zlib 6), the
    same for every image of one size, so it shifts every score by a constant and no ranking changes.
    """
    if method not in ("png", "zlib"):
        raise ValueError(f"method must be 'png' or 'zlib', got {method!r}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    arr = images.cpu().numpy()
    d = arr[0].size if len(arr) else 1
    lengths = []
    for img in arr:
        img = img[0] if img.shape[0] == 1 else np.ascontiguousarray(img.transpose(1, 2, 0))
        lengths.append(8 * _compressed_bytes(np.ascontiguousarray(img), method))
    return torch.tensor(lengths, dtype=torch.float64) / d


def complexity_score(bpd: Tensor, compressed_bpd: Tensor) -> Tensor:
    """``bpd - L/D`` (Serrà et al. 2020's ``S(x)``, per dimension): the bits the model needs beyond a compressor's."""
    return bpd - compressed_bpd


# ---- typicality in latent space ------------------------------------------------------------------------
def latent_norm_statistic(latents: Sequence[Tensor]) -> Tensor:
    r"""Per-scale standardised squared norm ``t_l = (|z_l|^2 - d_l) / sqrt(2 d_l)``, ``(B, L)``.

    For ``z_l ~ N(0, I_{d_l})``, ``|z_l|^2`` is chi-square with ``d_l`` degrees of freedom (mean
    ``d_l``, variance ``2 d_l``), so each ``t_l`` has mean 0 and variance 1 under the model's prior.
    """
    cols = []
    for z in latents:
        d = z[0].numel()
        cols.append((z.double().flatten(1).pow(2).sum(1) - d) / math.sqrt(2 * d))
    return torch.stack(cols, dim=1)


@dataclass
class Typicality:
    """Where in-distribution images sit in the latent shells: mean and std of each scale's ``t_l``."""

    mean: Tensor
    std: Tensor

    def for_batches(self, size: int) -> Typicality:
        """The typical range of the mean statistic of ``size`` independent images: std divided by ``sqrt(size)``."""
        return Typicality(self.mean, self.std / math.sqrt(size))


def fit_typicality(reference: Tensor) -> Typicality:
    """Fit :class:`Typicality` to statistics ``(N, L)`` of in-distribution reference images (not the test set)."""
    if reference.dim() != 2 or reference.shape[0] < 2:
        raise ValueError(f"expected reference statistics of shape (N >= 2, L), got {tuple(reference.shape)}")
    return Typicality(reference.mean(0), reference.std(0).clamp_min(1e-12))


def batch_means(stats: Tensor, size: int) -> Tensor:
    """Means of ``stats (N, L)`` over consecutive groups of ``size`` images, ``(N // size, L)`` (a partial group is dropped).

    Typicality is a property of *samples*: one image can sit on the shell by chance, but the mean
    statistic of ``size`` images from the wrong distribution leaves the typical range ``sqrt(size)``
    times more clearly (Nalisnick et al. 2019b test batches this way). Score the means with
    ``typicality_score(batch_means(stats, m), typical.for_batches(m))``.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    n = stats.shape[0] // size
    return stats[: n * size].reshape(n, size, -1).mean(1)


def typicality_score(stats: Tensor, typical: Typicality | None = None) -> Tensor:
    r"""``sum_l ((t_l - m_l) / s_l)^2``, ``(N,)``: distance from the typical shell, in either direction.

    With ``typical=None`` the shell is the model's prior (``m_l = 0, s_l = 1``). A model that does
    not fit its data perfectly puts real images off its own prior's shell (notebook 07), so the
    shell fitted to in-distribution images (:func:`fit_typicality`) is the better reference.
    """
    if typical is None:
        return stats.pow(2).sum(1)
    return ((stats - typical.mean) / typical.std).pow(2).sum(1)


# ---- likelihood ratio against a background model ---------------------------------------------------------
def likelihood_ratio_score(bpd_model: Tensor, bpd_background: Tensor) -> Tensor:
    r"""``bpd_model - bpd_background = -log2 [p_model(x) / p_background(x)] / D`` (Ren et al. 2019)."""
    return bpd_model - bpd_background


def mutate(images: Tensor, rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Replace each pixel, with probability ``rate``, by a uniformly random value in 0..255 (Ren et al. 2019, sec. 4)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    hit = torch.rand(images.shape, generator=generator) < rate
    noise = torch.randint(0, 256, images.shape, generator=generator, dtype=torch.uint8)
    return torch.where(hit.to(images.device), noise.to(images.device), images)


#: The background models' architecture: a flow with one scale only (its latents live on a 14x14 grid, with
#: no coarse scale that could hold the shape of a whole object), two checkerboard couplings at full resolution
#: and two Glow steps: it learns how pixels relate to their neighbours. Every field is given, so a change of
#: FlowConfig's defaults cannot change it.
BACKGROUND_CONFIG = FlowConfig(channels=1, size=28, levels=1, steps_per_level=2, hidden=32, blocks=1, pre_steps=2,
                               dequantization="uniform", deq_hidden=32, deq_layers=4, split_prior=True, alpha=0.05,
                               scale_bound=2.0, learn_bound=False, split_couplings=True)


def background_checkpoint(dataset: str, folder: str | Path | None = None) -> Path:
    """Path of the shipped background model for ``dataset``: ``data/checkpoints/<dataset>-background.pt``."""
    from ..training.checkpoint import checkpoint_dir

    return (Path(folder) if folder is not None else checkpoint_dir()) / f"{dataset}-background.pt"


def load_background(dataset: str, folder: str | Path | None = None,
                    device: torch.device | str = "cpu") -> tuple[MultiScaleFlow, dict]:
    """Load the shipped background model of ``dataset`` (sha256-checked); ``(model, checkpoint dict)``."""
    from ..training.checkpoint import load_checkpoint, verify_sha256

    path = background_checkpoint(dataset, folder)
    verify_sha256(path)
    return load_checkpoint(path, dataset=dataset, device=device)


# ---- evaluation (scikit-learn) -----------------------------------------------------------------------
def _labelled(scores_in: Tensor, scores_out: Tensor) -> tuple[np.ndarray, np.ndarray]:
    s_in = np.asarray(torch.as_tensor(scores_in).double().cpu())
    s_out = np.asarray(torch.as_tensor(scores_out).double().cpu())
    if not (np.isfinite(s_in).all() and np.isfinite(s_out).all()):
        raise ValueError("scores must be finite")
    labels = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    return labels, np.concatenate([s_in, s_out])


def auroc(scores_in: Tensor, scores_out: Tensor) -> float:
    """Area under the ROC curve for telling ``scores_out`` (positives) from ``scores_in``: higher score = more anomalous.

    1.0: every out-of-distribution image scores above every in-distribution one; 0.5: no better than a
    coin; below 0.5: the score ranks the wrong way round. scikit-learn's ``roc_auc_score``.
    """
    from sklearn.metrics import roc_auc_score

    labels, scores = _labelled(scores_in, scores_out)
    return float(roc_auc_score(labels, scores))


def roc(scores_in: Tensor, scores_out: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates ``(fpr, tpr)`` over all thresholds (scikit-learn's ``roc_curve``)."""
    from sklearn.metrics import roc_curve

    labels, scores = _labelled(scores_in, scores_out)
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


# ---- where the bits go ----------------------------------------------------------------------------------
@dataclass
class BitsMap:
    r"""An image's bits, split over its pixels: three ``(B, H, W)`` maps (channels summed) whose sum is ``-log2 p(x)``.

    * ``pixel``: the dequantization and logit terms, elementwise and therefore exact per pixel:
      ``-[log(1 - 2 alpha) + softplus(y) + softplus(-y) - log 256] / ln 2`` for the logit-space value ``y``
      of each pixel. A pixel near 0 or 255 sits where the logit is steep, and costs few bits.
      (The ``-log q(u|x)`` of the noise has no per-pixel split for variational dequantization and is
      spread evenly over the pixels; for uniform dequantization it is the same constant at every pixel.)
    * ``latent``: ``-log2 N(z; 0, 1)`` of every latent number. A latent of level ``l`` sits at a position
      of a ``2^l``-times squeezed grid, which covers a ``2^l x 2^l`` block of pixels; its bits are spread
      evenly over that block.
    * ``volume``: minus the flow's log-det, in bits. Each layer's log-det is a sum over the positions of the
      grid it works on: a coupling's log-scales and the split prior's ``-log sigma`` are placed at their
      positions, the same way as the latents; ActNorm and the 1x1 convolution add the same amount at every
      position (spread evenly).

    ``total = pixel + latent + volume``; ``total.sum((1, 2)) / D`` is the image's bits/dim for the same noise.
    """

    pixel: Tensor
    latent: Tensor
    volume: Tensor
    dims: int = 1

    @property
    def total(self) -> Tensor:
        return self.pixel + self.latent + self.volume

    def bits_per_dim(self) -> Tensor:
        """Bits/dim per image from the map, ``(B,)``: the sum of the map divided by the number of dimensions."""
        return self.total.flatten(1).sum(1) / self.dims


def _spread(per_position: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, h, w)`` values at the positions of a squeezed grid -> ``(B, H, W)``, each spread over its block."""
    h, w = per_position.shape[1:]
    fy, fx = size[0] // h, size[1] // w
    up = per_position.repeat_interleave(fy, dim=1).repeat_interleave(fx, dim=2)
    return up / (fy * fx)


def _walk(layer: torch.nn.Module, h: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Run ``layer`` forward; return its output and its log-det as a ``(B, H, W)`` map at pixel resolution."""
    if isinstance(layer, Sequential):
        total = h.new_zeros(h.shape[0], *size)
        for sub in layer.layers:
            h, m = _walk(sub, h, size)
            total = total + m
        return h, total
    out, ld = layer(h)
    local = h.new_zeros(h.shape[0], *h.shape[2:])
    if isinstance(layer, AffineCoupling):
        m = layer._mask(h)
        local = layer._params(h * m, m, None)[1].sum(1)
    elif isinstance(layer, ChannelAffineCoupling):
        local = layer._params(h[:, : layer.split_at], None)[1].sum(1)
    elif isinstance(layer, (ChannelSplineCoupling, ChannelMixtureCoupling)):
        local = layer.local_logdet(h)
    elif isinstance(layer, SplitPrior):
        local = -layer._params(h[:, : layer.channels // 2], None)[1].sum(1)   # unconditional: cond is None
    elif isinstance(layer, Squeeze):
        return out, h.new_zeros(h.shape[0], *size)
    # whatever the layer's log-det holds beyond the placed part is the same at every position
    positions = h.shape[2] * h.shape[3]
    local = local + ((ld - local.flatten(1).sum(1)) / positions)[:, None, None]
    return out, _spread(local, size)


@torch.no_grad()
def bits_map(model: MultiScaleFlow, images: Tensor, seed: int | None = 0) -> BitsMap:
    """Split each image's bits over its pixels (see :class:`BitsMap`), one dequantization sample from ``seed``.

    ``images``: uint8 ``(B, C, H, W)``. The maps are on the CPU in float64; their sum equals
    ``-model.log_prob(images) / ln 2`` drawn with the same seed, up to float round-off.
    """
    if model.config.condition is not None:
        raise ValueError(f"bits_map splits the bits of an unconditional model; this one has condition="
                         f"{model.config.condition!r} (use its log_prob(x, cond) for whole-image scores)")
    model.eval()
    device = _device(model)
    x = images.to(device)
    model._check_images(x)
    size = tuple(x.shape[2:])
    with _seeded(seed, device):
        y, ld_deq = model.dequant(x.to(model._dtype()))
    deq = model.dequant
    pixel = math.log(1 - 2 * deq.logit.alpha) + F.softplus(y) + F.softplus(-y) - math.log(deq.num_bins)
    rest = (ld_deq - pixel.flatten(1).sum(1)) / pixel[0].numel()   # -log q(u|x): evenly
    pixel = (pixel + rest[:, None, None, None]).sum(1)

    h, volume = _walk(model.pre, y, size)
    latents = []
    for i, level in enumerate(model.levels):
        h, m = _walk(level, h, size)
        volume = volume + m
        if i < len(model.priors):
            h, m = _walk(model.priors[i], h, size)
            volume = volume + m
            half = h.shape[1] // 2
            latents.append(h[:, half:])
            h = h[:, :half]
    latents.append(h)
    latent = sum(_spread((0.5 * z.pow(2) + 0.5 * math.log(2 * math.pi)).sum(1), size) for z in latents)
    to_bits = lambda t: (t.double() / LOG2).cpu()
    return BitsMap(pixel=to_bits(-pixel), latent=to_bits(latent), volume=to_bits(-volume), dims=model.num_dims)


# ---- training a background model -----------------------------------------------------------------------
#: Default recipe of the shipped background models: training steps and mutation rate.
BACKGROUND_STEPS = 1500
BACKGROUND_MUTATION_RATE = 0.0
#: The command that made each shipped background model (``{dataset}``: mnist or fashion-mnist).
BACKGROUND_COMMAND = ("OMP_NUM_THREADS=1 python -m flowlib.ood --dataset {dataset} "
                      "--out data/checkpoints/{dataset}-background.pt")


def train_background(dataset: str, out: str | Path, steps: int = BACKGROUND_STEPS,
                     mutation_rate: float = BACKGROUND_MUTATION_RATE, seed: int = 0, device: str = "cpu",
                     progress: bool = True, log=print) -> Path:
    """Train a :data:`BACKGROUND_CONFIG` flow on the training images of ``dataset`` and save it to ``out``.

    With ``mutation_rate > 0`` the training set is mutated once (:func:`mutate`, seeded), as Ren et al.
    (2019) do; the shipped models use the clean images (rate 0), their small size already keeps them
    from learning objects. The test bits/dim in the checkpoint is measured on the clean test images;
    the checkpoint's history records ``mutation_rate``.
    """
    from ..data.images import load_images
    from ..training.checkpoint import save_checkpoint
    from ..training.train import TrainConfig, train_model

    images = mutate(load_images(dataset, "train").images, mutation_rate, torch.Generator().manual_seed(seed))
    config = TrainConfig(dataset=dataset, steps=steps, batch_size=64, lr=2e-3, warmup_steps=min(100, steps // 5),
                         eval_every=steps, eval_images=1000, save_every=0, seed=seed, ema=0.0)  # as shipped
    model, info = train_model(BACKGROUND_CONFIG, config, device=device, progress=progress, train_images=images, log=log)
    history = {**info["history"], "mutation_rate": mutation_rate}
    path = save_checkpoint(out, model, dataset=dataset, step=info["step"], metrics=info["metrics"], history=history)
    log(f"background for {dataset}: {model.num_parameters():,} parameters, test bits/dim "
        f"{info['metrics']['test_bpd']:.4f}, saved to {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m flowlib.ood", description="Train a background model for notebook 09.")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], required=True)
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--steps", type=int, default=BACKGROUND_STEPS)
    p.add_argument("--mutation-rate", type=float, default=BACKGROUND_MUTATION_RATE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    train_background(args.dataset, args.out, args.steps, args.mutation_rate, args.seed, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
