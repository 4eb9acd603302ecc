"""MNIST and FashionMNIST as uint8 tensors held in memory (notebooks 03-08).

Images come back as ``(N, 1, 28, 28)`` uint8 tensors and labels as int64 ``(N,)``,
so a training loop indexes tensors instead of running a PIL transform per item.

Where the files come from: ``root`` (default: the ``data/`` folder of this checkout,
or ``$FLOWLIB_DATA``) in torchvision's layout ``root/MNIST/raw/*-ubyte``. When they are
missing, torchvision downloads them (``download=True``, the default); offline, that
fails and :class:`DatasetNotFoundError` says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

__all__ = ["DATASETS", "ImageData", "DatasetNotFoundError", "load_images", "data_root"]

DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is not on disk and could not be downloaded."""


@dataclass
class ImageData:
    """Images ``(N, 1, 28, 28)`` uint8, labels ``(N,)`` int64, and the class names."""

    name: str
    split: str
    images: Tensor
    labels: Tensor
    classes: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]


def data_root() -> Path:
    """``$FLOWLIB_DATA`` if set, else the ``data/`` folder next to the flowlib package."""
    env = os.environ.get("FLOWLIB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def _normalise_name(name: str) -> str:
    key = name.lower().replace("_", "-")
    if key in ("fashionmnist", "fashion"):
        key = "fashion-mnist"
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return key


def load_images(name: str, split: str = "train", root: str | Path | None = None, download: bool = True,
                limit: int | None = None) -> ImageData:
    """Load ``name`` ('mnist' or 'fashion-mnist'), ``split`` ('train' or 'test') into memory.

    ``limit`` keeps the first ``limit`` examples (quick runs).
    """
    from torchvision import datasets

    key = _normalise_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else data_root()
    cls = getattr(datasets, DATASETS[key])
    try:
        ds = cls(str(root), train=(split == "train"), download=False)
    except RuntimeError as missing:
        if not download:
            raise DatasetNotFoundError(_missing_message(key, root, "download=False was given")) from missing
        try:
            ds = cls(str(root), train=(split == "train"), download=True)
        except Exception as err:  # URLError, HTTPError, socket errors, checksum errors
            raise DatasetNotFoundError(_missing_message(key, root, f"the download failed: {err}")) from err
    images = ds.data
    labels = ds.targets
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageData(key, split, images[:, None].contiguous(), labels.long(), CLASSES[key])


def _missing_message(key: str, root: Path, why: str) -> str:
    folder = root / DATASETS[key] / "raw"
    return (f"{DATASETS[key]} is not in {folder} and {why}.\n"
            f"Offline? Put the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte (or their .gz) into {folder}; in the course repository, "
            f"`bash ../shared/datasets/unpack.sh data` does this where a copy is provided. "
            f"Online, call load_images(..., download=True) to let torchvision fetch them.")
