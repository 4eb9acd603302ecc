from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "recipe_study", Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_study.py")
recipe_study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe_study)


def test_the_curve_table_orders_runs_by_their_last_point_and_shows_the_trained_weights(tmp_path):
    slow = {"parameters": 10, "steps": 200, "curve": [[300.1, 100, 1.30], [600.2, 200, 1.20]]}
    fast = {"parameters": 1234, "steps": 210, "curve": [[299.8, 105, 1.28], [600.0, 210, 1.15]],
            "raw_curve": [[299.8, 105, 1.29], [600.0, 210, 1.17]]}
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    lines = recipe_study.curve_table([tmp_path / "slow.json", tmp_path / "fast.json"]).splitlines()
    assert lines[0].startswith("| run | parameters | steps | @ 5 min | @ 10 min |")
    assert lines[2] == "| fast | 1,234 | 210 | 1.2800 | 1.1500 | 1.1700 |"
    assert lines[3] == "| slow | 10 | 200 | 1.3000 | 1.2000 |  |"
