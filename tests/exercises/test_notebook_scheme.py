"""Reference answers stay out of sight the same way in every notebook.

Each notebook with exercises ends with one ``### Reference solutions`` section: the answers in words inside a
folded ``<details>`` block, and every code cell after the heading hidden (source and output), so a learner sees
no solution before asking for one. A notebook imports the exercise module of its own number only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HEADING = "### Reference solutions"


def scheme_errors(cells: list[dict], number: str) -> list[str]:
    text = ["".join(c["source"]) for c in cells]
    starts = [i for i, (c, s) in enumerate(zip(cells, text)) if c["cell_type"] == "markdown" and s.startswith(HEADING)]
    if len(starts) != 1:
        return [f"want one markdown cell starting with {HEADING!r}, found {len(starts)}"]
    start, errors = starts[0], []
    if "<details>" not in text[start]:
        errors.append("the answers in words are not folded in <details>")
    for i in range(start + 1, len(cells)):
        if cells[i]["cell_type"] == "markdown" and re.match(r"#{1,3} ", text[i]):
            errors.append(f"cell {i} starts a new section after the reference solutions")
        hidden = cells[i].get("metadata", {}).get("jupyter", {})
        if cells[i]["cell_type"] == "code" and not (hidden.get("source_hidden") and hidden.get("outputs_hidden")):
            errors.append(f"cell {i} shows a reference answer: hide its source and output")
    for i in range(start):
        if cells[i]["cell_type"] == "code" and "getsource" in text[i]:
            errors.append(f"cell {i} prints a reference answer before the {HEADING!r} heading")
    for i, s in enumerate(text):
        for other in set(re.findall(r"flowlib\.exercises(?:\.| import )nb(\d\d)", s)) - {number}:
            errors.append(f"cell {i} imports the exercises of notebook {other}")
    return errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_reference_solutions_are_hidden_the_same_way(path):
    cells = json.loads(path.read_text())["cells"]
    assert scheme_errors(cells, path.name[:2]) == []


def test_the_scheme_rejects_a_visible_answer():
    # negative controls: a visible solution cell, a missing heading, and another notebook's module
    md = {"cell_type": "markdown", "source": [HEADING + "\n\n<details>...</details>"]}
    shown = {"cell_type": "code", "metadata": {}, "source": ["print(inspect.getsource(ex.answer_reference))"]}
    hidden = dict(shown, metadata={"jupyter": {"source_hidden": True, "outputs_hidden": True}})
    assert scheme_errors([md, hidden], "01") == []
    assert scheme_errors([md, shown], "01") == ["cell 1 shows a reference answer: hide its source and output"]
    assert scheme_errors([shown, md, hidden], "01") == [
        "cell 0 prints a reference answer before the '### Reference solutions' heading"]
    assert scheme_errors([hidden], "01") == [f"want one markdown cell starting with {HEADING!r}, found 0"]
    other = {"cell_type": "code", "metadata": {}, "source": ["from flowlib.exercises import nb03 as ex"]}
    assert scheme_errors([other, md], "01") == ["cell 0 imports the exercises of notebook 03"]
