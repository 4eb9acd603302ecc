from __future__ import annotations

import pytest
import torch

from flowlib.layers.invconv import InvConv1x1, InvConv1x1LU, random_rotation


def test_lu_and_plain_agree_for_the_same_matrix():
    w = torch.randn(6, 6)
    plain, lu = InvConv1x1(6, weight=w), InvConv1x1LU(6, weight=w)
    assert torch.allclose(lu.weight(), w, atol=1e-5)
    x = torch.randn(3, 6, 5, 5)
    z1, ld1 = plain(x)
    z2, ld2 = lu(x)
    assert torch.allclose(z1, z2, atol=1e-5)
    assert torch.allclose(ld1, ld2, atol=1e-3)
    assert torch.allclose(ld1, torch.full((3,), 25 * torch.linalg.slogdet(w.double())[1].item()), rtol=1e-5)


def test_random_rotation_is_orthogonal_with_det_one():
    q = random_rotation(8).double()
    assert torch.allclose(q @ q.T, torch.eye(8, dtype=torch.float64), atol=1e-6)
    assert torch.det(q).item() == pytest.approx(1.0, abs=1e-5)


def test_a_permutation_matrix_is_a_special_case():
    perm = torch.eye(4)[[2, 0, 3, 1]]
    x = torch.randn(2, 4, 3, 3)
    z, ld = InvConv1x1LU(4, weight=perm)(x)
    assert torch.allclose(z, x[:, [2, 0, 3, 1]], atol=1e-6)
    assert torch.allclose(ld, torch.zeros(2), atol=1e-6)


def test_singular_and_misshaped_weights_are_rejected():
    with pytest.raises(ValueError, match="singular"):
        InvConv1x1LU(2, weight=torch.ones(2, 2))
    with pytest.raises(ValueError, match="shape"):
        InvConv1x1(3, weight=torch.eye(2))
