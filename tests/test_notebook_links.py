"""Links from one notebook to another point at notebooks that exist (a renamed notebook must not leave dead links)."""

from __future__ import annotations

import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LINK = re.compile(r"\]\(([^)#\s]+\.ipynb)(?:#[^)]*)?\)")


def dead_links(cells: list[dict], folder: Path) -> list[str]:
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return [target for target in LINK.findall(text) if not (folder / target).exists()]


def test_every_link_between_notebooks_resolves():
    found = 0
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert dead_links(cells, NOTEBOOKS) == [], path.name
        found += len(LINK.findall("".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    assert found >= 5  # notebook 01 links to the notebooks that measure its claims


def test_a_dead_link_is_reported():
    cells = [{"cell_type": "markdown", "source": ["see [06](06_multiscale_flow.ipynb) and [99](99_gone.ipynb#top)"]}]
    assert dead_links(cells, NOTEBOOKS) == ["99_gone.ipynb"]
