"""Helpers for tests/test_browser.py: a throw-away JupyterLab server and a few page helpers
that drive JupyterLab 4 in a real (headless) Chromium through Playwright's sync API.

Nothing here imports playwright at module level, so importing this file never fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The notebook tab that is in front (JupyterLab keeps other tabs in the DOM, hidden).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# Status bar item "Python 3 (ipykernel) | Idle" of the current notebook.
KERNEL_STATUS = '#jp-main-statusbar [title^="Change kernel for"]'
# JupyterLab 4 renders both stderr streams and exceptions (error outputs) with this MIME type.
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR = '[data-mime-type="application/vnd.jupyter.error"]'


def find_chromium() -> str | None:
    """/usr/bin/chromium, else whatever chromium is on PATH, else None."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_notebook(src: Path, dst: Path) -> None:
    """Copy a notebook with outputs, execution counts and saved widget state stripped, and the
    kernel set to the server's own python3, so that what the browser shows comes from this run
    and no "Select kernel" dialog can appear."""
    nb = json.loads(Path(src).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    meta = nb.setdefault("metadata", {})
    meta.pop("widgets", None)
    meta["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    Path(dst).write_text(json.dumps(nb, indent=1), encoding="utf-8")


def write_notebook(path: Path, sources: list[str]) -> None:
    """A minimal nbformat-4 notebook of code cells."""
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [], "source": src}
        for i, src in enumerate(sources)
    ]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    Path(path).write_text(json.dumps(nb, indent=1), encoding="utf-8")


class LabServer:
    """``python -m jupyterlab`` on 127.0.0.1:<free port>, no token, no password, serving ``root``,
    with every Jupyter/IPython config, runtime, settings and workspace folder under ``home`` so
    nothing of the user's setup leaks in. Its output goes to ``home/server.log``."""

    def __init__(self, root: Path, home: Path, extra_env: dict[str, str] | None = None):
        self.root, self.home = Path(root), Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "server.log"
        self.proc: subprocess.Popen | None = None
        self.extra_env = extra_env or {}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
        dirs = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "IPYTHONDIR": "ipython",
            "JUPYTERLAB_SETTINGS_DIR": "user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        }
        for var, sub in dirs.items():
            env[var] = str(self.home / sub)
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        env.pop("PYTHONSTARTUP", None)
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        env.update(self.extra_env)
        return env

    def _write_config(self) -> None:
        # No "get notified about Jupyter news?" toast covering the notebook.
        labconfig = self.home / "config" / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
        )
        # Keep every cell attached to the DOM, so error outputs anywhere in the notebook are found.
        tracker = self.home / "user-settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))

    def start(self, timeout: float = 90.0) -> None:
        self._write_config()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.home / 'user-settings'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")  # the child keeps its own copy of the descriptor
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"JupyterLab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (the server then shuts its kernels down), then SIGKILL to the whole process
        group (server and kernels, which it started in its own session) if it lingers."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: start_new_session=True
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


# ---------------------------------------------------------------------------- page helpers


def open_notebook(page, lab: LabServer, name: str, timeout_ms: int = 90_000) -> None:
    """Open ``name`` in a fresh workspace and wait until its kernel reports Idle."""
    page.goto(f"{lab.url}/lab/tree/{name}?reset", wait_until="domcontentloaded")
    page.locator(f"{PANEL} .jp-Cell").first.wait_for(timeout=timeout_ms)
    wait_kernel_idle(page, timeout_ms)


def wait_kernel_idle(page, timeout_ms: int = 90_000) -> None:
    from playwright.sync_api import expect

    expect(page.locator(KERNEL_STATUS)).to_have_text(re.compile(r"\|\s*Idle\s*$"), timeout=timeout_ms)


