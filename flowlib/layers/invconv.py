r"""The invertible 1x1 convolution of Glow (notebook 05).

A 1x1 convolution with weight ``W (C x C)`` applies the same matrix to the channel
vector of every pixel: ``z_{:, i, j} = W x_{:, i, j}``. Its Jacobian is block-diagonal
with ``H * W`` copies of ``W``, so ``log|det J| = H * W * log|det W|``. It generalises a
fixed channel permutation (a permutation matrix has ``|det| = 1``) to a learned one
(Kingma & Dhariwal 2018, sec. 3.2).

``InvConv1x1`` stores ``W`` and pays ``O(C^3)`` for ``slogdet(W)`` and ``W^{-1}``.
``InvConv1x1LU`` stores ``W = P L (U + diag(sign_s * exp(log_s)))`` with ``P`` a fixed
permutation, ``L`` unit lower-triangular and ``U`` strictly upper-triangular, so that
``log|det W| = sum(log_s)`` costs ``O(C)``.

No drift in the inverse: both layers form ``W^{-1}`` in float64 (plain: ``linalg.inv``;
LU: two triangular solves, which are backward stable) and cast back, instead of
inverting in float32 or accumulating a learned inverse.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.bijection import Bijection, check_input

__all__ = ["InvConv1x1", "InvConv1x1LU", "random_rotation"]


def random_rotation(channels: int, generator: torch.Generator | None = None) -> Tensor:
    """A random orthogonal ``(C, C)`` matrix with determinant +1 (log|det| = 0 at the start)."""
    q, r = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # unique QR: make it Haar distributed
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.float()


def _apply(x: Tensor, weight: Tensor) -> Tensor:
    if x.dim() == 2:
        return x @ weight.T
    return F.conv2d(x, weight[:, :, None, None])


def _initial_weight(channels: int, weight: Tensor | None) -> Tensor:
    """A copy of ``weight`` checked to be ``(C, C)``, or a random rotation when None."""
    w = random_rotation(channels) if weight is None else weight.detach().clone().float()
    if w.shape != (channels, channels):
        raise ValueError(f"weight must have shape ({channels}, {channels}), got {tuple(w.shape)}")
    return w


def _pixels(x: Tensor) -> int:
    return x[0, 0].numel() if x.dim() > 2 else 1


class InvConv1x1(Bijection):
    """Plain invertible 1x1 convolution: a free ``(C, C)`` weight; log-det by ``slogdet``."""

    def __init__(self, channels: int, weight: Tensor | None = None):
        super().__init__()
        self.channels = channels
        w = _initial_weight(channels, weight)
        self.weight = nn.Parameter(w)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=(2, 4), channels=self.channels)
        w = self.weight.to(x.dtype)
        # float64 like the inverse, so the two directions' log-dets cancel exactly
        logabsdet = torch.linalg.slogdet(self.weight.double())[1].to(x.dtype)
        return _apply(x, w), (_pixels(x) * logabsdet).expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=(2, 4), name="z", channels=self.channels)
        w64 = self.weight.double()
        w_inv = torch.linalg.inv(w64).to(z.dtype)
        logabsdet = torch.linalg.slogdet(w64)[1].to(z.dtype)
        return _apply(z, w_inv), (-_pixels(z) * logabsdet).expand(z.shape[0])


class InvConv1x1LU(Bijection):
    """LU-parameterised invertible 1x1 convolution: ``W = P L (U + diag(sign_s exp(log_s)))``."""

    def __init__(self, channels: int, weight: Tensor | None = None):
        super().__init__()
        self.channels = channels
        w = _initial_weight(channels, weight)
        p, lower, upper = torch.linalg.lu(w.double())
        s = torch.diagonal(upper)
        if (s == 0).any():
            raise ValueError("weight is singular")
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(s.abs()).float())

    def _factors(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        lower = self.lower.to(dtype) * self.lower_mask.to(dtype) + self.eye.to(dtype)
        diag = torch.diag(self.sign_s.to(dtype) * self.log_s.to(dtype).exp())
        upper = self.upper.to(dtype) * self.lower_mask.T.to(dtype) + diag
        return self.perm.to(dtype), lower, upper

    def weight(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The ``(C, C)`` matrix ``W = P L U'`` (P applied as a row gather, not a matmul)."""
        p, lower, upper = self._factors(dtype)
        return (lower @ upper)[p.argmax(dim=1)]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, ndim=(2, 4), channels=self.channels)
        ld = _pixels(x) * self.log_s.sum().to(x.dtype)
        return _apply(x, self.weight(x.dtype)), ld.expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, ndim=(2, 4), name="z", channels=self.channels)
        p, lower, upper = self._factors(torch.float64)
        # W^{-1} = U'^{-1} L^{-1} P^T, each triangular inverse by a solve
        eye = torch.eye(self.channels, dtype=torch.float64, device=z.device)
        l_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        u_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        w_inv = (u_inv @ l_inv @ p.T).to(z.dtype)
        ld = -_pixels(z) * self.log_s.sum().to(z.dtype)
        return _apply(z, w_inv), ld.expand(z.shape[0])
