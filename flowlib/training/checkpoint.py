"""Saving and loading trained flows safely (notebook 06).

A checkpoint is a plain dictionary that ``torch.load(weights_only=True)`` can read (no
pickled code runs on loading): the model config, the weights, the optimizer state, the
step, metrics, the dataset name and the flowlib version. Saving is atomic: the file is
written under a temporary name in the same folder and renamed over the target, so an
interrupted save never leaves half a checkpoint behind.

Shipped checkpoints live in ``data/checkpoints/`` and are listed with their sha256 in
``data/checkpoints/SHA256SUMS`` (``sha256sum`` format); :func:`fit_or_load` checks it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ..models.multiscale import FlowConfig, MultiScaleFlow

__all__ = ["CheckpointError", "export_checkpoint", "save_checkpoint", "load_checkpoint", "read_checkpoint", "sha256_of",
           "shipped_checkpoint", "checkpoint_dir", "verify_sha256", "write_atomically",
           "is_listed"]

FORMAT = "flowlib-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not match what was asked for."""


def checkpoint_dir() -> Path:
    """``data/checkpoints`` of this checkout (``$FLOWLIB_DATA/checkpoints`` if that is set)."""
    from ..data.images import data_root

    return data_root() / "checkpoints"


def _non_finite(state: dict[str, torch.Tensor]) -> tuple[int, str | None]:
    """Number of NaN/inf entries in the floating-point tensors of ``state`` and the first tensor holding one."""
    count, first = 0, None
    for name, v in state.items():
        if torch.is_tensor(v) and v.is_floating_point():
            bad = int((~torch.isfinite(v)).sum())
            if bad and first is None:
                first = name
            count += bad
    return count, first


def _all_finite(state: dict[str, torch.Tensor]) -> bool:
    return _non_finite(state)[0] == 0


