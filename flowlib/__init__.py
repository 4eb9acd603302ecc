"""flowlib: a small, tested library of normalizing flows for the course notebooks.

The map, from the bottom up (a subpackage imports only those above it in this list):

- ``config``: quick mode, the default device, how the CPU reuses freed memory, the version.
- ``core``: the bijection interface and its composition, the base distribution, ``Flow``, and ``check_bijection``.
- ``layers``: the invertible layers (elementwise, couplings, splines, autoregressive, dequantization, squeeze and
  split, ActNorm, 1x1 convolutions, Glow steps, continuous flows) and the conditioner networks inside them.
- ``models``: the 2D coupling flows, the multi-scale image flow and the conditions it can take.
- ``data``: MNIST and FashionMNIST as integer images, and the 2D toy data sets.
- ``training``: the training loop, checkpoints, the training and evaluation commands, benchmarks, distributed runs.
- ``apps``: plotting, static companions of the widgets, latent exploration, anomaly scores and the figure command.
- ``exercises``: one module of reference answers and automatic checks per notebook (``nb01`` ... ``nb11``).

The command lines keep short names: ``python -m flowlib.train``, ``flowlib.evaluate``, ``flowlib.bench``,
``flowlib.figures``, ``flowlib.ood`` and ``flowlib.train_fm`` (each a few lines that call the command in its subpackage).
"""

from .apps import plot
from .config import __version__, default_device, is_quick, quick_or_full, reuse_freed_memory
from .core import testing
from .core.bijection import Bijection, Inverse, Sequential, check_input
from .core.distributions import StandardNormal
from .core.flow import Flow, bits_per_dim
from .core.testing import check_bijection
from .data.images import DatasetNotFoundError, load_images
from .data.toy import TOY_DATASETS, make_toy
from .layers import *  # noqa: F403 (every layer and conditioner network: the names in flowlib.layers.__all__)
from .layers import __all__ as _layer_names
from .models.flows2d import coupling_flow_2d
from .training.loop import History, NonFiniteLossError, fit

reuse_freed_memory()  # faster on Linux CPUs; see its docstring

__all__ = [
    "Bijection", "Sequential", "Inverse", "check_input", "StandardNormal", "Flow", "bits_per_dim", "check_bijection",
    "testing", "default_device", "is_quick", "quick_or_full", "reuse_freed_memory", "__version__",
    *_layer_names, "coupling_flow_2d", "TOY_DATASETS", "make_toy", "DatasetNotFoundError", "load_images",
    "History", "NonFiniteLossError", "fit", "plot",
]
