"""The exercise checks of notebook 04 accept the reference answers and reject plausible wrong ones, including
wrong answers that are still perfectly good bijections."""

from __future__ import annotations

import torch

import flowlib as fl
from flowlib.exercises import nb04 as ex


def _not_implemented(*args, **kwargs):
    raise NotImplementedError



def test_squeeze_check():
    assert ex.check_squeeze(ex.squeeze_reference, ex.unsqueeze_reference)
    assert ex.check_squeeze(lambda x: fl.Squeeze()(x)[0], lambda z: fl.Squeeze().inverse(z)[0])

    def transposed(x):  # channel 4c + i + 2j: a permutation too, but not flowlib's order
        b, c, h, w = x.shape
        return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 5, 3, 2, 4).reshape(b, 4 * c, h // 2, w // 2)

    def transposed_inverse(z):
        b, c, h, w = z.shape
        return z.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 3, 5, 2).reshape(b, c // 4, 2 * h, 2 * w)

    x = torch.randn(1, 2, 4, 4)
    assert torch.equal(transposed_inverse(transposed(x)), x)  # the wrong answer is a bijection
    assert not ex.check_squeeze(transposed, transposed_inverse)
    assert not ex.check_squeeze(ex.squeeze_reference, lambda z: z.reshape(z.shape[0], -1, 2 * z.shape[2], 2 * z.shape[3]))
    assert not ex.check_squeeze(_not_implemented, _not_implemented)


class _OtherDiagonalOrder(ex.CheckerSqueezeReference):
    order = (0, 3, 2, 1)  # also turns the checkerboard into channel_mask(4), but not the order asked for


class _Plain(fl.Bijection):
    def forward(self, x):
        return fl.Squeeze()(x)

    def inverse(self, z):
        return fl.Squeeze().inverse(z)


class _NoInverse(ex.CheckerSqueezeReference):
    def inverse(self, z):
        raise NotImplementedError


def test_checker_squeeze_check():
    assert ex.check_checker_squeeze(ex.CheckerSqueezeReference())
    mask, _ = _OtherDiagonalOrder()(fl.checkerboard_mask(4, 4)[None])
    assert torch.equal(mask[0], fl.channel_mask(4).expand(4, 2, 2))  # passes the mask test alone
    assert not ex.check_checker_squeeze(_OtherDiagonalOrder())
    assert not ex.check_checker_squeeze(_Plain())
    assert not ex.check_checker_squeeze(_NoInverse())


