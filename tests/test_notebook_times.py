"""benchmarks/notebook_times.py: it times each cell of a notebook it really ran, and reports a failing notebook."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load():
    spec = importlib.util.spec_from_file_location("notebook_times", BENCHMARKS / "notebook_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def test_cell_times_come_from_the_run(tmp_path):
    times = load()
    path = write(tmp_path / "01_sleep.ipynb", ["import time\ntime.sleep(0.6)", "x = 1"])
    result = times.run_notebook(path, timeout=60, save=tmp_path / "out")
    assert result["error"] is None
    sleep, quick = result["cells"]
    assert 0.6 <= sleep["seconds"] < 5 and quick["seconds"] < 0.5
    assert sleep["first_line"] == "import time"
    assert result["seconds"] >= sleep["seconds"]
    assert (tmp_path / "out" / "01_sleep.ipynb").exists()


def test_a_failing_notebook_is_reported_not_hidden(tmp_path):
    times = load()
    path = write(tmp_path / "02_fails.ipynb", ["raise ValueError('broken on purpose')", "never = 1"])
    result = times.run_notebook(path, timeout=60, save=None)
    assert result["error"] is not None and "ValueError" in result["error"]
    assert result["cells"][1]["seconds"] is None  # the cell after the error never ran


def test_cell_seconds_reads_nbclient_timestamps():
    times = load()
    cell = {"metadata": {"execution": {"iopub.execute_input": "2026-12-07T07:00:00.000000Z",
                                       "shell.execute_reply": "2026-12-07T07:01:30.500000Z"}}}
    assert times.cell_seconds(cell) == 90.5
    assert times.cell_seconds({"metadata": {}}) is None
