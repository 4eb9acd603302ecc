from __future__ import annotations

import pytest
import torch

import flowlib as fl


@pytest.mark.parametrize("name", sorted(fl.TOY_DATASETS))
def test_toy_datasets_are_deterministic(name):
    a = fl.make_toy(name, 500, seed=3)
    b = fl.make_toy(name, 500, seed=3)
    c = fl.make_toy(name, 500, seed=4)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.abs().max() < 6


def test_checkerboard_lies_on_black_squares():
    x = fl.make_toy("checkerboard", 2000)
    parity = (torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2
    assert torch.all(parity == 0)


def test_rings_radii():
    r = fl.make_toy("rings", 3000).norm(dim=1)
    near = torch.stack([(r - k).abs() for k in (1, 2, 3)]).min(0).values
    assert near.max() < 0.5


def test_unknown_toy_dataset():
    with pytest.raises(ValueError, match="choose one of"):
        fl.make_toy("banana", 10)
    with pytest.raises(ValueError, match="positive"):
        fl.make_toy("moons", 0)
