from __future__ import annotations

import json

from flowlib.training import bench

from ..conftest import require_dataset
from ..models.test_multiscale import tiny


def test_throughput_and_sampling_are_measured():
    model, x = tiny()
    result = bench.measure_throughput(model, x.repeat(4, 1, 1, 1), batch_size=8, steps=2, warmup=1)
    assert result["seconds_per_step"] > 0 and result["images_per_second"] > 0
    assert bench.measure_sampling(model, n=4, repeats=1) > 0
    low = bench.measure_throughput(model, x.repeat(4, 1, 1, 1), batch_size=8, steps=1, warmup=1, precision="bfloat16")
    assert low["seconds_per_step"] > 0


def test_a_failed_sampling_is_reported_not_fatal(monkeypatch, capsys):
    require_dataset("MNIST")

    def overflow(model, n):
        raise ValueError("z contains 3 non-finite values (NaN or inf)")

    monkeypatch.setattr(bench, "measure_sampling", overflow)
    assert bench.main(["--device", "cpu", "--steps", "1", "--batch-size", "8", "--hidden", "4", "--steps-per-level", "1",
                       "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "sampling failed after 4 training steps (z contains 3 non-finite values" in out[0]
    result = json.loads(out[-1])
    assert result["sample64_seconds"] is None and "non-finite" in result["sampling_error"]


def test_command_line_reports_json(capsys):
    require_dataset("MNIST")
    assert bench.main(["--device", "cpu", "--steps", "1", "--batch-size", "8", "--hidden", "4", "--steps-per-level", "1",
                       "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["parameters"] > 0 and result["images_per_second"] > 0


def test_learning_curve_records_bpd_against_training_seconds(tmp_path, capsys):
    require_dataset("MNIST")
    out = tmp_path / "curve.json"
    assert bench.main(["--device", "cpu", "--steps", "1", "--batch-size", "8", "--hidden", "4", "--steps-per-level", "1",
                       "--pre-steps", "0", "--dequantization", "uniform", "--curve", "0.05",
                       "--eval-every-minutes", "0.005", "--eval-images", "16", "--curve-out", str(out), "--json",
                       # CPU time: on a loaded machine one wall-clock step can outlast the 0.3 s spacing;
                       # a 3 s budget leaves room for ten points where three are wanted
                       "--clock", "cpu"]) == 0
    result = json.loads(out.read_text())
    seconds = [t for t, _, _ in result["curve"]]
    steps = [s for _, s, _ in result["curve"]]
    assert len(seconds) >= 3 and seconds == sorted(seconds) and steps == sorted(steps)
    assert seconds[-1] >= 3.0 and result["steps"] == steps[-1]
    assert all(0 < b < 9 for _, _, b in result["curve"])


def test_a_preset_sets_the_curve_recipe_and_given_options_override_it(monkeypatch, capsys):
    require_dataset("MNIST")
    seen = {}

    def record(mc, tc, device, **kwargs):
        seen["tc"] = tc
        return {"curve": []}

    monkeypatch.setattr(bench, "learning_curve", record)
    small = ["--device", "cpu", "--steps", "1", "--hidden", "4", "--steps-per-level", "1", "--curve", "1"]
    assert bench.main([*small, "--preset", "classic", "--lr", "5e-4"]) == 0
    assert (seen["tc"].batch_size, seen["tc"].lr, seen["tc"].warmup_steps, seen["tc"].ema) == (32, 5e-4, 0, 0.0)
    assert bench.main(small) == 0  # without a preset: the defaults
    assert (seen["tc"].batch_size, seen["tc"].ema) == (bench.TrainConfig.batch_size, bench.TrainConfig.ema)
    assert (seen["tc"].precision, seen["tc"].channels_last) == ("float32", True)
    assert bench.main([*small, "--precision", "bfloat16", "--channels-last", "false"]) == 0
    assert (seen["tc"].precision, seen["tc"].channels_last) == ("bfloat16", False)


def test_learning_curve_stops_at_the_target():
    require_dataset("MNIST")
    from flowlib.models.multiscale import FlowConfig
    from flowlib.training.train import TrainConfig

    tc = TrainConfig(steps=10**6, minutes=1.0, eval_every=2, eval_images=16, save_every=0, batch_size=8)
    mc = FlowConfig(hidden=4, steps_per_level=1, pre_steps=0, dequantization="uniform")
    result = bench.learning_curve(mc, tc, "cpu", target_bpd=100.0)
    assert result["steps_to_target"] == 2 and result["steps"] == 2
