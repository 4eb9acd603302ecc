from __future__ import annotations

import hashlib

import pytest
import torch

from flowlib.models.multiscale import FlowConfig, MultiScaleFlow
from flowlib.training.checkpoint import (
    CheckpointError,
    is_listed,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    shipped_checkpoint,
    verify_sha256,
    write_atomically,
)

from ..models.test_multiscale import TINY, tiny


def saved(tmp_path, **kw):
    model, x = tiny(**kw)
    path = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist", step=7, metrics={"test_bpd": 1.5})
    return model, x, path


def test_round_trip_gives_identical_log_prob_and_keeps_actnorm(tmp_path):
    model, x, path = saved(tmp_path, dequantization="variational")
    loaded, ckpt = load_checkpoint(path)
    assert ckpt["step"] == 7 and ckpt["dataset"] == "mnist" and ckpt["metrics"]["test_bpd"] == 1.5
    assert ckpt["flowlib_version"] and ckpt["config"] == model.config.to_dict()
    torch.manual_seed(3)
    a = model.log_prob(x)
    torch.manual_seed(3)
    b = loaded.log_prob(x)  # would differ if ActNorm re-initialised on this batch
    assert torch.equal(a, b)
    assert all(bool(m.initialized) for m in loaded.modules() if hasattr(m, "initialized"))


def test_file_loads_with_weights_only(tmp_path):
    _, _, path = saved(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "flowlib-checkpoint"


def test_half_precision_checkpoint_is_smaller_and_close(tmp_path):
    model, x, path = saved(tmp_path)
    half = save_checkpoint(tmp_path / "h.pt", model, dataset="mnist", half=True)
    assert half.stat().st_size < path.stat().st_size
    loaded, _ = load_checkpoint(half)
    torch.manual_seed(0)
    a = model.bits_per_dim(x)
    torch.manual_seed(0)
    assert torch.allclose(loaded.bits_per_dim(x), a, atol=1e-2)


def test_interrupted_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    model, x, path = saved(tmp_path)
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, dataset="mnist", step=8)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_raise_a_clear_error(tmp_path, damage):
    _, _, path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 100, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="corrupt or not a flowlib checkpoint") as exc:
        load_checkpoint(path)
    message = str(exc.value)
    assert "\n" not in message and "weights_only" not in message and "re-train it" in message


def test_a_pickle_that_torch_rejects_gives_our_message_and_no_warning(tmp_path, recwarn):
    import pickle

    path = tmp_path / "p.pt"
    path.write_bytes(pickle.dumps({"format": "flowlib-checkpoint", "step": 1}, protocol=4))
    with pytest.raises(CheckpointError, match="damaged contents, or objects that a flowlib checkpoint never holds") as exc:
        read_checkpoint(path)
    assert "weights_only" not in str(exc.value) and len(recwarn) == 0


def test_non_finite_weights_are_refused_on_loading(tmp_path):
    _, _, path = saved(tmp_path)
    ckpt = read_checkpoint(path)
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point() and v.numel() >= 3)
    ckpt["model"][name] = ckpt["model"][name].clone()
    ckpt["model"][name].view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    torch.save(ckpt, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=f"holds 3 NaN or infinite weights \\(the first in '{name}'\\)"):
        load_checkpoint(tmp_path / "nan.pt")


def test_half_precision_overflow_is_refused(tmp_path):
    model = MultiScaleFlow(TINY)
    with torch.no_grad():
        next(model.parameters()).fill_(1e6)  # finite in float32, inf in float16
    with pytest.raises(CheckpointError, match="overflow float16; save it with half=False"):
        save_checkpoint(tmp_path / "h.pt", model, dataset="mnist", half=True)
    assert list(tmp_path.iterdir()) == []


