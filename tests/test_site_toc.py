"""The website's sources, checked without building it: every notebook is in the table of contents of
site/index.md, and every module of the subpackages that flowlib/__init__.py lists is on the API page."""

from __future__ import annotations

import re
from pathlib import Path

import flowlib

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"


def toctree_entries(markdown: str) -> list[str]:
    """The documents named in the ```{toctree} blocks of a MyST page (option lines and blank lines skipped)."""
    entries = []
    for block in re.findall(r"^```\{toctree\}[^\n]*\n(.*?)^```", markdown, flags=re.S | re.M):
        entries += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")]
    return entries


def missing_notebooks(entries: list[str], notebooks: list[Path]) -> list[str]:
    """The notebooks that no toctree entry names, as notebooks/<stem>."""
    listed = set(entries)
    return [f"notebooks/{nb.stem}" for nb in notebooks if f"notebooks/{nb.stem}" not in listed]


def test_every_notebook_is_in_the_table_of_contents():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 11
    entries = toctree_entries((SITE / "index.md").read_text(encoding="utf-8"))
    assert not missing_notebooks(entries, notebooks), "add them to the toctree of site/index.md"
    assert len(entries) == len(set(entries)), "a document is listed twice"
    # the landing page's table links each one too
    index = (SITE / "index.md").read_text(encoding="utf-8")
    assert all(f"(notebooks/{nb.name})" in index for nb in notebooks), "link each notebook in the table of site/index.md"


def test_the_toc_check_catches_a_missing_notebook():
    """Negative control: the same check on a toctree that lost one notebook."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    entries = toctree_entries((SITE / "index.md").read_text(encoding="utf-8"))
    doctored = [e for e in entries if e != "notebooks/03_dequantization"]
    assert missing_notebooks(doctored, notebooks) == ["notebooks/03_dequantization"]
    assert toctree_entries("no toctree here") == []


def test_every_module_is_on_the_api_page():
    # the subpackages the package docstring lists, from the bottom up
    listed = re.findall(r"^- ``(\w+)``:", flowlib.__doc__, flags=re.M)
    assert "core" in listed and "apps" in listed
    api = (SITE / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodule:: ([\w.]+)", api, flags=re.M))
    missing = []
    for name in listed:
        folder = ROOT / "flowlib" / name
        inside = [p.stem for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]  # none for config.py
        modules = [f"flowlib.{name}"] + [f"flowlib.{name}.{stem}" for stem in inside]
        missing += [m for m in modules if m not in documented]
    assert not missing, f"add to site/api.md: {missing}"


def test_every_notebook_has_its_picture_on_the_landing_page():
    """site/thumbnails.py writes site/_static/thumbs/NN.png from a full build; the landing table shows each one."""
    index = (SITE / "index.md").read_text(encoding="utf-8")
    numbers = [nb.name[:2] for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    missing = [n for n in numbers if not (SITE / "_static" / "thumbs" / f"{n}.png").exists()]
    assert not missing, f"no picture for notebooks {missing}: run site/thumbnails.py on a built site with --write"
    unshown = [n for n in numbers if f'src="_static/thumbs/{n}.png"' not in index]
    assert not unshown, f"the landing table of site/index.md does not show the pictures of {unshown}"
