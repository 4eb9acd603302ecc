"""A chain of the image layers on real MNIST images inverts in float32."""

from __future__ import annotations

import torch

from flowlib import Sequential
from flowlib.core.testing import perturb
from flowlib.layers.dequantize import UniformDequantization
from flowlib.layers.glow import GlowStep
from flowlib.layers.squeeze import SplitPrior, Squeeze

from ..conftest import require_dataset


def mnist_images(n: int) -> torch.Tensor:
    from torchvision.datasets import MNIST

    ds = MNIST(require_dataset("MNIST"), train=False, download=False)
    return ds.data[:n, None]


def test_layer_chain_inverts_on_real_mnist_in_float32(capsys):
    torch.manual_seed(0)
    x = mnist_images(16)
    deq = UniformDequantization()
    chain = Sequential(Squeeze(), GlowStep(4, hidden=16), GlowStep(4, hidden=16), SplitPrior(4),
                       Squeeze(), GlowStep(16, hidden=16))
    y, _ = deq(x)
    chain(y)  # data-dependent ActNorm initialisation
    perturb(chain, std=0.05)
    z, ld = chain(y)
    y_back, ld_inv = chain.inverse(z)
    err = (y_back - y).abs().max().item()
    with capsys.disabled():
        print(f"\n[float32 round trip on 16 MNIST images through 3 Glow steps: max abs error {err:.2e}]")
    assert err < 1e-4
    assert torch.allclose(ld + ld_inv, torch.zeros(16), atol=1e-2)
    x_back, _ = deq.inverse(y_back)
    assert torch.equal(x_back.to(torch.uint8), x)
