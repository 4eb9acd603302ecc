"""requirements.txt, environment.yml and pyproject.toml must not drift apart."""

from __future__ import annotations

import re
import tomllib

from .conftest import ROOT


def _requirements(lines):
    """``{name: version spec}`` from requirement lines (comments, blanks and ``-e .`` skipped)."""
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        line = line[2:].strip() if line.startswith("- ") else line
        m = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*)\s*([<>=!~].*)?$", line)
        if m:
            out[m.group(1).lower()] = (m.group(2) or "").replace(" ", "")
    return out


def test_requirements_and_environment_name_the_same_packages():
    req = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    env_lines = (ROOT / "environment.yml").read_text().split("- pip:")[1].splitlines()
    env = _requirements(env_lines)
    assert req == env
    for name in ("torch", "torchvision", "jupyterlab", "matplotlib", "ipywidgets", "numpy", "nbval", "pytest", "tqdm",
                 "torchdiffeq", "scikit-learn", "pillow"):
        assert name in req, name


def test_pyproject_dependencies_match_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    req = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    for dep in project["dependencies"]:
        name, spec = re.match(r"^([A-Za-z0-9_.-]+)(.*)$", dep).groups()
        assert req[name.lower()] == spec.replace(" ", ""), name


def test_installed_torch_is_within_the_bounds():
    import torch

    major, minor, patch = (int(p) for p in re.match(r"(\d+)\.(\d+)\.(\d+)", torch.__version__).groups())
    assert (2, 4, 0) <= (major, minor, patch) <= (2, 14, 1)
