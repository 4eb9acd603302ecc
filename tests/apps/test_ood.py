from __future__ import annotations

import math
import subprocess

import pytest
import torch

from flowlib.apps import ood
from flowlib.training.checkpoint import checkpoint_dir

from ..conftest import ROOT, require_dataset
from ..models.test_multiscale import tiny


# ---- AUROC and ROC (scikit-learn) -----------------------------------------------------------------------
def test_auroc_is_one_when_every_outlier_scores_higher_and_zero_when_all_score_lower():
    inside, outside = torch.tensor([0.1, 0.5, 0.2, 0.9]), torch.tensor([1.0, 3.0, 2.5])
    assert ood.auroc(inside, outside) == 1.0
    assert ood.auroc(outside, inside) == 0.0


def test_auroc_is_one_half_for_identical_distributions():
    same = torch.tensor([0.3, 1.2, -0.5, 2.0, 0.7])
    assert ood.auroc(same, same.clone()) == 0.5
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20_000, generator=g), torch.randn(20_000, generator=g)
    assert ood.auroc(a, b) == pytest.approx(0.5, abs=0.01)
    assert ood.auroc(a, b + 1.0) == pytest.approx(0.760, abs=0.01)  # Phi(1 / sqrt 2) for a unit shift


def test_roc_runs_from_the_origin_to_the_corner_and_its_area_is_the_auroc():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(500, generator=g), torch.randn(400, generator=g) + 0.5
    fpr, tpr = ood.roc(a, b)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    area = float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())
    assert area == pytest.approx(ood.auroc(a, b), abs=1e-9)


def test_auroc_refuses_non_finite_scores():
    with pytest.raises(ValueError, match="finite"):
        ood.auroc(torch.tensor([0.0, float("nan")]), torch.tensor([1.0]))


