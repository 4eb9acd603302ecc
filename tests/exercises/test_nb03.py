"""The exercise checks of notebook 03 accept the reference answers and reject plausible wrong ones, including
wrong answers that are still perfectly good bijections."""

from __future__ import annotations

import math

import flowlib as fl
from flowlib.exercises import nb03 as ex


def _not_implemented(*args, **kwargs):
    raise NotImplementedError



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


