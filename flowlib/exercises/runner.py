"""The runner behind every exercise check of the course: ``run_check`` prints "passed", "not yet right:
<what differs>" or "not implemented yet" and returns whether the answer is right; ``_compare`` says what differs
between two tensors, and ``_compare_bijections`` between a learner's bijection and the reference, both ways.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["run_check"]


def _compare(name: str, got, expected: Tensor, tol: float = 1e-8) -> None:
    if not isinstance(got, Tensor) or got.shape != expected.shape:
        shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
        raise AssertionError(f"{name} has shape {shape}, expected {tuple(expected.shape)}")
    err = (got.double() - expected).abs().max().item()
    if not err <= tol:
        raise AssertionError(f"{name} differs from the map the exercise asks for (max abs error {err:.3g})")


def _compare_bijections(layer, reference, x: Tensor, where: str) -> None:
    """Compare ``layer`` with ``reference`` at ``x``: forward output and log-det, then inverse of the reference's
    latent and its log-det (which must be minus the forward one). ``where`` names the case in the message."""
    z_ref, ld_ref = reference(x)
    z, ld = layer(x)
    _compare(f"forward(x)[0] with {where}", z, z_ref)
    _compare(f"the forward log-det with {where}", ld, ld_ref)
    x_back, ld_back = layer.inverse(z_ref)
    _compare(f"inverse(z)[0] with {where}", x_back, x)
    _compare(f"the inverse log-det with {where}", ld_back, -ld_ref)


def run_check(label: str, check, what: str = "the code") -> bool:
    """Run ``check()``; print "passed", "not yet right: <what differs>" or "not implemented yet"; return success.

    The one runner behind every exercise check of the course (notebooks 01-07).
    """
    try:
        report = check()
    except NotImplementedError:
        print(f"{label}: not implemented yet. Fill in {what} above, run that cell, then this one.")
        return False
    except AssertionError as err:
        print(f"{label}: not yet right: {err}")
        return False
    print(f"{label} passed: {report}")
    return True
