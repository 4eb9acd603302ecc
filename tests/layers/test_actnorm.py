from __future__ import annotations

import io

import torch

from flowlib.layers.actnorm import ActNorm


def test_data_dependent_initialisation_normalises_the_first_batch():
    layer = ActNorm(3)
    x = torch.randn(64, 3, 5, 5) * torch.tensor([0.5, 2.0, 10.0])[None, :, None, None] + 4
    z, _ = layer(x)
    assert bool(layer.initialized)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_initialises_on_the_first_batch_only():
    layer = ActNorm(2)
    layer(torch.randn(16, 2) * 3)
    bias = layer.bias.detach().clone()
    layer(torch.randn(16, 2) * 100 + 50)
    assert torch.equal(layer.bias, bias)


def test_not_reinitialised_after_a_state_dict_round_trip():
    layer = ActNorm(2)
    layer(torch.randn(16, 2, 4, 4) * 3 + 1)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = ActNorm(2)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert bool(fresh.initialized)
    fresh(torch.randn(16, 2, 4, 4) * 100)
    assert torch.equal(fresh.bias, layer.bias) and torch.equal(fresh.log_scale, layer.log_scale)


def test_logdet_counts_every_pixel():
    layer = ActNorm(2)
    layer.initialized.fill_(True)
    with torch.no_grad():
        layer.log_scale.copy_(torch.tensor([0.5, -0.25]))
    _, ld = layer(torch.randn(3, 2, 4, 5))
    assert torch.allclose(ld, torch.full((3,), 20 * 0.25))
