"""``python -m flowlib.train`` and ``TrainConfig`` given bad input: one error line, exit code 2, no file touched."""

from __future__ import annotations

import hashlib

import pytest
import torch

from flowlib.models.multiscale import FlowConfig, MultiScaleFlow
from flowlib.training import train as train_mod
from flowlib.training.checkpoint import CheckpointError, checkpoint_dir, load_checkpoint, save_checkpoint
from flowlib.training.train import TrainConfig, fit_or_load

from ..conftest import require_dataset

SMALL = ["--hidden", "4", "--steps-per-level", "1", "--limit-train", "64", "--eval-images", "16", "--batch-size", "8",
         "--device", "cpu", "--no-progress"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m flowlib.train argv``."""
    try:
        code = train_mod.main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def checkpoint_28(path, step: int = 3, dataset: str = "mnist"):
    """A small 28x28 checkpoint that the command line can resume (no data needed to write it)."""
    torch.manual_seed(0)
    model = MultiScaleFlow(FlowConfig(hidden=4, steps_per_level=1))
    model.log_prob(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
    return save_checkpoint(path, model, dataset=dataset, step=step)


@pytest.mark.parametrize("argv, fragment", [
    (["--steps", "-5"], "--steps must be >= 1, got -5"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be a whole number >= 1, got 0"),
    (["--lr", "-1"], "--lr must be a number > 0, got -1.0"),
    (["--lr", "nan"], "--lr must be a number > 0, got nan"),
    (["--alpha", "0.7"], "--alpha must be in [0, 0.5), got 0.7"),
    (["--hidden", "0"], "--hidden must be a whole number >= 1, got 0"),
    (["--levels", "3"], "size 28 must be divisible by 2**levels = 8"),
    (["--eval-images", "0"], "--eval-images must be a whole number >= 1, got 0"),
    (["--limit-train", "0"], "--limit-train must be a whole number >= 1, got 0"),
    (["--warmup-steps", "-1"], "--warmup-steps must be a whole number >= 0, got -1"),
    (["--clip-grad", "0"], "--clip-grad must be a number > 0, got 0.0"),
    (["--split-prior", "maybe"], "argument --split-prior: expected true or false, got 'maybe'"),
    (["--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
    (["--device", "gpu"], "--device 'gpu' is not a device"),
])
def test_bad_options_fail_at_once_and_write_nothing(tmp_path, capsys, argv, fragment):
    code, out, err = run(capsys, "--out", str(tmp_path / "runs" / "m.pt"), "--steps", "2", *SMALL, *argv)
    assert_user_error(code, err, fragment)
    assert out == "" and files(tmp_path) == {}


def test_an_existing_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: pytest.fail("training started"))
    out = tmp_path / "mine.pt"
    out.write_bytes(b"an earlier run")
    code, _, err = run(capsys, "--out", str(out), "--steps", "2", *SMALL)
    assert_user_error(code, err, f"--out {out} already exists; pass --force to replace it, or --resume {out}")
    assert files(tmp_path) == {"mine.pt": b"an earlier run"}


def test_the_shipped_checkpoint_is_never_overwritten_by_mistake(capsys, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: pytest.fail("training started"))
    shipped = checkpoint_dir() / "mnist.pt"
    if not shipped.is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    before = files(shipped.parent)
    code, _, err = run(capsys, "--out", str(shipped), "--steps", "2", *SMALL)
    assert_user_error(code, err, "is a shipped checkpoint listed in SHA256SUMS; write to another file")
    assert "--resume" not in err  # no hint at a way that is refused too
    # resuming it in place would break its SHA256SUMS entry: refused too, unless --force
    code, _, err = run(capsys, "--out", str(shipped), "--resume", str(shipped), "--steps", "100000", "--device", "cpu")
    assert_user_error(code, err, "is a shipped checkpoint listed in SHA256SUMS; write to another file")
    assert files(shipped.parent) == before


def test_out_must_be_a_file_in_a_writable_place(tmp_path, capsys):
    code, _, err = run(capsys, "--out", str(tmp_path), "--steps", "2", *SMALL)
    assert_user_error(code, err, f"--out {tmp_path} is a folder; give a file name inside it")
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "--out", str(tmp_path / "afile" / "m.pt"), "--steps", "2", *SMALL)
    assert_user_error(code, err, "afile is a file, not a folder")
    assert files(tmp_path) == {"afile": b"x"}


@pytest.mark.parametrize("damage", ["missing", "truncated", "folder"])
def test_a_bad_resume_file_is_one_line(tmp_path, capsys, damage):
    good = checkpoint_28(tmp_path / "good.pt")
    resume = {"missing": tmp_path / "nope.pt", "truncated": tmp_path / "cut.pt", "folder": tmp_path}[damage]
    if damage == "truncated":
        resume.write_bytes(good.read_bytes()[:5000])
    before = files(tmp_path)
    code, _, err = run(capsys, "--out", str(tmp_path / "next.pt"), "--resume", str(resume), "--steps", "9", *SMALL)
    assert_user_error(code, err, {"missing": "no checkpoint at", "truncated": "is corrupt or not a flowlib checkpoint",
                                  "folder": "is a folder, not a checkpoint file"}[damage])
    assert "weights_only" not in err
    assert files(tmp_path) == before


def test_resume_must_agree_with_the_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: pytest.fail("training started"))
    ckpt = checkpoint_28(tmp_path / "c.pt", step=3)
    before = files(tmp_path)
    code, _, err = run(capsys, "--out", str(ckpt), "--resume", str(ckpt), "--steps", "3", "--device", "cpu")
    assert_user_error(code, err, "is already at step 3; --steps is the total to reach, so pass more than 3")
    code, _, err = run(capsys, "--out", str(ckpt), "--resume", str(ckpt), "--steps", "9", "--hidden", "64",
                       "--device", "cpu")
    assert_user_error(code, err, "which has hidden = 4; leave out --hidden")
    code, _, err = run(capsys, "--out", str(ckpt), "--resume", str(ckpt), "--steps", "9", "--dataset", "fashion-mnist",
                       "--device", "cpu")
    assert_user_error(code, err, "was trained on mnist, not fashion-mnist; leave --dataset out or pass --dataset mnist")
    other = tmp_path / "other.pt"
    other.write_bytes(b"precious")
    code, _, err = run(capsys, "--out", str(other), "--resume", str(ckpt), "--steps", "9", "--device", "cpu")
    assert_user_error(code, err, "other.pt already exists")
    assert files(tmp_path) == {**before, "other.pt": b"precious"}


def test_resume_may_write_back_to_its_own_file_and_force_replaces(tmp_path, capsys):
    require_dataset("MNIST")
    ckpt = checkpoint_28(tmp_path / "c.pt", step=2)
    code, out, err = run(capsys, "--out", str(ckpt), "--resume", str(ckpt), "--steps", "3", *SMALL[4:])
    assert code == 0, err
    assert "step 3:" in out and load_checkpoint(ckpt)[1]["step"] == 3
    assert sorted(files(tmp_path)) == ["c.pt"]  # no temporary file left behind
    code, out, err = run(capsys, "--out", str(ckpt), "--steps", "1", "--force", *SMALL)
    assert code == 0, err
    assert load_checkpoint(ckpt)[1]["step"] == 1


def test_a_non_finite_loss_is_one_line_and_keeps_the_last_good_file(tmp_path, capsys, monkeypatch):
    require_dataset("MNIST")
    monkeypatch.setattr(MultiScaleFlow, "bits_per_dim", lambda self, x: self.log_prob(x) * float("nan"))
    code, _, err = run(capsys, "--out", str(tmp_path / "m.pt"), "--steps", "2", *SMALL)
    assert_user_error(code, err, "the loss became nan at step 1", "no checkpoint was written from the bad step")
    assert files(tmp_path) == {}


def test_train_config_names_the_bad_field():
    TrainConfig()  # the defaults are valid
    for kw, message in [({"steps": -5}, "steps must be a whole number >= 0, got -5"),
                        ({"steps": 2.5}, "steps must be a whole number >= 0, got 2.5"),
                        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
                        ({"lr": 0.0}, "lr must be a number > 0"),
                        ({"lr": float("inf")}, "lr must be a number > 0"),
                        ({"weight_decay": -1e-4}, "weight_decay must be a number >= 0"),
                        ({"final_lr_fraction": 1.5}, "final_lr_fraction must be in [0, 1]"),
                        ({"minutes": 0}, "minutes must be a number > 0"),
                        ({"clock": "sundial"}, "clock must be one of"),
                        ({"dataset": "MNIST"}, "dataset must be one of ['fashion-mnist', 'mnist'], got 'MNIST'")]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            TrainConfig(**kw)


def test_fit_or_load_fails_fast_instead_of_training_by_mistake(tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match="dataset must be one of"):
        fit_or_load("MNIST", device="cpu", log=lambda *a: None)  # not the shipped 'mnist': would train for an hour
    with pytest.raises(CheckpointError, match="there is no folder .*checkpoitns"):
        fit_or_load("mnist", folder=tmp_path / "checkpoitns", device="cpu", log=lambda *a: None)
    shipped = tmp_path / "mnist.pt"
    checkpoint_28(shipped)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  mnist.pt\n")
    with pytest.raises(CheckpointError, match="damaged or was replaced"):
        fit_or_load("mnist", folder=tmp_path, device="cpu", log=lambda *a: None)
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(shipped.read_bytes()).hexdigest()}  mnist.pt\n")
    assert fit_or_load("mnist", folder=tmp_path, device="cpu", log=lambda *a: None)[1]["source"] == "shipped"


def test_ctrl_c_says_where_the_last_checkpoint_is(tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train_model", interrupted)
    code, _, err = run(capsys, "--out", str(tmp_path / "m.pt"), "--steps", "2", *SMALL)
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err
    assert f"interrupted; {tmp_path / 'm.pt'} holds the last checkpoint saved, if any" in err


def stop_after_recording(seen: dict):
    def fake_train_model(mc, tc, **kwargs):
        seen["tc"] = tc
        raise KeyboardInterrupt  # main() answers it with exit code 130 and trains nothing

    return fake_train_model


def test_resume_keeps_the_stored_recipe_unless_an_option_is_given(tmp_path, capsys, monkeypatch):
    ckpt = checkpoint_28(tmp_path / "c.pt", step=2)
    state = torch.load(ckpt, weights_only=True)
    state["history"] = {"train_config": {**vars(TrainConfig(lr=2e-3, batch_size=32, minutes=30.0, steps=10**9))},
                        "seconds": 600.0}
    torch.save(state, ckpt)
    seen = {}
    monkeypatch.setattr(train_mod, "train_model", stop_after_recording(seen))
    run(capsys, "--out", str(ckpt), "--resume", str(ckpt), "--device", "cpu", "--batch-size", "64")
    tc = seen["tc"]
    assert (tc.lr, tc.batch_size, tc.minutes, tc.steps) == (2e-3, 64, 30.0, 10**9)


def test_resume_refuses_a_budget_already_spent(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: pytest.fail("training started"))
    ckpt = checkpoint_28(tmp_path / "c.pt", step=2)
    state = torch.load(ckpt, weights_only=True)
    state["history"] = {"train_config": {**vars(TrainConfig(minutes=10.0, steps=10**9))}, "seconds": 600.0}
    torch.save(state, ckpt)
    code, _, err = run(capsys, "--out", str(ckpt), "--resume", str(ckpt), "--device", "cpu")
    assert_user_error(code, err, "has already trained for 10.0 minutes; --minutes is the total budget")


def test_minutes_alone_lifts_the_step_limit(tmp_path, capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr(train_mod, "train_model", stop_after_recording(seen))
    run(capsys, "--out", str(tmp_path / "m.pt"), "--minutes", "5", "--device", "cpu")
    assert seen["tc"].minutes == 5.0 and seen["tc"].steps == 10**9


def test_a_preset_sets_its_recipe_and_given_options_override_it(tmp_path, capsys):
    require_dataset("MNIST")
    model_part, train_part = train_mod.PRESETS["classic"]  # differs from the defaults in every train setting
    assert all(getattr(TrainConfig(), name) != value for name, value in train_part.items())
    out = tmp_path / "f.pt"
    code, _, err = run(capsys, "--out", str(out), "--preset", "classic", "--steps", "2", "--lr", "5e-4",
                       "--coupling", "spline", *SMALL)
    assert code == 0, err
    model, ckpt = load_checkpoint(out)
    for name, value in model_part.items():
        assert getattr(model.config, name) == value, name
    assert model.config.hidden == 4 and model.config.coupling == "spline"  # given on the command line
    stored = ckpt["history"]["train_config"]
    assert stored["lr"] == 5e-4  # given beats the preset
    assert stored["batch_size"] == 8  # given in SMALL
    for name, value in train_part.items():
        if name not in ("lr", "batch_size"):
            assert stored[name] == value, name
    assert stored["ema"] == 0 and stored["warmup_steps"] == 0
    # the resumed run keeps the recipe without --preset; contradicting its model is refused
    code, _, err = run(capsys, "--out", str(out), "--resume", str(out), "--steps", "3", *SMALL[4:])
    assert code == 0, err
    assert read_stored(out)["ema"] == train_part["ema"]
    code, _, err = run(capsys, "--out", str(out), "--resume", str(out), "--steps", "4", "--preset", "classic",
                       "--hidden", "8", *SMALL[4:])
    assert_user_error(code, err, "--resume keeps the model of", "hidden = 4")


def read_stored(path) -> dict:
    return load_checkpoint(path)[1]["history"]["train_config"]


def test_an_unknown_preset_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "--out", str(tmp_path / "x.pt"), "--preset", "best", *SMALL)
    assert_user_error(code, err, "--preset", "flagship")
    assert files(tmp_path) == {}
    with pytest.raises(ValueError, match="unknown preset 'best'"):
        train_mod.preset("best")
    mc, tc = train_mod.preset("classic", steps=5)
    assert tc.steps == 5 and tc.batch_size == train_mod.PRESETS["classic"][1]["batch_size"] != TrainConfig().batch_size
    assert mc == FlowConfig(**train_mod.PRESETS["classic"][0])