def run_all_cells(page) -> None:
    """Run > Run All Cells, clicked in JupyterLab's menu bar."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


_RUN_FINISHED_JS = """
([panelSel, statusSel]) => {
  const panel = document.querySelector(panelSel);
  if (!panel) return false;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
  // Run All marks every code cell [*] at once; when nothing is pending any more and something
  // got an execution count, the run is over (it stops early at the first exception).
  if (prompts.some(p => p.includes('*')) || !prompts.some(p => /\\[\\d+\\]/.test(p))) return false;
  const status = document.querySelector(statusSel);
  return !!status && /\\|\\s*Idle\\s*$/.test(status.textContent);
}
"""


def wait_run_finished(page, timeout_ms: int = 240_000) -> None:
    page.wait_for_function(_RUN_FINISHED_JS, arg=[PANEL, KERNEL_STATUS], timeout=timeout_ms, polling=250)


_UNEXECUTED_JS = """
(panelSel) => {
  const cells = [...document.querySelectorAll(panelSel + ' .jp-CodeCell')];
  const out = [];
  cells.forEach((cell, i) => {
    const prompt = cell.querySelector('.jp-InputArea-prompt')?.textContent ?? '';
    const source = (cell.querySelector('.cm-content')?.innerText ?? '').trim();
    if (source && !/\\[\\d+\\]/.test(prompt)) {
      out.push(`code cell ${i + 1} (${prompt.trim() || 'no prompt'}): ${source.slice(0, 80)}`);
    }
  });
  return out;
}
"""


def unexecuted_code_cells(page) -> list[str]:
    """Non-empty code cells of the current notebook without an execution count."""
    return page.evaluate(_UNEXECUTED_JS, PANEL)


_ERRORS_JS = """
([panelSel, stderrSel, errorSel]) => {
  const panel = document.querySelector(panelSel);
  if (!panel) return ['(no notebook panel found)'];
  const found = [];
  for (const el of panel.querySelectorAll('.jp-OutputArea-output')) {
    if (el.querySelector('.jp-OutputArea-output')) continue;  // a widget holding outputs: look at those
    const text = el.innerText || el.textContent || '';
    const isErr = el.matches(errorSel) || el.querySelector(errorSel);
    const isStderr = el.matches(stderrSel);
    if (isErr
        || (isStderr && (/Traceback/.test(text) || /\\b\\w*Error\\b/.test(text)))
        || /Traceback \\(most recent call last\\)|Error displaying widget|Failed to load model/.test(text)) {
      found.push(text.trim());
    }
  }
  return found;
}
"""


def error_outputs(page) -> list[str]:
    """Texts of the outputs of the current notebook that show an exception: JupyterLab 4 renders
    an error output as ``.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]``
    holding the traceback, also inside ``ipywidgets.Output`` widgets (where ``Output.capture()``
    puts the exceptions of widget callbacks); widget views that failed to render say
    "Error displaying widget"."""
    return page.evaluate(_ERRORS_JS, [PANEL, STDERR, ERROR])


_SETTLED_JS = """
([sel, statusSel, quietMs]) => {
  const el = document.querySelector(sel);
  const status = document.querySelector(statusSel);
  if (!el || !el.complete || !el.naturalWidth || !status || !/\\|\\s*Idle\\s*$/.test(status.textContent)) {
    window.__flowlibSettle = null;
    return false;
  }
  const now = performance.now();
  const s = window.__flowlibSettle;
  if (!s || s.src !== el.src) { window.__flowlibSettle = {src: el.src, since: now}; return false; }
  return now - s.since >= quietMs;
}
"""


def wait_image_settled(page, selector: str, quiet_ms: int = 400, timeout_ms: int = 60_000) -> None:
    """Wait until the <img> has loaded, the kernel is idle, and its src has not changed for
    ``quiet_ms`` (a moved slider with continuous_update may send several updates)."""
    page.evaluate("() => { window.__flowlibSettle = null; }")
    page.wait_for_function(_SETTLED_JS, arg=[selector, KERNEL_STATUS, quiet_ms], timeout=timeout_ms, polling=100)
