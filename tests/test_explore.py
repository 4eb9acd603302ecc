from __future__ import annotations

import pytest
import torch

from flowlib.explore import LatentExplorer, interpolate_latents, lerp, resample_scales, slerp

from .test_model import tiny


def test_lerp_and_slerp_hit_the_ends_exactly_and_agree_there():
    a, b = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    for fn in (lerp, slerp):
        assert torch.equal(fn(a, b, 0.0), a) and torch.equal(fn(a, b, 1.0), b)
    assert torch.allclose(slerp(a, b, 1e-9), lerp(a, b, 1e-9), atol=1e-6)


def test_slerp_keeps_the_norm_where_lerp_shrinks_it():
    torch.manual_seed(0)
    a, b = torch.randn(1, 784), torch.randn(1, 784)
    n = a.norm()
    assert slerp(a, b, 0.5).norm() == pytest.approx(n.item(), rel=0.05)
    assert lerp(a, b, 0.5).norm() < 0.8 * n


def test_slerp_of_parallel_vectors_falls_back_to_the_line():
    a = torch.ones(1, 4)
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)


def test_interpolation_at_0_and_1_reproduces_the_reconstructions():
    model, x = tiny()
    explorer = LatentExplorer(model, x)
    for method in ("slerp", "linear"):
        assert torch.equal(explorer.interpolate(0, 3, 0.0, method), explorer.reconstruct(0))
        assert torch.equal(explorer.interpolate(0, 3, 1.0, method), explorer.reconstruct(3))
    strip = explorer.strip(0, 3, frames=5)
    assert strip.shape == (5, 1, 8, 8)
    assert torch.allclose(strip[0], explorer.reconstruct(0), atol=1e-5)
    assert torch.allclose(strip[-1], explorer.reconstruct(3), atol=1e-5)
    quantized = model.decode(model.encode(x[:1]))
    assert torch.equal(quantized, x[:1])  # and the reconstruction is the image itself


def test_resampling_keeps_the_chosen_scale_bit_for_bit():
    model, x = tiny()
    latents = model.encode(x)
    g = torch.Generator().manual_seed(0)
    coarse = resample_scales(latents, "coarse", 0.7, g)
    assert torch.equal(coarse[-1], latents[-1]) and not torch.equal(coarse[0], latents[0])
    fine = resample_scales(latents, "fine", 0.7, g)
    assert torch.equal(fine[0], latents[0]) and not torch.equal(fine[-1], latents[-1])
    out = LatentExplorer(model, x).resample(2, keep="coarse", n=4)
    assert out.shape == (4, 1, 8, 8) and out.min() >= 0 and out.max() <= 1


def test_samples_use_the_same_noise_at_every_temperature():
    model, x = tiny()
    ex = LatentExplorer(model, x)
    assert torch.equal(ex.samples(4, 0.5, seed=1), ex.samples(4, 0.5, seed=1))
    assert not torch.equal(ex.samples(4, 0.5, seed=1), ex.samples(4, 1.0, seed=1))


def test_bad_arguments():
    model, x = tiny()
    ex = LatentExplorer(model, x)
    with pytest.raises(IndexError, match="gallery of 6"):
        ex.interpolate(0, 6, 0.5)
    with pytest.raises(ValueError, match="method"):
        interpolate_latents([x.float()], [x.float()], 0.5, "cubic")
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        ex.interpolate(0, 1, 1.5)
    with pytest.raises(ValueError, match="keep"):
        resample_scales(model.encode(x), "middle")


def test_explorer_follows_the_model_dtype():
    model, x = tiny()
    ex = LatentExplorer(model.double(), x)
    assert ex.samples(2, 0.5).dtype == torch.float64
