from __future__ import annotations

import pytest
import torch

from flowlib.data.images import DatasetNotFoundError, load_images

from ..conftest import require_dataset


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_loads_uint8_tensors(name, folder):
    root = require_dataset(folder)
    test = load_images(name, "test", root=root)
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.labels.shape == (10000,) and test.labels.dtype == torch.int64
    assert set(test.labels.unique().tolist()) == set(range(10)) and len(test.classes) == 10
    assert test.images.max() == 255
    small = load_images(name, "train", root=root, limit=100)
    assert len(small) == 100


def test_missing_dataset_offline_says_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="unpack.sh") as err:
        load_images("mnist", "test", root=tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)


def test_bad_names():
    with pytest.raises(ValueError, match="choose one of"):
        load_images("cifar10")
    with pytest.raises(ValueError, match="split"):
        load_images("mnist", "valid")


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    import urllib.error

    from torchvision import datasets

    real = datasets.MNIST

    def offline(root, train=True, download=False, **kw):
        if download:
            raise urllib.error.URLError("no network")
        return real(root, train=train, download=False, **kw)

    monkeypatch.setattr(datasets, "MNIST", offline)
    with pytest.raises(DatasetNotFoundError, match="(?s)download failed: <urlopen error no network>.*Offline\\?"):
        load_images("mnist", "train", root=tmp_path)
