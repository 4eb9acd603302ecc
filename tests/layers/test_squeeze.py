from __future__ import annotations

import pytest
import torch

from flowlib.core.testing import perturb
from flowlib.layers.squeeze import SplitPrior, Squeeze, merge, split


def test_squeeze_on_a_labelled_example():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    z, ld = Squeeze()(x)
    assert z.shape == (1, 4, 2, 2) and ld.item() == 0
    # channel 2i + j holds pixel (i, j) of each 2x2 patch
    assert z[0, :, 0, 0].tolist() == [0, 1, 4, 5]
    assert z[0, 0].tolist() == [[0, 2], [8, 10]]
    assert torch.equal(Squeeze().inverse(z)[0], x)


def test_squeeze_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.zeros(1, 1, 5, 4))


def test_split_and_merge():
    x = torch.randn(2, 6, 3, 3)
    a, b = split(x)
    assert a.shape == b.shape == (2, 3, 3, 3)
    assert torch.equal(merge(a, b), x)
    with pytest.raises(ValueError, match="even number of channels"):
        split(torch.randn(1, 3, 2, 2))


def test_split_prior_starts_standard_normal_and_learns_a_conditional_gaussian():
    prior = SplitPrior(4)
    x = torch.randn(3, 4, 4, 4)
    z, ld = prior(x)
    assert torch.equal(z, x) and torch.equal(ld, torch.zeros(3))
    perturb(prior, std=0.3)
    z, ld = prior(x)
    assert torch.equal(z[:, :2], x[:, :2])  # kept half untouched
    mu, log_sigma = prior._params(x[:, :2])
    expected = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(x[:, 2:]).flatten(1).sum(1)
    got = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 2:]).flatten(1).sum(1) + ld
    assert torch.allclose(got, expected, atol=1e-4)
