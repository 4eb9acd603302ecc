from __future__ import annotations

import pytest
import torch

from flowlib.layers.nets import GatedResNet, conditioner_precision
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow


def conv_input_dtypes(net: GatedResNet, x: torch.Tensor) -> tuple[set[torch.dtype], torch.Tensor]:
    """The dtypes the net's convolutions computed in, and its output."""
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.add(out.dtype))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    out = net(x)
    for h in hooks:
        h.remove()
    return seen, out


def test_conditioner_precision_runs_the_convolutions_in_bfloat16_and_returns_the_input_dtype():
    torch.manual_seed(0)
    net = GatedResNet(2, 4, hidden=8, blocks=1)
    torch.nn.init.normal_(net.out[1].weight, std=0.1)  # not the zero start: outputs to compare
    x = torch.randn(3, 2, 5, 5)
    plain_dtypes, plain = conv_input_dtypes(net, x)
    with conditioner_precision(torch.bfloat16):
        low_dtypes, low = conv_input_dtypes(net, x)
    assert plain_dtypes == {torch.float32}  # negative control: outside the block nothing changes
    assert low_dtypes == {torch.bfloat16}
    assert low.dtype == torch.float32
    err = (low - plain).abs().max().item()
    assert 0 < err < 0.05 * plain.abs().max().item()
    assert conv_input_dtypes(net, x)[0] == {torch.float32}  # the block's setting ended with it


def test_conditioner_precision_ends_with_its_block_on_an_error_and_rejects_other_dtypes():
    with pytest.raises(RuntimeError), conditioner_precision(torch.bfloat16):
        raise RuntimeError("inside")
    assert conv_input_dtypes(GatedResNet(2, 4, hidden=8, blocks=1), torch.randn(1, 2, 4, 4))[0] == {torch.float32}
    with pytest.raises(ValueError, match="dtype must be"):
        with conditioner_precision(torch.int8):
            pass


def test_a_flow_with_bfloat16_conditioners_is_still_an_exact_bijection_and_close_to_float32():
    torch.manual_seed(0)
    model = MultiScaleFlow(FlowConfig(size=8, levels=2, steps_per_level=1, hidden=8, dequantization="uniform"))
    x = torch.randint(0, 256, (4, 1, 8, 8)).float()
    with torch.no_grad():
        model.log_prob(x)  # ActNorm's data-dependent start
        for p in model.parameters():  # away from the identity start, where every coupling is exact anyway
            p.add_(0.05 * torch.randn_like(p))
        y = torch.rand(4, 1, 8, 8)
        torch.manual_seed(1)
        plain = model.bits_per_dim(x)
        with conditioner_precision(torch.bfloat16):
            torch.manual_seed(1)
            low = model.bits_per_dim(x)
            zs, logdet = model.transform(y)
            back, logdet_inv = model.untransform(zs)
    assert low.dtype == torch.float32
    assert 0 < (low - plain).abs().max().item() < 0.02
    assert (back - y).abs().max().item() < 1e-4  # same conditioner outputs both ways: the round trip holds
    assert (logdet + logdet_inv).abs().max().item() < 1e-2
