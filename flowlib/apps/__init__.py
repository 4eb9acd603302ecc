"""What flows are used for, and their pictures: plotting helpers, static companions of the widgets for the website,
latent exploration (notebook 07), anomaly scores (notebook 09) and the figure command.
"""

from . import plot, static
from .explore import LatentExplorer, interpolate_latents, lerp, slerp

__all__ = [
    "plot", "static", "LatentExplorer", "interpolate_latents", "lerp", "slerp",
]
