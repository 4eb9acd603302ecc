from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "flagship_table", Path(__file__).resolve().parents[1] / "benchmarks" / "flagship_table.py")
flagship_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(flagship_table)


def _run(path: Path, dataset: str, evals, raw, seconds, step: int = 500):
    tc = {"batch_size": 16, "minutes": 240.0, "clock": "cpu", "eval_images": 2000}
    history = {"evals": evals, "raw_evals": raw, "eval_seconds": seconds, "seconds": 1500.0, "train_config": tc}
    torch.save({"dataset": dataset, "step": step, "history": history}, path)


def test_the_table_lines_up_runs_by_cpu_minute_and_shows_both_weights(tmp_path, capsys):
    _run(tmp_path / "a.pt", "mnist", [[100, 1.20], [210, 1.10]], [[100, 1.25], [210, 1.12]], [1200.3, 2399.8])
    _run(tmp_path / "b.pt", "fashion-mnist", [[98, 3.1]], [], [1201.0])
    assert flagship_table.main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| CPU-minutes | mnist (a.pt) | fashion-mnist (b.pt) |"
    assert lines[2] == "| 20 | 1.2000 (1.2500) at step 100 | 3.1000 at step 98 |"
    assert lines[3] == "| 40 | 1.1000 (1.1200) at step 210 |  |"
    assert "500 steps of 16 images (0.1 epochs), 25.0 of 240.0 minutes" in lines[4]


def test_a_run_without_timed_evaluations_is_refused(tmp_path, capsys):
    _run(tmp_path / "a.pt", "mnist", [[100, 1.2]], [], [])
    with pytest.raises(SystemExit):
        flagship_table.main([str(tmp_path / "a.pt")])
    assert "recorded no timed evaluations" in capsys.readouterr().err
