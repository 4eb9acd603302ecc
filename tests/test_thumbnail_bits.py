"""benchmarks/thumbnail_bits.py: the thumbnail entries it models and the change of variables it uses."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch

from flowlib.models.conditions import downsample

_spec = importlib.util.spec_from_file_location(
    "thumbnail_bits", Path(__file__).resolve().parents[1] / "benchmarks" / "thumbnail_bits.py")
thumbnail_bits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(thumbnail_bits)


def test_block_sums_are_the_exact_integer_sums_behind_the_condition():
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    for size in (7, 14):
        sums = thumbnail_bits.block_sums(x, size)
        factor = 28 // size
        assert sums.shape == (5, size * size)
        assert torch.equal(sums, x.double().unfold(2, factor, factor).unfold(3, factor, factor).sum((-1, -2)).flatten(1))
        # the model's condition is the same numbers divided by 255 f^2
        assert torch.allclose(sums / (255 * factor**2), downsample(x, size).double().flatten(1), atol=1e-6)


def test_to_logit_log_det_matches_the_derivative():
    torch.manual_seed(0)
    s = torch.randint(0, 4081, (3, 4)).double()
    torch.manual_seed(1)
    v, logdet = thumbnail_bits.to_logit(s, 4081)
    torch.manual_seed(1)
    u = ((s + torch.rand_like(s)) / 4081).requires_grad_(True)  # the same noise
    p = thumbnail_bits.ALPHA + (1 - 2 * thumbnail_bits.ALPHA) * u
    w = torch.log(p) - torch.log1p(-p)
    grad = torch.autograd.grad(w.sum(), u)[0]   # the map is elementwise: the Jacobian is diagonal
    assert torch.allclose(v.double(), w.detach(), atol=1e-4)
    # per entry: log dv/du - log(levels), the second from u = (S + noise) / levels
    assert torch.allclose(logdet.double(), (grad.log() - math.log(4081)).sum(1), rtol=1e-5)
