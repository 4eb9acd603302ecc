"""The exercise checks of notebook 05 accept the reference answers and reject plausible wrong ones, including
wrong answers that are still perfectly good bijections."""

from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.exercises import nb05 as ex


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
