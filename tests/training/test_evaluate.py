from __future__ import annotations

import json

import pytest
import torch

from flowlib.training import evaluate
from flowlib.training.checkpoint import read_checkpoint, save_checkpoint
from flowlib.training.evaluate import evaluate_bpd

from ..conftest import require_dataset
from ..models.test_multiscale import tiny
from .test_train_cli import assert_user_error, checkpoint_28, files


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = evaluate.main([*argv, "--no-progress"])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_bpd_matches_the_model_and_rejects_what_cannot_be_averaged():
    model, x = tiny()
    torch.manual_seed(0)
    expected = model.bits_per_dim(x).double().mean().item()
    torch.manual_seed(0)
    assert evaluate_bpd(model, x, batch_size=4) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="no images to evaluate"):
        evaluate_bpd(model, x[:0])
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        evaluate_bpd(model, x, batch_size=0)


@pytest.mark.parametrize("argv, fragment", [
    (["--limit", "-9990"], "--limit must be >= 1 (the number of images to use), got -9990"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--importance-samples", "0"], "--importance-samples must be >= 1, got 0"),
    (["--device", "abacus"], "--device 'abacus' is not a device"),
    (["--split", "validation"], "argument --split: invalid choice: 'validation'"),
])
def test_bad_options(tmp_path, capsys, argv, fragment):
    ckpt = checkpoint_28(tmp_path / "c.pt")
    code, out, err = run(capsys, "--checkpoint", str(ckpt), *argv)
    assert_user_error(code, err, fragment)
    assert out == "" and sorted(files(tmp_path)) == ["c.pt"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickle", "missing", "folder"])
def test_a_damaged_checkpoint_is_one_line_that_never_suggests_unsafe_loading(tmp_path, capsys, damage):
    good = checkpoint_28(tmp_path / "good.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        bad.write_bytes(bytes(range(256)) * 8)
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "pickle":  # a plain pickle, not a torch zip archive: torch's message would say weights_only=False
        import pickle

        bad.write_bytes(pickle.dumps({"format": "flowlib-checkpoint"}, protocol=4))
    target = tmp_path if damage == "folder" else bad
    code, _, err = run(capsys, "--checkpoint", str(target))
    assert_user_error(code, err)
    assert "weights_only" not in err and "pickle" not in err.lower() and "miniz" not in err
    expected = {"missing": "no checkpoint at", "folder": "is a folder", "empty": "(the file is empty)"}
    assert expected.get(damage, "is corrupt or not a flowlib checkpoint") in err


def test_a_checkpoint_of_an_unknown_dataset_or_image_size(tmp_path, capsys):
    ckpt = checkpoint_28(tmp_path / "c.pt", dataset="cifar10")
    code, _, err = run(capsys, "--checkpoint", str(ckpt))
    assert_user_error(code, err, "was trained on 'cifar10', which this command cannot load (it knows fashion-mnist, mnist)")
    model, _ = tiny()  # 8x8 images
    small = save_checkpoint(tmp_path / "small.pt", model, dataset="mnist")
    code, _, err = run(capsys, "--checkpoint", str(small))
    assert_user_error(code, err, "holds a model of 1x8x8 images, but mnist images are 1x28x28")


def test_nan_weights_are_blamed_on_the_checkpoint(tmp_path, capsys):
    ckpt = read_checkpoint(checkpoint_28(tmp_path / "c.pt"))
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][name] = torch.full_like(ckpt["model"][name], float("nan"))
    torch.save(ckpt, tmp_path / "nan.pt")
    code, _, err = run(capsys, "--checkpoint", str(tmp_path / "nan.pt"))
    assert_user_error(code, err, "nan.pt holds", f"NaN or infinite weights (the first in '{name}')", "re-train it")
    assert "non-finite values" not in err


def test_limit_evaluates_exactly_that_many_images(tmp_path, capsys):
    require_dataset("MNIST")
    ckpt = checkpoint_28(tmp_path / "c.pt")
    code, out, err = run(capsys, "--checkpoint", str(ckpt), "--limit", "7", "--batch-size", "3", "--device", "cpu",
                         "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["n"] == 7 and result["dataset"] == "mnist" and 0 < result["bpd"] < 12