def test_entries_flowlib_always_writes_are_required(tmp_path):
    _, _, path = saved(tmp_path)
    ckpt = read_checkpoint(path)
    del ckpt["step"]
    torch.save(ckpt, tmp_path / "nostep.pt")
    with pytest.raises(CheckpointError, match="lacks 'step'"):
        read_checkpoint(tmp_path / "nostep.pt")
    ckpt = read_checkpoint(path)
    ckpt["config"] = "hidden=8"
    torch.save(ckpt, tmp_path / "badconfig.pt")
    with pytest.raises(CheckpointError, match="its 'config' or 'model' entry is not what flowlib writes"):
        read_checkpoint(tmp_path / "badconfig.pt")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)


def test_write_atomically_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.bin"
    write_atomically(path, lambda f: f.write(b"old"))
    assert path.read_bytes() == b"old"

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_other_files_and_missing_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a flowlib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_mismatched_config_dataset_and_weights(tmp_path):
    _, _, path = saved(tmp_path)
    other = FlowConfig(**{**TINY.to_dict(), "hidden": 16})
    with pytest.raises(CheckpointError, match="another config.*hidden"):
        load_checkpoint(path, expected_config=other)
    with pytest.raises(CheckpointError, match="trained on 'mnist', not 'fashion-mnist'"):
        load_checkpoint(path, dataset="fashion-mnist")
    ckpt = read_checkpoint(path)
    ckpt["config"]["hidden"] = 16  # weights no longer fit the config
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not match the model config"):
        load_checkpoint(tmp_path / "bad.pt")
    ckpt["config"]["colour"] = "red"
    torch.save(ckpt, tmp_path / "bad2.pt")
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_checkpoint(tmp_path / "bad2.pt")


def test_refuses_to_save_non_finite_weights(tmp_path):
    model = MultiScaleFlow(TINY)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(tmp_path / "nan.pt", model, dataset="mnist")
    assert not (tmp_path / "nan.pt").exists()


def test_sha256_list(tmp_path):
    _, _, path = saved(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError, match="not listed"):
        verify_sha256(path)
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  m.pt\n")
    verify_sha256(path)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  m.pt\n")
    with pytest.raises(CheckpointError, match="damaged or was replaced"):
        verify_sha256(path)
    assert shipped_checkpoint("m", tmp_path) == path and shipped_checkpoint("x", tmp_path) is None
    assert is_listed(path) and not is_listed(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="there is no folder"):
        shipped_checkpoint("m", tmp_path / "typo")


def test_export_drops_the_optimizer_and_keeps_the_rest(tmp_path):
    from flowlib.training.checkpoint import export_checkpoint

    model, x = tiny()
    opt = torch.optim.Adam(model.parameters())
    model.bits_per_dim(x).mean().backward()
    opt.step()
    src = save_checkpoint(tmp_path / "full.pt", model, dataset="mnist", step=5, optimizer=opt, metrics={"test_bpd": 2.0})
    dst = export_checkpoint(src, tmp_path / "ship.pt")
    ckpt = read_checkpoint(dst)
    assert ckpt["optimizer"] is None and ckpt["step"] == 5 and ckpt["metrics"]["test_bpd"] == 2.0
    assert dst.stat().st_size < src.stat().st_size
    loaded, _ = load_checkpoint(dst)
    torch.manual_seed(0)
    a = model.log_prob(x)
    torch.manual_seed(0)
    assert torch.equal(a, loaded.log_prob(x))


def test_every_shipped_checkpoint_is_listed_small_and_what_its_name_says():
    from ..conftest import ROOT

    folder = ROOT / "data" / "checkpoints"
    shipped = sorted(folder.glob("*.pt"))
    if not shipped:
        pytest.skip("no shipped checkpoints in this checkout")
    listed = {line.split()[1] for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip()}
    assert listed == {p.name for p in shipped}   # nothing listed that is missing, nothing shipped unlisted
    for path in shipped:
        verify_sha256(path)
        assert path.stat().st_size <= 10 * 2**20, path.name
        kind = path.stem.removeprefix("fashion-mnist-").removeprefix("mnist-")
        if kind in ("class", "lowres", "mask"):
            model, _ = load_checkpoint(path)
            assert model.config.condition == kind, path.name
