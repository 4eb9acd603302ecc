"""Run the notebooks one after the other, as a student would, and table how long each takes.

Each notebook runs on a fresh kernel in notebooks/ (as in JupyterLab), in full mode unless
``--quick``. The table gives each notebook's wall time and its slowest cells; ``--json`` keeps
every cell's time. Run it on a quiet machine: anything else running slows every number.

    OMP_NUM_THREADS=2 python benchmarks/notebook_times.py --json benchmarks/results/notebook-times.json
    python benchmarks/notebook_times.py --only 03 06 --json /tmp/times.json   # some notebooks
    FLOWLIB_QUICK=1 python benchmarks/notebook_times.py --quick                # CI's quick mode
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def cell_seconds(cell) -> float | None:
    """Wall time of one executed code cell from nbclient's timing metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def first_line(cell) -> str:
    lines = [line for line in cell.source.splitlines() if line.strip() and not line.startswith("%")]
    return (lines[0] if lines else "").strip()[:70]


def run_notebook(path: Path, timeout: int, save: Path | None) -> dict:
    """Execute one notebook on a fresh kernel; its wall time, each code cell's time and first line."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # a failing notebook is reported, and the others still run
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    seconds = time.perf_counter() - start
    cells = [{"index": i, "seconds": cell_seconds(c), "first_line": first_line(c)}
             for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / path.name)
    return {"notebook": path.name, "seconds": seconds, "error": error, "cells": cells}


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s" if seconds >= 60 else f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="notebook numbers, e.g. 03 06 (default: all)")
    parser.add_argument("--quick", action="store_true", help="quick mode (sets FLOWLIB_QUICK=1 for the kernels)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    parser.add_argument("--json", type=Path, default=None, help="write every cell's time here")
    parser.add_argument("--save-executed", type=Path, default=None, help="write the executed notebooks to this folder")
    parser.add_argument("--slowest", type=int, default=3, help="slowest cells shown per notebook (default 3)")
    args = parser.parse_args(argv)

    if args.json is not None and args.json.exists():
        parser.error(f"{args.json} exists; delete it or pick another name")
    os.environ["FLOWLIB_QUICK"] = "1" if args.quick else "0"
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        wanted = {n.zfill(2) for n in args.only}
        paths = [p for p in paths if p.name[:2] in wanted]
        if not paths:
            parser.error(f"no notebook numbered {' '.join(sorted(wanted))} in {NOTEBOOKS}")

    results = []
    for path in paths:
        print(f"running {path.name} ({'quick' if args.quick else 'full'} mode) ...", flush=True)
        result = run_notebook(path, args.timeout, args.save_executed)
        results.append(result)
        slow = sorted((c for c in result["cells"] if c["seconds"] is not None), key=lambda c: -c["seconds"])
        tail = "; ".join(f"cell {c['index']} {minutes(c['seconds'])} ({c['first_line']})" for c in slow[: args.slowest])
        status = f"FAILED {result['error']}" if result["error"] else "ok"
        print(f"  {minutes(result['seconds'])}, {status}; slowest: {tail}", flush=True)

    print("\n| notebook | mode | time |\n|---|---|---|")
    for r in results:
        print(f"| {r['notebook']} | {'quick' if args.quick else 'full'} | {minutes(r['seconds'])}"
              f"{' (failed)' if r['error'] else ''} |")
    total = sum(r["seconds"] for r in results)
    print(f"| all | | {minutes(total)} |")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"mode": "quick" if args.quick else "full", "python": sys.version.split()[0], "machine": platform.machine(),
                "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "load_average_at_end": os.getloadavg(), "date": datetime.now().isoformat(timespec="seconds")}
        args.json.write_text(json.dumps({"meta": meta, "notebooks": results}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
