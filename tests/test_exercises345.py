"""The exercise checks of notebooks 03-05 accept the reference answers and reject plausible wrong
ones, including wrong answers that are still perfectly good bijections."""

from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib import exercises345 as ex


def _not_implemented(*args, **kwargs):
    raise NotImplementedError


# ---- notebook 03 ----

def test_bits_per_dim_check():
    assert ex.check_bits_per_dim(ex.bits_per_dim_reference)
    assert ex.check_bits_per_dim(lambda log_p, d: fl.bits_per_dim(log_p, d))
    assert not ex.check_bits_per_dim(lambda log_p, d: -log_p / d)  # nats, not bits
    assert not ex.check_bits_per_dim(lambda log_p, d: log_p / (d * math.log(2)))  # sign
    assert not ex.check_bits_per_dim(lambda log_p, d: -log_p / (784 * math.log(2)))  # hard-coded D
    assert not ex.check_bits_per_dim(lambda log_p, d: (-log_p / (d * math.log(2))).mean())  # not per example
    assert not ex.check_bits_per_dim(_not_implemented)


def test_bpd_from_unit_scale_check():
    assert ex.check_bpd_from_unit_scale(ex.bpd_from_unit_scale_reference)
    assert not ex.check_bpd_from_unit_scale(lambda lp, d: -lp / (d * math.log(2)))  # the 256-bin term forgotten
    assert not ex.check_bpd_from_unit_scale(lambda lp, d: -(lp + d * math.log(256)) / (d * math.log(2)))  # its sign
    assert not ex.check_bpd_from_unit_scale(lambda lp, d: -lp / (d * math.log(2)) + 8 * (d == 784))  # hard-coded
    assert not ex.check_bpd_from_unit_scale(_not_implemented)


def test_logit_bin_width_check():
    assert ex.check_logit_bin_width(ex.logit_bin_width_reference)
    # the black pixel's bin: much wider with the small margin
    assert ex.logit_bin_width_reference(0, 1e-5) > 50 * ex.logit_bin_width_reference(0, 0.05)
    no_margin = lambda k, a: ex.logit_bin_width_reference(k, 0.0) if k else 1e9  # noqa: E731 (alpha ignored)
    assert not ex.check_logit_bin_width(no_margin)
    assert not ex.check_logit_bin_width(lambda k, a: 1 / 256)  # the width before the logit
    assert not ex.check_logit_bin_width(lambda k, a: (1 - 2 * a) / 256)  # affine part only
    assert not ex.check_logit_bin_width(_not_implemented)


# ---- notebook 04 ----

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


# ---- notebook 05 ----

class _WrongInverse(ex.ChannelShiftReference):
    def inverse(self, z):
        return torch.roll(z, self.shift, dims=1), z.new_zeros(z.shape[0])


class _WrongDirection(ex.ChannelShiftReference):
    # rolls the other way, consistently: a bijection, but not the map asked for
    def __init__(self, shift: int = 1):
        super().__init__(-shift)


class _FixedShift(ex.ChannelShiftReference):
    def __init__(self, shift: int = 1):
        super().__init__(1)


def test_channel_shift_check():
    assert ex.check_channel_shift(ex.ChannelShiftReference)
    for wrong in (_WrongInverse, _WrongDirection, _FixedShift):
        assert not ex.check_channel_shift(wrong), wrong.__name__


class _NoFlag(ex.ActNormMedianReference):
    @torch.no_grad()
    def initialize(self, x):
        super().initialize(x)
        self.initialized.fill_(False)


class _MedianAndStd(fl.ActNorm):
    @torch.no_grad()
    def initialize(self, x):
        super().initialize(x)  # mean/std scale
        flat = x.transpose(0, 1).reshape(self.channels, -1)
        self.bias.copy_(-flat.median(dim=1).values)


@pytest.mark.parametrize("wrong", [fl.ActNorm, _NoFlag, _MedianAndStd])
def test_actnorm_median_check_rejects(wrong):
    assert not ex.check_actnorm_median(wrong)


def test_actnorm_median_check_accepts():
    assert ex.check_actnorm_median(ex.ActNormMedianReference)