def save_checkpoint(path: str | Path, model: MultiScaleFlow, *, dataset: str, step: int = 0,
                    optimizer: torch.optim.Optimizer | None = None, metrics: dict[str, Any] | None = None,
                    history: dict[str, Any] | None = None, half: bool = False,
                    train_weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (and optionally its optimizer) to ``path`` atomically and return the path.

    ``half=True`` stores floating-point weights as float16 to ship a smaller file (no optimizer).
    ``train_weights``: when ``model`` holds an average of the weights (``TrainConfig.ema``), the
    weights the optimizer is training, stored beside it so that ``--resume`` goes on from them
    (dropped with the optimizer by ``half=True``). Refuses to save non-finite weights.
    """
    from ..config import __version__
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not _all_finite(state):
        raise CheckpointError("refusing to save a checkpoint: the model has NaN or infinite weights")
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        if not _all_finite(state):
            raise CheckpointError("refusing to save a half-precision checkpoint: some weights overflow float16; "
                                  "save it with half=False")
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flowlib_version": __version__,
        "dataset": dataset,
        "config": model.config.to_dict(),
        "model": state,
        "step": int(step),
        "metrics": dict(metrics or {}),
        "history": dict(history or {}),
        "optimizer": optimizer.state_dict() if (optimizer is not None and not half) else None,
        "half": bool(half),
    }
    if train_weights is not None and not half:
        ckpt["train_weights"] = {k: v.detach().cpu() for k, v in train_weights.items()}
        if not _all_finite(ckpt["train_weights"]):
            raise CheckpointError("refusing to save a checkpoint: the trained weights are NaN or infinite")
    return write_atomically(path, lambda f: torch.save(ckpt, f))


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it over ``path``.

    Readers see the old file or the complete new one, never a half-written one; on any
    error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate the checkpoint dictionary (weights_only=True), without building a model."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; give the path of a .pt file")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then rejects anyway
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as err:
        raise CheckpointError(f"cannot read {path}: permission denied") from err
    except Exception as err:  # torch's own message would suggest unsafe loading; say what is wrong instead
        raise CheckpointError(f"{path} is corrupt or not a flowlib checkpoint ({_damage(path, err)}); "
                              f"restore it from where it came from, or re-train it") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a flowlib checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {ckpt.get('format_version')}, "
                              f"this flowlib reads {FORMAT_VERSION}")
    for key in ("config", "model", "dataset", "step"):
        if key not in ckpt:
            raise CheckpointError(f"{path} lacks '{key}'")
    state = ckpt["model"]
    if not isinstance(ckpt["config"], dict) or not isinstance(state, dict) or not all(map(torch.is_tensor, state.values())):
        raise CheckpointError(f"{path} is damaged: its 'config' or 'model' entry is not what flowlib writes")
    ckpt.setdefault("metrics", {})
    ckpt.setdefault("history", {})
    bad, first = _non_finite(state)
    if bad:
        raise CheckpointError(f"{path} holds {bad} NaN or infinite weights (the first in {first!r}), so it cannot "
                              f"be used; restore it from where it came from, or re-train it")
    return ckpt


def _damage(path: Path, err: Exception) -> str:
    """A short, safe description of why ``torch.load`` rejected ``path``."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    if isinstance(err, (EOFError, OSError)) or (isinstance(err, RuntimeError) and "zip archive" in str(err)):
        return f"truncated or damaged: {size:,} bytes that are not a complete archive"
    if isinstance(err, (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, RuntimeError)):
        return "damaged contents, or objects that a flowlib checkpoint never holds"
    return f"unreadable ({type(err).__name__})"


def load_checkpoint(path: str | Path, *, expected_config: FlowConfig | None = None, dataset: str | None = None,
                    device: torch.device | str = "cpu") -> tuple[MultiScaleFlow, dict[str, Any]]:
    """Build the model stored in ``path`` and return ``(model, checkpoint_dict)``.

    Raises :class:`CheckpointError` when the file is corrupt, when its config differs from
    ``expected_config``, when it was trained on another ``dataset``, or when its weights do
    not fit its config.
    """
    ckpt = read_checkpoint(path)
    if "kind" in ckpt["config"]:  # only flowlib.training.train_fm writes one
        raise CheckpointError(f"{path} holds a {ckpt['config']['kind']} field (notebook 11), not a multi-scale flow; "
                              f"load it with flowlib.training.train_fm.load_field_checkpoint")
    try:
        config = FlowConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} holds an invalid model config: {err}") from err
    if expected_config is not None and config != expected_config:
        diff = {k: (v, getattr(config, k)) for k, v in expected_config.to_dict().items() if getattr(config, k) != v}
        raise CheckpointError(f"{path} was trained with another config; differences (expected, found): {diff}")
    if dataset is not None and ckpt["dataset"] != dataset:
        raise CheckpointError(f"{path} was trained on {ckpt['dataset']!r}, not {dataset!r}")
    model = MultiScaleFlow(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not match the model config: {err}") from err
    return model.to(device).eval(), ckpt


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _listed_hashes(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0]
    return out


def is_listed(path: str | Path) -> bool:
    """True when ``path`` is named in the ``SHA256SUMS`` of its folder, i.e. it is a shipped file."""
    path = Path(path)
    return path.name in _listed_hashes(path.parent)


def verify_sha256(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is listed in its folder's SHA256SUMS with this hash."""
    path = Path(path)
    listed = _listed_hashes(path.parent).get(path.name)
    if listed is None:
        raise CheckpointError(f"{path.name} is not listed in {path.parent / 'SHA256SUMS'}")
    actual = sha256_of(path)
    if actual != listed:
        raise CheckpointError(f"{path} is damaged or was replaced: sha256 {actual[:12]}... "
                              f"but SHA256SUMS lists {listed[:12]}...; restore it (git checkout {path}) or delete it")


def shipped_checkpoint(dataset: str, folder: str | Path | None = None) -> Path | None:
    """Path of the shipped checkpoint for ``dataset`` (``<dataset>.pt``) if it exists, else None."""
    if folder is not None and not Path(folder).is_dir():  # a typo here would otherwise mean "train from scratch"
        raise CheckpointError(f"there is no folder {folder}; give the folder that holds the shipped checkpoints, "
                              f"or leave it out for {checkpoint_dir()}")
    folder = Path(folder) if folder is not None else checkpoint_dir()
    path = folder / f"{dataset}.pt"
    return path if path.is_file() else None


def export_checkpoint(src: str | Path, dst: str | Path, half: bool = False) -> Path:
    """Re-save ``src`` for shipping: same weights, config, step, metrics and history, no optimizer state.

    ``half=True`` stores the weights in float16 (half the size; loads back as float32).
    """
    model, ckpt = load_checkpoint(src)
    return save_checkpoint(dst, model, dataset=ckpt["dataset"], step=ckpt["step"], metrics=ckpt["metrics"],
                           history=ckpt["history"], half=half)
