from __future__ import annotations

import pytest
import torch

from flowlib.core.testing import perturb
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow

from ..conftest import require_dataset

TINY = FlowConfig(size=8, levels=2, steps_per_level=1, hidden=8)


def tiny(dequantization="uniform", **kw):
    torch.manual_seed(0)
    model = MultiScaleFlow(FlowConfig(**{**TINY.to_dict(), "dequantization": dequantization, **kw}))
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    model.log_prob(x)  # ActNorm initialisation
    return perturb(model, std=0.05), x


@pytest.mark.parametrize("deq,coupling", [("uniform", "affine"), ("variational", "affine"), ("uniform", "spline"),
                                          ("uniform", "mixture")])
def test_tiny_round_trip(deq, coupling):
    model, x = tiny(deq, pre_steps=2, coupling=coupling)
    latents = model.encode(x)
    assert [tuple(z.shape[1:]) for z in latents] == model.latent_shapes == [(2, 4, 4), (8, 2, 2)]
    assert sum(z[0].numel() for z in latents) == 64
    assert torch.equal(model.decode(latents), x)
    y, _ = model._dequantize(x, sample_noise=True)
    y_back, _ = model.untransform(model.transform(y)[0])
    # the spline's inverse solves a quadratic, the mixture's bisects: in float32 they lose a few more bits than a
    # division
    assert (y_back - y).abs().max() < (1e-5 if coupling == "affine" else 1e-4)


@pytest.mark.parametrize("deq,coupling", [("uniform", "affine"), ("variational", "affine"), ("uniform", "spline"),
                                          ("uniform", "mixture")])
def test_every_parameter_gets_a_gradient(deq, coupling):
    model, x = tiny(deq, pre_steps=1, coupling=coupling)
    model.bits_per_dim(x).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_log_prob_sample_and_shapes():
    model, x = tiny()
    assert model.log_prob(x).shape == (6,)
    s = model.sample(5)
    assert s.shape == (5, 1, 8, 8) and s.dtype == torch.uint8
    y = model.sample(3, quantize=False)
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1
    cold = model.sample(2, temperature=0.0)
    assert torch.equal(cold[0], cold[1])


def test_importance_weighting_with_one_sample_is_the_plain_estimate():
    model, x = tiny()
    torch.manual_seed(5)
    plain = model.bits_per_dim(x)
    torch.manual_seed(5)
    iw = model.importance_bits_per_dim(x, samples=1)
    assert torch.allclose(plain, iw, atol=1e-5)
    # K samples: log-mean-exp >= mean, so the bound is tighter than the average single-sample figure
    torch.manual_seed(6)
    singles = torch.stack([model.bits_per_dim(x) for _ in range(8)]).detach()
    torch.manual_seed(6)
    assert torch.all(model.importance_bits_per_dim(x, samples=8) <= singles.mean(0) + 1e-5)


def test_identity_model_gives_the_analytic_bits_per_dim():
    # A fresh model is the identity after dequantization: bpd = -(log N(logit(y)) + logit logdet)/(D ln 2) + 8
    model = MultiScaleFlow(FlowConfig(size=8, levels=1, steps_per_level=1, hidden=4, split_prior=False))
    for m in model.modules():
        if hasattr(m, "initialized"):
            m.initialized.fill_(True)
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(1)
    bpd = model.bits_per_dim(x)
    torch.manual_seed(1)
    z, ld = model.dequant(x.float())
    # the GlowStep's random rotation has log|det| = 0, so only the base density differs
    lat, ld2 = model.transform(z)
    assert torch.allclose(ld2, torch.zeros(4), atol=1e-3)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
    expected = -(log_pz + ld) / (64 * torch.log(torch.tensor(2.0)))
    assert torch.allclose(bpd, expected, atol=1e-3)


@pytest.mark.parametrize("x, message", [
    (torch.rand(2, 1, 8, 8), "integer pixel"),
    (torch.zeros(2, 1, 6, 6, dtype=torch.uint8), "shape \\(B, 1, 8, 8\\)"),
    (torch.zeros(1, 8, 8, dtype=torch.uint8), "\\(B, C, H, W\\)"),
])
def test_bad_images_raise_clear_errors(x, message):
    model, _ = tiny()
    with pytest.raises(ValueError, match=message):
        model.log_prob(x)


def test_bad_latents_and_configs():
    model, x = tiny()
    latents = model.encode(x)
    with pytest.raises(ValueError, match="latent 1"):
        model.decode([latents[0], latents[1][:, :4]])
    with pytest.raises(ValueError, match="list of 2 latents"):
        model.decode(latents[:1])
    with pytest.raises(ValueError, match="divisible"):
        FlowConfig(size=28, levels=3)
    with pytest.raises(ValueError, match="dequantization"):
        FlowConfig(dequantization="gaussian")
    with pytest.raises(ValueError, match="coupling must be 'affine', 'spline' or 'mixture'"):
        FlowConfig(coupling="flow++")
    with pytest.raises(ValueError, match="needs split_couplings=True"):
        FlowConfig(coupling="spline", split_couplings=False)
    with pytest.raises(ValueError, match="needs split_couplings=True"):
        FlowConfig(coupling="mixture", split_couplings=False)
    with pytest.raises(ValueError, match="mixture_components must be >= 2"):
        FlowConfig(coupling="mixture", mixture_components=1)
    with pytest.raises(ValueError, match="spline_bins must be >= 2"):
        FlowConfig(coupling="spline", spline_bins=1)


def test_full_model_inverts_real_mnist_in_float32():
    from flowlib.data.images import load_images

    require_dataset("MNIST")
    torch.manual_seed(0)
    x = load_images("mnist", "test", limit=32).images
    model = MultiScaleFlow(FlowConfig(hidden=16, pre_steps=2, dequantization="variational", deq_hidden=8, deq_layers=2))
    model.log_prob(x)  # ActNorm initialisation on real images
    perturb(model, std=0.01)
    y, _ = model._dequantize(x, sample_noise=True)
    with torch.no_grad():
        latents, _ = model.transform(y)
        y_back, _ = model.untransform(latents)
    err = (y_back - y).abs().max().item()
    assert err <= 1e-4, f"max abs round-trip error {err:.2e}"
    assert torch.equal(model.decode(model.encode(x)), x)
