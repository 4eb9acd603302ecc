"""`python -m flowlib.exercises.strip OUT`: a student copy of the notebooks, without the reference solutions.

Every notebook ends with one ``### Reference solutions`` section (``tests/exercises/test_notebook_scheme.py`` keeps
it so): the answers in words, then hidden code cells that run the reference answers. The copy drops that section,
from its heading to the end of the notebook, and keeps every other cell as it is, exercises and checks included.
The reference answers themselves stay in ``flowlib/exercises/nbNN.py``, where the checks need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HEADING = "### Reference solutions"


class StripError(ValueError):
    """A notebook or an output folder the command cannot use; the message says why."""


def strip_solutions(notebook: dict) -> tuple[dict, int]:
    """Return a copy of ``notebook`` (nbformat JSON) without its reference-solutions section, and how many cells went."""
    cells = notebook["cells"]
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "".join(c["source"]).startswith(HEADING)]
    if len(starts) != 1:
        raise StripError(f"want one markdown cell starting with {HEADING!r}, found {len(starts)}")
    return {**notebook, "cells": cells[: starts[0]]}, len(cells) - starts[0]


def student_copy(sources: list[Path], out: Path, force: bool = False) -> list[tuple[Path, int]]:
    """Write each notebook of ``sources`` into ``out`` without its solutions; return ``(written path, cells removed)``."""
    targets = [out / src.name for src in sources]
    for src, target in zip(sources, targets):
        if target.resolve() == src.resolve():
            raise StripError(f"{target} is the notebook itself: choose another output folder")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise StripError(f"{existing[0]} exists ({len(existing)} of {len(targets)} do): pass --force to overwrite them")
    stripped = []
    for src in sources:
        try:
            stripped.append(strip_solutions(json.loads(src.read_text())))
        except StripError as err:
            raise StripError(f"{src}: {err}") from None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for target, (notebook, removed) in zip(targets, stripped):
        target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        written.append((target, removed))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.exercises.strip", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the student copy (created if missing)")
    parser.add_argument("notebooks", type=Path, nargs="*",
                        help="notebooks to copy (default: every NN_*.ipynb in notebooks/ of this checkout)")
    parser.add_argument("--force", action="store_true", help="overwrite notebooks already in OUT")
    args = parser.parse_args(argv)
    sources = args.notebooks or sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        print("error: no notebooks given, and none found in notebooks/", file=sys.stderr)
        return 2
    try:
        written = student_copy(sources, args.out, args.force)
    except (StripError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, removed in written:
        print(f"{path}: {removed} solution cells removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
