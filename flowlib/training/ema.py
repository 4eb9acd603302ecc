"""An exponential moving average of a model's weights (issue 25's recipe study; notebook 06 uses its result).

Adam's last iterate jitters around the optimum with the noise of its last few hundred batches;
the average ``ema_k = d ema_{k-1} + (1 - d) w_k`` of the iterates sits closer to it and usually
scores a lower test loss at no training cost (Polyak & Juditsky 1992; used by most strong
generative models since). The decay is ramped up as ``min(d, (1 + k) / (10 + k))`` so the
average follows the fast early changes instead of remembering the random initialisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s floating-point state (weights and float buffers)."""

    def __init__(self, model: nn.Module, decay: float, average: dict[str, Tensor] | None = None):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        source = average if average is not None else model.state_dict()
        self.average = {k: v.detach().clone().float() for k, v in source.items() if v.is_floating_point()}

    def decay_at(self, step: int) -> float:
        """The decay used for the update after step ``step`` (1-based)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold the model's current weights into the average."""
        weight = 1 - self.decay_at(step)
        for k, v in model.state_dict().items():
            if k in self.average:
                self.average[k].lerp_(v.detach().to(self.average[k].dtype), weight)

    def state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        """``model``'s full state with the averaged tensors in place of its floating-point ones."""
        return {k: self.average.get(k, v) for k, v in model.state_dict().items()}

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[dict[str, Tensor]]:
        """Within the block ``model`` holds the average; yields a copy of the trained state, restored afterwards."""
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state_dict(model))
        try:
            yield trained
        finally:
            model.load_state_dict(trained)
