from __future__ import annotations

import pytest
import torch

import flowlib as fl


def test_tanh_inverse_rejects_out_of_range():
    with pytest.raises(ValueError, match="\\|z\\| < 1"):
        fl.Tanh().inverse(torch.tensor([[0.5, 1.0]]))


def test_tanh_logdet_is_stable_for_large_inputs():
    _, ld = fl.Tanh()(torch.tensor([[30.0, -30.0]], dtype=torch.float64))
    assert torch.isfinite(ld).all()
    assert ld.item() == pytest.approx(2 * (2 * torch.log(torch.tensor(2.0)).item() - 60), rel=1e-6)


def test_elementwise_affine_logdet():
    layer = fl.ElementwiseAffine(3)
    with torch.no_grad():
        layer.log_scale.copy_(torch.tensor([0.1, -0.3, 0.5]))
    _, ld = layer(torch.randn(4, 3))
    assert torch.allclose(ld, torch.full((4,), 0.3))
