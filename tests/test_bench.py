from __future__ import annotations

import json

from flowlib import bench

from .conftest import require_dataset
from .test_model import tiny


def test_throughput_and_sampling_are_measured():
    model, x = tiny()
    result = bench.measure_throughput(model, x.repeat(4, 1, 1, 1), batch_size=8, steps=2, warmup=1)
    assert result["seconds_per_step"] > 0 and result["images_per_second"] > 0
    assert bench.measure_sampling(model, n=4, repeats=1) > 0


def test_command_line_reports_json(capsys):
    require_dataset("MNIST")
    assert bench.main(["--device", "cpu", "--steps", "1", "--batch-size", "8", "--hidden", "4", "--steps-per-level", "1",
                       "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["parameters"] > 0 and result["images_per_second"] > 0
