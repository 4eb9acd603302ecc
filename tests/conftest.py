"""Shared fixtures. Tests that need MNIST/FashionMNIST skip when data/ lacks them,
except in CI (CI=true), where a missing dataset is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def require_dataset(name: str) -> Path:
    raw = DATA / name / "raw"
    if not (raw / "t10k-images-idx3-ubyte").exists() and not (raw / "t10k-images-idx3-ubyte.gz").exists():
        msg = f"{name} is not in {raw}; run ../shared/datasets/unpack.sh data or download it"
        if os.environ.get("CI", "").lower() in {"1", "true"}:
            pytest.fail(msg)
        pytest.skip(msg)
    return DATA
