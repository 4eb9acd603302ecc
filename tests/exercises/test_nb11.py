"""The exercise checks of notebook 11 accept the reference answers and reject plausible wrong ones."""

from __future__ import annotations

import pytest
import torch

from flowlib.exercises.nb11 import cfm_loss_reference, check_cfm_loss, check_euler, euler_reference


def test_cfm_loss_check_accepts_the_reference(capsys):
    assert check_cfm_loss(cfm_loss_reference)
    assert "Exercise 1 passed" in capsys.readouterr().out


def _sign_flipped(field, x0, x1, t, sigma_min):
    tt = t[:, None]
    xt = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    return (field(t, xt) - ((1 - sigma_min) * x0 - x1)).pow(2).mean()  # velocity from data to noise


def _no_sigma_min(field, x0, x1, t, sigma_min):
    tt = t[:, None]
    return (field(t, (1 - tt) * x0 + tt * x1) - (x1 - x0)).pow(2).mean()  # right only at sigma_min = 0


def _t_swapped(field, x0, x1, t, sigma_min):
    tt = t[:, None]
    xt = tt * x0 + (1 - (1 - sigma_min) * tt) * x1  # noise at t = 1 instead of t = 0
    return (field(t, xt) - (x1 - (1 - sigma_min) * x0)).pow(2).mean()


def _summed(field, x0, x1, t, sigma_min):
    return cfm_loss_reference(field, x0, x1, t, sigma_min) * x0.numel()  # a sum, not a mean: another scale


@pytest.mark.parametrize("wrong", [_sign_flipped, _no_sigma_min, _t_swapped, _summed,
                                   lambda field, x0, x1, t, sigma_min: torch.tensor(0.0)])
def test_cfm_loss_check_rejects_wrong_answers(wrong, capsys):
    assert not check_cfm_loss(wrong)
    assert "not yet right" in capsys.readouterr().out


def test_an_unfilled_template_is_not_yet(capsys):
    def template(*args):
        raise NotImplementedError
    assert not check_cfm_loss(template) and not check_euler(template)
    assert capsys.readouterr().out.count("not implemented yet") == 2


def test_euler_check_accepts_the_reference(capsys):
    assert check_euler(euler_reference)
    assert "Exercise 2 passed" in capsys.readouterr().out


def _field_at_step_end(field, x0, steps):
    h, x = 1.0 / steps, x0
    for k in range(steps):
        x = x + h * field(torch.tensor((k + 1) * h, dtype=x0.dtype), x)
    return x


def _one_step_too_many(field, x0, steps):
    return euler_reference(field, x0, steps + 1)


def _midpoint(field, x0, steps):
    # more accurate, but not the Euler method the exercise asks for
    h, x = 1.0 / steps, x0
    for k in range(steps):
        t = torch.tensor(k * h, dtype=x0.dtype)
        x = x + h * field(t + h / 2, x + h / 2 * field(t, x))
    return x


@pytest.mark.parametrize("wrong", [_field_at_step_end, _one_step_too_many, _midpoint, lambda field, x0, steps: x0])
def test_euler_check_rejects_wrong_answers(wrong, capsys):
    assert not check_euler(wrong)
    assert "not yet right" in capsys.readouterr().out