# ---- input complexity --------------------------------------------------------------------------------------
def _constant_and_noise(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    constant = torch.full((n, 1, 28, 28), 37, dtype=torch.uint8)
    noise = torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return constant, noise


@pytest.mark.parametrize("method", ["png", "zlib"])
def test_a_compressor_needs_few_bits_for_a_constant_image_and_all_eight_for_noise(method):
    constant, noise = _constant_and_noise()
    c, n = ood.compression_bits_per_dim(constant, method), ood.compression_bits_per_dim(noise, method)
    assert c.shape == n.shape == (8,)
    assert (c < 1.0).all()           # a handful of bytes for 784 equal pixels
    assert (n > 8.0).all()           # uniform noise cannot be compressed below 8 bits per pixel
    assert (n < 9.5).all()


def test_the_complexity_correction_removes_what_the_compressor_already_explains():
    constant, noise = _constant_and_noise()
    lc, ln = ood.compression_bits_per_dim(constant), ood.compression_bits_per_dim(noise)
    # a model that is only as good as the compressor, plus 0.3 bits: every image gets the same corrected score
    assert torch.allclose(ood.complexity_score(lc + 0.3, lc), torch.full_like(lc, 0.3))
    assert torch.allclose(ood.complexity_score(ln + 0.3, ln), torch.full_like(ln, 0.3))
    # a model that gives both kinds 4 bits/dim: raw bpd cannot tell them apart, the corrected score ranks the
    # constant image (4 bits where a compressor needs almost none) as the surprise
    bpd = torch.full((8,), 4.0, dtype=torch.float64)
    assert ood.auroc(ood.complexity_score(bpd, ln), ood.complexity_score(bpd, lc)) == 1.0
    with pytest.raises(ValueError, match="uint8"):
        ood.compression_bits_per_dim(constant.float())


# ---- typicality -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 50, 392])
def test_the_latent_norm_statistic_is_standard_on_gaussians_of_known_dimension(d):
    g = torch.Generator().manual_seed(d)
    z = torch.randn(40_000, d, generator=g)
    t = ood.latent_norm_statistic([z])
    assert t.shape == (40_000, 1)
    assert t.mean().item() == pytest.approx(0.0, abs=0.03)
    assert t.std().item() == pytest.approx(1.0, abs=0.03)
    # a wider Gaussian, sigma = 1.1: E|z|^2 = 1.21 d, so the statistic moves to 0.21 d / sqrt(2 d)
    wide = ood.latent_norm_statistic([1.1 * z])
    assert wide.mean().item() == pytest.approx(0.21 * d / math.sqrt(2 * d), abs=0.05)


def test_the_statistic_has_one_column_per_scale_and_uses_each_scales_dimension():
    z1, z2 = torch.zeros(3, 2, 4, 4), torch.ones(3, 8, 2, 2)
    t = ood.latent_norm_statistic([z1, z2])
    assert t.shape == (3, 2)
    assert torch.allclose(t[:, 0], torch.full((3,), -32 / math.sqrt(64), dtype=torch.float64))  # |z|^2 = 0, d = 32
    assert torch.allclose(t[:, 1], torch.zeros(3, dtype=torch.float64))                         # |z|^2 = d = 32


def test_typicality_flags_both_too_far_and_too_close_to_the_centre():
    g = torch.Generator().manual_seed(0)
    d = 100
    reference = ood.latent_norm_statistic([torch.randn(5000, d, generator=g)])
    typical = ood.fit_typicality(reference)
    inside = ood.typicality_score(ood.latent_norm_statistic([torch.randn(2000, d, generator=g)]), typical)
    assert inside.mean().item() == pytest.approx(1.0, abs=0.1)    # one scale: a chi-square with 1 dof
    for sigma in (0.75, 1.25):                                     # inside the shell and outside it
        other = ood.typicality_score(ood.latent_norm_statistic([sigma * torch.randn(2000, d, generator=g)]), typical)
        assert ood.auroc(inside, other) > 0.95
    prior = ood.typicality_score(reference)                        # the model's own prior as the reference
    assert prior.mean().item() == pytest.approx(1.0, abs=0.1)


def test_batches_make_a_small_shift_of_the_shell_visible():
    g = torch.Generator().manual_seed(0)
    d = 100
    typical = ood.fit_typicality(ood.latent_norm_statistic([torch.randn(5000, d, generator=g)]))
    inside = ood.latent_norm_statistic([torch.randn(8000, d, generator=g)])
    shifted = ood.latent_norm_statistic([1.03 * torch.randn(8000, d, generator=g)])  # 0.43 std of the statistic
    single = ood.auroc(ood.typicality_score(inside, typical), ood.typicality_score(shifted, typical))
    m = 100
    means_in, means_out = ood.batch_means(inside, m), ood.batch_means(shifted, m)
    assert means_in.shape == (80, 1)
    assert means_in.std().item() == pytest.approx(1 / math.sqrt(m), rel=0.3)
    batched = ood.auroc(ood.typicality_score(means_in, typical.for_batches(m)),
                        ood.typicality_score(means_out, typical.for_batches(m)))
    assert single < 0.7 < 0.95 < batched


# ---- likelihood ratio and the background recipe -----------------------------------------------------------
def test_the_likelihood_ratio_is_the_difference_of_bits():
    assert torch.equal(ood.likelihood_ratio_score(torch.tensor([3.0, 1.0]), torch.tensor([2.5, 2.0])),
                       torch.tensor([0.5, -1.0]))


def test_mutate_replaces_about_the_given_share_of_pixels():
    x = torch.full((200, 1, 28, 28), 7, dtype=torch.uint8)
    assert torch.equal(ood.mutate(x, 0.0), x)
    y = ood.mutate(x, 0.2, torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert (y != x).float().mean().item() == pytest.approx(0.2 * 255 / 256, abs=0.01)
    with pytest.raises(ValueError):
        ood.mutate(x, 1.5)


def test_the_shipped_background_models_are_tracked_listed_and_small():
    for dataset in ("mnist", "fashion-mnist"):
        path = ood.background_checkpoint(dataset)
        assert path.parent == checkpoint_dir()
        assert path.is_file(), path
        assert path.stat().st_size < 3 * 2 ** 20
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT).returncode == 0
        assert not ignored, f"{path} is git-ignored"
        model, ckpt = ood.load_background(dataset)
        assert model.config == ood.BACKGROUND_CONFIG
        assert ckpt["dataset"] == dataset and "mutation_rate" in ckpt["history"]


@pytest.mark.slow
def test_train_background_writes_a_loadable_checkpoint_with_its_recipe(tmp_path):
    require_dataset("MNIST")
    from flowlib.training.checkpoint import load_checkpoint

    path = ood.train_background("mnist", tmp_path / "bg.pt", steps=2, mutation_rate=0.25, progress=False,
                                log=lambda *_: None)
    model, ckpt = load_checkpoint(path, dataset="mnist")
    assert model.config == ood.BACKGROUND_CONFIG
    assert ckpt["step"] == 2 and ckpt["history"]["mutation_rate"] == 0.25
    assert math.isfinite(ckpt["metrics"]["test_bpd"])


# ---- bits per dimension and the bits map -------------------------------------------------------------------
@pytest.mark.parametrize("deq,pre_steps", [("uniform", 0), ("variational", 2)])
def test_bits_per_dim_is_repeatable_and_leaves_the_global_random_state_alone(deq, pre_steps):
    model, x = tiny(deq, pre_steps=pre_steps)
    state = torch.get_rng_state()
    a = ood.bits_per_dim(model, x, batch_size=4, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, ood.bits_per_dim(model, x, batch_size=3, seed=5))
    assert not torch.equal(a, ood.bits_per_dim(model, x, seed=6))
    torch.manual_seed(5)
    assert torch.allclose(a, model.bits_per_dim(x).double(), atol=1e-6)


@pytest.mark.parametrize("deq,pre_steps,coupling", [("uniform", 0, "affine"), ("uniform", 2, "affine"),
                                                   ("variational", 1, "affine"), ("uniform", 0, "spline"),
                                                   ("uniform", 0, "mixture")])
def test_the_bits_map_sums_to_the_images_bits(deq, pre_steps, coupling):
    model, x = tiny(deq, pre_steps=pre_steps, coupling=coupling)
    bm = ood.bits_map(model, x, seed=3)
    assert bm.total.shape == bm.pixel.shape == bm.latent.shape == bm.volume.shape == (6, 8, 8)
    torch.manual_seed(3)
    expected = -model.log_prob(x).double() / math.log(2)
    assert torch.allclose(bm.total.flatten(1).sum(1), expected, atol=1e-3, rtol=1e-6)
    assert torch.allclose(bm.bits_per_dim(), expected / 64, atol=1e-5)


@pytest.mark.parametrize("kind", ["spline", "mixture"])
def test_a_spline_or_mixture_couplings_log_det_is_placed_where_it_arises(kind):
    import flowlib as fl
    from flowlib.core.testing import perturb
    from flowlib.layers.mixture import ChannelMixtureCoupling
    from flowlib.layers.splines import ChannelSplineCoupling

    torch.manual_seed(0)
    cls = ChannelSplineCoupling if kind == "spline" else ChannelMixtureCoupling
    layer = perturb(cls(4, fl.GatedResNet(2, cls.out_channels(4, 4), hidden=8)), std=0.5)
    h = 2 * torch.randn(3, 4, 4, 4)
    _, placed = ood._walk(layer, h, (8, 8))
    local = layer.local_logdet(h)
    assert torch.allclose(local.flatten(1).sum(1), layer(h)[1], atol=1e-5)
    assert torch.allclose(placed, ood._spread(local, (8, 8)), atol=1e-5)
    assert local.std() > 0.05  # not the same at every position, so spreading it evenly would be wrong


def test_the_bits_map_refuses_a_conditional_model():
    from flowlib.models.multiscale import FlowConfig, MultiScaleFlow

    from ..models.test_multiscale import TINY

    model = MultiScaleFlow(FlowConfig(**{**TINY.to_dict(), "condition": "class"}))
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match="unconditional model; this one has condition='class'"):
        ood.bits_map(model, x)


