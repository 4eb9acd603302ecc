"""The shared checker over every bijection flowlib defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import flowlib
from flowlib import Bijection, check_bijection

from ..bijection_cases import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_bijection(name):
    torch.manual_seed(0)
    layer, x, *cond = CASES[name]()  # a conditional layer comes with its fixed condition
    report = check_bijection(layer, x, cond=cond[0] if cond else None)
    assert report.roundtrip_error < 1e-8


def _flowlib_bijection_classes():
    found = set()
    for info in pkgutil.walk_packages(flowlib.__path__, prefix="flowlib."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Bijection) and obj.__module__ == module.__name__ and not obj.__name__.startswith("_"):
                if obj is not Bijection:
                    found.add(obj)
    return found


def test_the_scan_reaches_every_subpackage():
    # a flat scan of flowlib/ finds no layer now that they live in subpackages
    modules = {cls.__module__ for cls in _flowlib_bijection_classes()}
    assert {"flowlib.layers.coupling", "flowlib.layers.squeeze", "flowlib.models.conditions"} <= modules


def test_every_bijection_has_a_case():
    covered = {name.split("-")[0] for name in CASES}
    missing = {cls.__name__ for cls in _flowlib_bijection_classes()} - covered
    assert not missing, f"add these bijections to tests/bijection_cases.py: {sorted(missing)}"
