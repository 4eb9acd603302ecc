"""The student copy drops the reference solutions and nothing else, and never overwrites without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowlib.exercises.strip import HEADING, main, strip_solutions

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_loses_its_solutions_and_keeps_the_rest(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(NOTEBOOKS)
    for src in NOTEBOOKS:
        before = json.loads(src.read_text())["cells"]
        after = json.loads((tmp_path / src.name).read_text())["cells"]
        start = next(i for i, c in enumerate(before) if "".join(c["source"]).startswith(HEADING))
        assert after == before[:start]  # the exercises and their checks stay, unchanged
        assert not any("_reference" in "".join(c["source"]) and "getsource" in "".join(c["source"]) for c in after)
        assert any("## Exercises" in "".join(c["source"]) or "Exercise" in "".join(c["source"]) for c in after)
        assert f"{tmp_path / src.name}: {len(before) - start} solution cells removed" in lines


def test_it_refuses_to_overwrite_without_force(tmp_path, capsys):
    (tmp_path / NOTEBOOKS[0].name).write_text("mine")
    assert main([str(tmp_path), str(NOTEBOOKS[0])]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (tmp_path / NOTEBOOKS[0].name).read_text() == "mine"
    assert main([str(tmp_path), str(NOTEBOOKS[0]), "--force"]) == 0
    assert (tmp_path / NOTEBOOKS[0].name).read_text() != "mine"


def test_it_refuses_the_source_folder_and_a_notebook_without_the_section(tmp_path, capsys):
    assert main([str(NOTEBOOKS[0].parent), str(NOTEBOOKS[0]), "--force"]) == 2
    assert "is the notebook itself" in capsys.readouterr().err
    plain = tmp_path / "plain.ipynb"
    plain.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# no exercises"]}]}))
    assert main([str(tmp_path / "out"), str(plain)]) == 2
    assert "found 0" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(ValueError):
        strip_solutions({"cells": []})
