"""The shared checker over every bijection flowlib defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import flowlib
from flowlib import Bijection, check_bijection

from .bijection_cases import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_bijection(name):
    torch.manual_seed(0)
    layer, x, *cond = CASES[name]()  # a conditional layer comes with its fixed condition
    report = check_bijection(layer, x, cond=cond[0] if cond else None)
    assert report.roundtrip_error < 1e-8


def _flowlib_bijection_classes():
    found = set()
    for info in pkgutil.iter_modules(flowlib.__path__):
        module = importlib.import_module(f"flowlib.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Bijection) and obj.__module__ == module.__name__ and not obj.__name__.startswith("_"):
                if obj is not Bijection:
                    found.add(obj.__name__)
    return found


def test_every_bijection_has_a_case():
    covered = {name.split("-")[0] for name in CASES}
    missing = _flowlib_bijection_classes() - covered
    assert not missing, f"add these bijections to tests/bijection_cases.py: {sorted(missing)}"
