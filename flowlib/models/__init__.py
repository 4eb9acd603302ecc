"""Models built from the layers: the 2D coupling flows (notebook 01-02), the multi-scale image flow (notebook 06)
and the conditions it can take (notebook 08).
"""

from .conditions import CONDITIONS, BlockSumResidual, downsample, half_masks, mask_condition
from .flows2d import coupling_flow_2d
from .multiscale import FlowConfig, MultiScaleFlow, classify, make_condition

__all__ = [
    "coupling_flow_2d", "CONDITIONS", "BlockSumResidual", "downsample", "half_masks", "mask_condition", "FlowConfig",
    "MultiScaleFlow", "classify", "make_condition",
]