def test_the_pixel_term_is_local_and_the_latent_term_stays_in_its_block():
    model, x = tiny()
    x2 = x.clone()
    x2[:, 0, 5, 6] = 255 - x2[:, 0, 5, 6]
    a, b = ood.bits_map(model, x, seed=0), ood.bits_map(model, x2, seed=0)
    changed = (a.pixel - b.pixel).abs() > 1e-3
    assert changed[:, 5, 6].all() and changed.sum() == 6       # only the changed pixel, in every image
    # a latent of the first level covers a 2x2 block: the block of pixel (5, 6) is rows 4-5, columns 6-7
    z = model.encode(x)
    z0 = [torch.zeros_like(t) for t in z]
    z0[0][:, :, 2, 3] = 3.0
    latent_only = ood._spread((0.5 * z0[0].pow(2)).sum(1), (8, 8))
    assert latent_only[:, 4:6, 6:8].sum() == pytest.approx(latent_only.sum().item())


def test_a_trained_model_puts_the_bits_of_a_noise_patch_on_the_patch():
    require_dataset("MNIST")
    from flowlib.data.images import load_images
    from flowlib.training.train import fit_or_load

    model, _ = fit_or_load("mnist", device="cpu", log=lambda *_: None)
    clean = load_images("mnist", "test", limit=4).images
    x = clean.clone()
    g = torch.Generator().manual_seed(0)
    x[:, :, 2:10, 16:24] = torch.randint(0, 256, (4, 1, 8, 8), generator=g, dtype=torch.uint8)
    added = ood.bits_map(model, x, seed=0).total - ood.bits_map(model, clean, seed=0).total
    inside = added[:, 2:10, 16:24].sum((1, 2))
    assert (inside > 100).all()                              # the noise costs many bits...
    assert (inside > 0.8 * added.sum((1, 2))).all()          # ...and 64 of 784 pixels carry most of them
