"""Data: MNIST and FashionMNIST as integer images (notebook 03), and the 2D toy sets (notebook 01).
"""

from .images import DATASETS, DatasetNotFoundError, load_images
from .toy import TOY_DATASETS, make_toy

__all__ = [
    "DATASETS", "DatasetNotFoundError", "load_images", "TOY_DATASETS", "make_toy",
]
