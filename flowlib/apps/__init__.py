"""What flows are used for, and their pictures: plotting helpers, latent exploration (notebook 07), anomaly scores
(notebook 09) and the figure command.
"""

from . import plot
from .explore import LatentExplorer, interpolate_latents, lerp, slerp

__all__ = [
    "plot", "LatentExplorer", "interpolate_latents", "lerp", "slerp",
]
