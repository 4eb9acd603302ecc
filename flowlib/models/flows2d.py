"""Ready-made flows for 2D toy data (notebooks 01-02)."""

from __future__ import annotations

from ..core.bijection import Sequential
from ..core.flow import Flow
from ..layers.coupling import AdditiveCoupling, AffineCoupling, alternating_mask
from ..layers.elementwise import ElementwiseAffine
from ..layers.nets import MLP

__all__ = ["coupling_flow_2d"]


def coupling_flow_2d(layers: int = 8, hidden: int = 64, affine: bool = True, features: int = 2) -> Flow:
    """A stack of ``layers`` coupling layers with alternating masks on ``features``-dim data.

    Each coupling transforms the features its mask leaves out, conditioned on the rest;
    alternating the mask lets every feature be transformed. An ``ElementwiseAffine``
    first layer learns the data's overall location and scale.

    Because every coupling starts as the identity, on data that is symmetric under
    ``x -> -x`` (rings) the gradient reaching the additive couplings' networks is zero at the
    start and ``affine=False`` stays Gaussian; affine couplings get a gradient through their
    scales (notebook 02, section 3).
    """
    blocks = [ElementwiseAffine(features)]
    for i in range(layers):
        mask = alternating_mask(features, parity=i % 2)
        if affine:
            blocks.append(AffineCoupling(mask, MLP(features, 2 * features, hidden=hidden)))
        else:
            blocks.append(AdditiveCoupling(mask, MLP(features, features, hidden=hidden)))
    return Flow(Sequential(*blocks), event_shape=(features,))
