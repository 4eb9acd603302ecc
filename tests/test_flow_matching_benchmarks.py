"""benchmarks/flow_matching_2d.py and flow_matching_mnist.py: they run end to end on tiny settings and report honestly."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from flowlib.layers.vector_fields import UNet
from flowlib.training import train_fm

from .conftest import require_dataset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_2d_benchmark_reports_the_cheapest_budget_within_the_margin(tmp_path, capsys):
    bench = load("flow_matching_2d")
    out = tmp_path / "r.json"
    assert bench.main(["--sets", "moons", "--cnf-steps", "2", "--fm-steps", "2", "4", "--eval", "64",
                       "--margin", "100", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    moons = r["sets"]["moons"]
    assert [run["steps"] for run in moons["flow_matching"]] == [2, 4]
    # with a huge margin every budget is "within" it, so the cheapest one is chosen
    cheapest = min(moons["flow_matching"], key=lambda run: run["train_s"])
    assert moons["cheapest_within_margin"] == cheapest
    # the JSON rounds the times to 0.01 s, so the fraction recomputed from them is known only to that precision
    rounding = 0.006 * (1 + moons["time_fraction"]) / moons["cnf"]["train_s"]
    assert moons["time_fraction"] == pytest.approx(cheapest["train_s"] / moons["cnf"]["train_s"], abs=rounding)
    # with a negative margin nothing can be within it
    assert bench.main(["--sets", "moons", "--cnf-steps", "2", "--fm-steps", "2", "--eval", "64", "--margin", "-100",
                       "--json", str(out), "--force"]) == 0
    r = json.loads(out.read_text())
    assert r["sets"]["moons"]["cheapest_within_margin"] is None and r["sets_within_margin_in_a_third_of_the_time"] == 0
    with pytest.raises(SystemExit):
        bench.main(["--sets", "moons", "--json", str(out)])  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


def test_the_mnist_benchmark_scores_both_models_on_the_same_images(tmp_path):
    require_dataset("MNIST")
    bench = load("flow_matching_mnist")
    torch.manual_seed(0)
    ckpt = train_fm.save_field_checkpoint(tmp_path / "fm.pt", UNet(1, base=8), dataset="mnist", step=0)
    out = tmp_path / "r.json"
    assert bench.main(["--checkpoint", str(ckpt), "--eval-images", "4", "--batch-size", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["test_images"] == 4 and r["flow_matching"]["parameters"] == sum(p.numel() for p in UNet(1, base=8).parameters())
    fm, flow, gap = r["flow_matching"]["bpd"], r["multiscale_flow"]["bpd"], r["paired_difference"]["bpd"]
    assert all(math.isfinite(v) for v in (fm, flow, gap)) and gap == pytest.approx(fm - flow, abs=2e-4)
    # an untrained field (v = 0) leaves the logits Gaussian: far worse than the trained flow
    assert fm > flow + 1
