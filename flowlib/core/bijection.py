"""The interface every invertible layer follows, and their composition (notebook 01).

A bijection maps data to latent in ``forward`` and latent to data in ``inverse``.
Both directions return the transformed tensor *and* the log-determinant of the
Jacobian of the map that was applied, one number per example::

    z, logdet = layer.forward(x)     # logdet = log|det dz/dx|, shape (B,)
    x, logdet = layer.inverse(z)     # logdet = log|det dx/dz| = -log|det dz/dx|

The change-of-variables formula then gives ``log p_x(x) = log p_z(z) + logdet``.

A *conditional* layer (notebook 08) also takes a condition ``c`` in both directions,
``forward(x, cond)`` and ``inverse(z, cond)``: for every fixed ``c`` it is a bijection of
``x``, so ``log p(x|c) = log p_z(z|c) + logdet(x; c)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["Bijection", "Sequential", "Inverse", "check_input", "skip_finite_checks"]


def check_input(x: Tensor, *, ndim: int | tuple[int, ...], name: str = "x", features: int | None = None,
                channels: int | None = None, finite: bool = True) -> None:
    """Raise a clear error when ``x`` does not have the expected form.

    ``ndim`` is the number of dimensions including the batch, e.g. 2 for ``(B, D)``
    and 4 for ``(B, C, H, W)``. ``features`` checks ``x.shape[1]`` for vectors,
    ``channels`` checks it for images. Non-finite values are rejected because a
    NaN fed to a flow comes out as a NaN log-likelihood far from its cause.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if x.dim() not in allowed:
        want = " or ".join(_shape_hint(n) for n in allowed)
        raise ValueError(f"{name} must have shape {want}, got a tensor of shape {tuple(x.shape)}")
    if features is not None and x.shape[1] != features:
        raise ValueError(f"{name} must have {features} features (shape (B, {features})), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels (shape (B, {channels}, H, W)), got shape {tuple(x.shape)}")
    if finite and _FINITE_CHECKS[0] and x.is_floating_point() and not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} non-finite values (NaN or inf)")


_FINITE_CHECKS = [True]


@contextmanager
def skip_finite_checks() -> Iterator[None]:
    """Turn off :func:`check_input`'s NaN/inf scan inside the block.

    A model that checks its input once at its boundary (as ``MultiScaleFlow`` does) uses
    this so that its layers do not scan every intermediate tensor again: on a GPU each scan
    is a host-device synchronisation. Shape checks stay on.
    """
    before = _FINITE_CHECKS[0]
    _FINITE_CHECKS[0] = False
    try:
        yield
    finally:
        _FINITE_CHECKS[0] = before


def _shape_hint(n: int) -> str:
    return {1: "(B,)", 2: "(B, D)", 3: "(B, L, D)", 4: "(B, C, H, W)"}.get(n, f"with {n} dimensions")


class Bijection(nn.Module):
    """Base class of an invertible map with a tractable log-determinant.

    Subclasses implement ``forward(x) -> (z, logdet)`` (data -> latent) and
    ``inverse(z) -> (x, logdet)`` (latent -> data). ``logdet`` always has shape
    ``(B,)`` and lives on the input's device and dtype.

    A conditional layer sets ``takes_cond = True`` and takes ``cond`` as a second argument in
    both directions; :class:`Sequential` hands its ``cond`` to those layers only.
    """

    takes_cond = False

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


class Sequential(Bijection):
    """Composition ``f_K o ... o f_1``: log-dets add up, the inverse runs backwards.

    ``log|det J_{f_K o ... o f_1}(x)| = sum_k log|det J_{f_k}(x_{k-1})|`` by the chain rule.
    A ``cond`` given to it reaches every layer with ``takes_cond = True``.
    """

    takes_cond = True

    def __init__(self, *layers: Bijection):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Bijection):
                raise TypeError(f"layer {i} is a {type(layer).__name__}, not a flowlib Bijection")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, cond) if cond is not None and layer.takes_cond else layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z, cond) if cond is not None and layer.takes_cond else layer.inverse(z)
            logdet = logdet + ld
        return z, logdet

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Bijection:
        return self.layers[i]


class Inverse(Bijection):
    """Swap the two directions of a bijection (its forward becomes our inverse)."""

    def __init__(self, bijection: Bijection):
        super().__init__()
        self.bijection = bijection

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.bijection.inverse(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.bijection(z)
