"""Checks a learner (and our test-suite) can run on any bijection (notebooks 01-02).

``check_bijection`` is the single checker every layer in flowlib passes. It verifies

1. the batch size and the number of dimensions are kept (a squeeze may reshape)
   and ``logdet`` has shape ``(B,)``;
2. the round trip ``inverse(forward(x)) == x``;
3. ``logdet_forward + logdet_inverse == 0``;
4. ``logdet_forward`` equals ``log|det J|`` of the Jacobian computed by
   ``torch.autograd.functional.jacobian``, example by example, in float64.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["check_bijection", "BijectionReport", "jacobian_logdet", "perturb"]


@dataclass
class BijectionReport:
    """What ``check_bijection`` measured (largest absolute errors over the batch)."""

    roundtrip_error: float
    logdet_sum_error: float
    jacobian_logdet_error: float

    def __str__(self) -> str:
        return (f"round trip max|x - f^-1(f(x))| = {self.roundtrip_error:.2e}, "
                f"max|logdet_f + logdet_f^-1| = {self.logdet_sum_error:.2e}, "
                f"max|logdet - slogdet(J)| = {self.jacobian_logdet_error:.2e}")


def jacobian_logdet(fn, x: Tensor) -> Tensor:
    """``log|det dfn(x_b)/dx_b|`` for each example ``b``, from the full autograd Jacobian.

    ``fn`` maps a batch to a batch of the same shape; each example is treated on its
    own (batch size 1) so layers that mix examples (none should) would be caught.
    """
    out = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1]
        n = xb.numel()

        def flat(v: Tensor, shape=xb.shape, n=n) -> Tensor:
            return fn(v.reshape(shape)).reshape(n)

        try:  # vmap over the rows is much faster; fall back for layers vmap cannot handle
            jac = torch.autograd.functional.jacobian(flat, xb.reshape(n), vectorize=True)
        except RuntimeError:
            jac = torch.autograd.functional.jacobian(flat, xb.reshape(n))
        sign, logabs = torch.linalg.slogdet(jac)
        if sign == 0:
            raise AssertionError(f"the Jacobian of example {b} is singular: the map is not invertible there")
        out.append(logabs)
    return torch.stack(out)


def check_bijection(layer: torch.nn.Module, x: Tensor, atol: float = 1e-6, rtol: float = 1e-5,
                    jacobian: bool = True, cond: Tensor | None = None) -> BijectionReport:
    """Check that ``layer`` is a correct flowlib bijection at the inputs ``x``.

    The check runs on a float64 copy of ``layer`` and ``x`` (the layer itself is not
    changed) in evaluation mode. Use a small input: the Jacobian has ``numel(x_b)^2``
    entries, e.g. ``(2, 4, 4, 4)`` for an image layer. Raises ``AssertionError``
    naming the failed property; returns a :class:`BijectionReport` otherwise.

    ``cond`` checks a conditional layer (notebook 08) as a bijection of ``x`` for that fixed
    condition: ``layer(x, cond)`` and ``layer.inverse(z, cond)``.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have a batch dimension, shape (B, ...), got {tuple(x.shape)}")
    layer = copy.deepcopy(layer).double().eval()
    x = x.detach().double()
    name = type(layer).__name__
    args = ()
    if cond is not None:
        args = (cond.detach().double() if cond.is_floating_point() else cond.detach(),)

    with torch.no_grad():
        z, ld_fwd = layer(x, *args)
        if z.shape[0] != x.shape[0] or z.numel() != x.numel():
            raise AssertionError(f"{name}.forward must keep the batch and the number of dimensions: "
                                 f"{tuple(x.shape)} became {tuple(z.shape)}")
        _check_logdet(name, "forward", ld_fwd, x)
        x_rec, ld_inv = layer.inverse(z, *args)
        if x_rec.shape != x.shape:
            raise AssertionError(f"{name}.inverse returned shape {tuple(x_rec.shape)}, expected {tuple(x.shape)}")
        _check_logdet(name, "inverse", ld_inv, x)

    roundtrip = (x_rec - x).abs().max().item()
    if not torch.allclose(x_rec, x, atol=atol, rtol=rtol):
        raise AssertionError(f"{name}: inverse(forward(x)) != x, max abs error {roundtrip:.3e}")
    ld_sum = (ld_fwd + ld_inv).abs().max().item()
    if ld_sum > atol + rtol * ld_fwd.abs().max().item():
        raise AssertionError(f"{name}: forward and inverse log-dets do not sum to zero, max |sum| = {ld_sum:.3e}")

    jac_err = float("nan")
    if jacobian:
        if args:  # one example at a time, each with its own condition
            ld_jac = torch.cat([jacobian_logdet(lambda v, c=args[0][i:i + 1]: layer(v, c)[0], x[i:i + 1])
                                for i in range(x.shape[0])])
        else:
            ld_jac = jacobian_logdet(lambda v: layer(v)[0], x)
        jac_err = (ld_jac - ld_fwd).abs().max().item()
        if not torch.allclose(ld_fwd, ld_jac, atol=atol, rtol=rtol):
            raise AssertionError(f"{name}: forward log-det {ld_fwd.tolist()} differs from slogdet of the "
                                 f"autograd Jacobian {ld_jac.tolist()} (max error {jac_err:.3e})")
    return BijectionReport(roundtrip, ld_sum, jac_err)


def _check_logdet(name: str, direction: str, logdet, x: Tensor) -> None:
    if not isinstance(logdet, Tensor):
        raise AssertionError(f"{name}.{direction} must return a logdet tensor of shape (B,), got {type(logdet).__name__}")
    if logdet.shape != (x.shape[0],):
        raise AssertionError(f"{name}.{direction} logdet has shape {tuple(logdet.shape)}, expected ({x.shape[0]},)")
    if logdet.dtype != x.dtype or logdet.device != x.device:
        raise AssertionError(f"{name}.{direction} logdet is {logdet.dtype} on {logdet.device}, "
                             f"expected {x.dtype} on {x.device} like its input")


@torch.no_grad()
def perturb(module: torch.nn.Module, std: float = 0.2, seed: int = 0) -> torch.nn.Module:
    """Add Gaussian noise to every parameter of ``module`` (in place) and return it.

    Fresh flow layers start as the identity (zero-initialised conditioners), which would
    make a check trivially pass; perturbing first makes ``check_bijection`` meaningful.
    """
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(std * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
    return module
