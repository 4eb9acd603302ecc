from __future__ import annotations

import math

import pytest
import torch

from flowlib.apps.explore import LatentExplorer, interpolate_latents, lerp, resample_scales, slerp

from ..models.test_multiscale import tiny


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
    a = torch.randn(3, 5, dtype=torch.float64)
    for t in (0.3, 0.5, 0.9):  # exactly the line, not an arc through a clamped angle
        assert torch.allclose(slerp(a, 2 * a, t), (1 + t) * a, rtol=0, atol=1e-12)
    near = a + 1e-9 * torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(slerp(a, near, 0.5), lerp(a, near, 0.5), rtol=0, atol=1e-12)


def test_slerp_follows_the_great_circle_at_every_angle():
    e1, e2 = torch.eye(2, dtype=torch.float64)[:1], torch.eye(2, dtype=torch.float64)[1:]
    for angle in (1e-5, 1e-3, 0.5, math.pi / 2, 3.0, math.pi - 1e-4):  # arccos of a clamped cosine fails at the ends
        b = math.cos(angle) * e1 + math.sin(angle) * e2
        z = slerp(e1, b, 1 / 3)
        expected = torch.tensor([[math.cos(angle / 3), math.sin(angle / 3)]], dtype=torch.float64)
        assert torch.allclose(z, expected, rtol=0, atol=1e-10), angle  # b's own angle is only known to ~1e-12


def test_slerp_from_or_to_zero_is_the_line():
    b = torch.randn(2, 3, 4)
    zero = torch.zeros_like(b)
    assert torch.allclose(slerp(zero, b, 0.5), 0.5 * b, atol=1e-7)  # not sin(pi/4) b
    assert torch.allclose(slerp(b, zero, 0.25), 0.75 * b, atol=1e-7)
    assert torch.equal(slerp(zero, zero, 0.5), zero)


def test_slerp_of_opposite_vectors_turns_through_a_fixed_orthogonal_direction():
    torch.manual_seed(1)
    a = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    mid = slerp(a, -a, 0.5)
    na = a.flatten(1).norm(dim=1)
    assert torch.allclose(mid.flatten(1).norm(dim=1), na, rtol=1e-12)  # on the sphere, not the zero vector
    assert (mid * a).flatten(1).sum(1).abs().max() < 1e-12  # half way round: orthogonal to a
    assert torch.equal(mid, slerp(a, -a, 0.5))  # the same direction every time
    for t in (0.1, 0.25, 0.75):
        z = slerp(a, -a, t)
        cos = (z * a).flatten(1).sum(1) / na ** 2
        assert torch.allclose(cos, torch.full_like(cos, math.cos(t * math.pi)), atol=1e-12)
    assert torch.allclose(slerp(a, -a, 1e-9), a, atol=1e-7)  # continuous at both ends
    assert torch.allclose(slerp(a, -a, 1 - 1e-9), -a, atol=1e-7)
    unequal = slerp(a, -3 * a, 0.5)  # lengths in between, linearly
    assert torch.allclose(unequal.flatten(1).norm(dim=1), 2 * na, rtol=1e-12)
    x = torch.tensor([[2.0]])  # one number has no orthogonal direction: the line
    assert torch.equal(slerp(x, -x, 0.5), torch.zeros(1, 1))


def test_slerp_treats_each_example_on_its_own_and_keeps_the_dtype():
    torch.manual_seed(2)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    b[1] = -a[1]  # opposite
    a[2] = 0  # zero endpoint
    b[3] = 2 * a[3]  # parallel
    together = slerp(a, b, 0.4)
    assert together.dtype == torch.float32
    for i in range(4):
        assert torch.allclose(together[i:i + 1], slerp(a[i:i + 1], b[i:i + 1], 0.4), atol=1e-6), i
    with pytest.raises(ValueError, match="same shape"):
        slerp(a, b[:2], 0.5)
    with pytest.raises(ValueError, match="batch dimension"):
        slerp(a[0], b[0], 0.5)


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
    za, zb = model.encode(x[:1]), model.encode(x[1:2])
    for method in ("slerp", "linear"):  # never silently cut to the shorter list (zip)
        with pytest.raises(ValueError, match="za has 2 scales but zb has 1"):
            interpolate_latents(za, zb[:1], 0.5, method)
        with pytest.raises(ValueError, match="scale 0: za has shape \\(1, 2, 4, 4\\) but zb has \\(2, 2, 4, 4\\)"):
            interpolate_latents(za, [torch.cat([zb[0], zb[0]]), zb[1]], 0.5, method)


def test_explorer_follows_the_model_dtype():
    model, x = tiny()
    ex = LatentExplorer(model.double(), x)
    assert ex.samples(2, 0.5).dtype == torch.float64
