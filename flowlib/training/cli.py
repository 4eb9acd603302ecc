"""What the command lines share: one-line errors for a user's mistakes (notebook 06, README).

``python -m flowlib.train``, ``flowlib.training.evaluate``, ``flowlib.training.bench`` and ``flowlib.apps.figures``
follow one rule: a mistake of the user (an option value that cannot work, a missing or
damaged file, an output that would replace something) ends the program with exit code 2
and a single line ``error: <what is wrong and what to do>`` on stderr, without a
traceback, before any work is done and before any file is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import torch

from ..config import default_device

__all__ = ["UsageError", "Parser", "fail", "device", "require", "output_file", "option_message"]


class UsageError(ValueError):
    """A command-line argument that cannot work; the message says what to do instead."""


def fail(err: BaseException | str) -> int:
    """Print ``error: <err>`` (one line) to stderr and return the exit code 2."""
    message = " ".join(str(err).split("\n"))
    print(f"error: {message}", file=sys.stderr)
    return 2


def require(ok: bool, message: str) -> None:
    """Raise :class:`UsageError` with ``message`` unless ``ok``."""
    if not ok:
        raise UsageError(message)


def device(name: str | None) -> torch.device:
    """The device ``--device name`` asks for, checked to exist here; the best available when ``None``."""
    if name is None:
        return default_device()
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r} is not a device; use cpu, cuda or mps, or leave --device out") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is available here; use --device cpu or leave --device out")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"numbered from 0")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise UsageError(f"--device {name}: Apple's MPS is not available here; use --device cpu or leave --device out")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: flowlib runs on cpu, cuda or mps")
    return dev


def output_file(path: str | Path, *, force: bool = False, option: str = "--out", may_replace: str | Path | None = None,
                hint: str = "pass --force to replace it", example: str = "run.pt") -> Path:
    """Check, before any work, that ``path`` can be written without destroying anything.

    An existing file is refused unless ``force`` or it is ``may_replace`` (the file a run
    resumes from); a folder is refused; so is a place that cannot be written to.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name inside it, such as {path / example}")
    if path.exists() and not force and not (may_replace is not None and _same_file(path, Path(may_replace))):
        raise UsageError(f"{option} {path} already exists; {hint}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folders save_checkpoint would create start below this one
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a folder; choose another place")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write into {parent} (permission denied); choose another place")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def option_message(err: Exception, names: Iterable[str]) -> str:
    """``"steps must be ..."`` -> ``"--steps must be ..."`` when the message starts with one of ``names``."""
    message = str(err)
    head, sep, rest = message.partition(" ")
    return f"--{head.replace('_', '-')}{sep}{rest}" if head in set(names) else message


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``error: ...``, with exit code 2 (not the usage text)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; `{self.prog} --help` lists the options\n")
