from __future__ import annotations

import hashlib
import json

import pytest
import torch

from flowlib.models.multiscale import FlowConfig, MultiScaleFlow
from flowlib.training import evaluate
from flowlib.training import train as train_mod
from flowlib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from flowlib.training.loop import NonFiniteLossError
from flowlib.training.train import TrainConfig, fit_or_load, train_model

from ..conftest import require_dataset
from ..models.test_multiscale import TINY


def images(n, seed=0):
    """Black-and-white images: about 1 bit per pixel, far below the 8 a fresh model pays."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (n, 1, 8, 8), generator=g) * 255).to(torch.uint8)


def quick_config(**kw):
    # no weight average: the saved model is then the trained one (tests/training/test_ema.py covers the average)
    return TrainConfig(**{"steps": 4, "batch_size": 8, "warmup_steps": 2, "eval_every": 2, "eval_images": 16,
                          "save_every": 2, "ema": 0.0, **kw})


def run(tmp_path, **kw):
    return train_model(TINY, quick_config(**kw), out=tmp_path / "c.pt", device="cpu", progress=False,
                       train_images=images(64), test_images=images(16, 1), log=lambda *a: None)


def test_training_lowers_bits_per_dim_and_writes_a_checkpoint(tmp_path):
    data = images(64)
    model, info = train_model(TINY, quick_config(steps=30, lr=1e-2, eval_every=10, eval_images=64), out=tmp_path / "c.pt",
                              device="cpu", progress=False, train_images=data, test_images=data, log=lambda *a: None)
    evals = info["history"]["evals"]
    assert [s for s, _ in evals] == [10, 20, 30]
    assert evals[-1][1] < evals[0][1] - 0.03
    loaded, ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["step"] == 30 and ckpt["metrics"]["test_bpd"] == pytest.approx(evals[-1][1])
    assert ckpt["history"]["train_config"]["steps"] == 30


def test_resume_continues_at_the_same_step(tmp_path):
    run(tmp_path, steps=4)
    saved, ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["step"] == 4
    seen = []
    model, info = train_model(None, quick_config(steps=6), out=tmp_path / "c.pt", resume=tmp_path / "c.pt",
                              device="cpu", progress=False, train_images=images(64), test_images=images(16, 1),
                              log=seen.append)
    assert len(seen) == 1 and seen[0].startswith(f"resuming {tmp_path / 'c.pt'} at step 4 (")
    assert info["step"] == 6 and len(info["history"]["loss"]) == 6
    assert load_checkpoint(tmp_path / "c.pt")[1]["step"] == 6


def test_resume_starts_from_the_saved_weights(tmp_path, monkeypatch):
    run(tmp_path, steps=4)
    saved, _ = load_checkpoint(tmp_path / "c.pt")
    captured = {}
    real_fit = train_mod.fit

    def spy(model, *a, **k):
        captured["state"] = {n: v.clone() for n, v in model.state_dict().items()}
        return real_fit(model, *a, **k)

    monkeypatch.setattr(train_mod, "fit", spy)
    train_model(None, quick_config(steps=5), resume=tmp_path / "c.pt", device="cpu", progress=False,
                train_images=images(64), test_images=images(16, 1), log=lambda *a: None)
    for name, value in saved.state_dict().items():
        assert torch.equal(captured["state"][name], value), name


def test_non_finite_loss_is_reported_and_never_saved(tmp_path, monkeypatch):
    real = MultiScaleFlow.bits_per_dim
    calls = {"n": 0}

    def poisoned(self, x):
        calls["n"] += 1
        out = real(self, x)
        return out * float("nan") if self.training and calls["n"] > 6 else out

    monkeypatch.setattr(MultiScaleFlow, "bits_per_dim", poisoned)
    with pytest.raises(NonFiniteLossError):
        run(tmp_path, steps=10)
    model, ckpt = load_checkpoint(tmp_path / "c.pt")  # the last good one
    assert ckpt["step"] < 10
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_command_line_train_and_evaluate(tmp_path, capsys):
    require_dataset("MNIST")
    out = tmp_path / "cli.pt"
    code = train_mod.main(["--dataset", "mnist", "--out", str(out), "--steps", "2", "--batch-size", "8",
                           "--eval-every", "2", "--eval-images", "20", "--limit-train", "64", "--hidden", "8",
                           "--steps-per-level", "1", "--device", "cpu", "--no-progress"])
    assert code == 0 and out.exists()
    assert "test bits/dim" in capsys.readouterr().out
    code = evaluate.main(["--checkpoint", str(out), "--split", "test", "--limit", "30", "--importance-samples", "2",
                          "--json", "--no-progress", "--device", "cpu"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["dataset"] == "mnist" and result["split"] == "test" and result["n"] == 30
    assert result["importance_samples"] == 2 and 0 < result["bpd"] < 12


def test_command_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert evaluate.main(["--checkpoint", str(bad), "--no-progress"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert train_mod.main(["--out", str(tmp_path / "x.pt"), "--levels", "3"]) == 2
    assert "divisible" in capsys.readouterr().err


def test_fit_or_load_prefers_a_listed_shipped_checkpoint(tmp_path):
    model, _ = run(tmp_path, steps=2)
    folder = tmp_path / "ship"
    path = save_checkpoint(folder / "mnist.pt", model, dataset="mnist", step=2, metrics={"test_bpd": 9.0})
    (folder / "SHA256SUMS").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  mnist.pt\n")
    loaded, info = fit_or_load("mnist", folder=folder, device="cpu", log=lambda *a: None)
    assert info["source"] == "shipped" and info["step"] == 2


def test_fit_or_load_trains_when_nothing_is_shipped(tmp_path):
    require_dataset("MNIST")
    model, info = fit_or_load("mnist", TINY.__class__(**{**TINY.to_dict(), "size": 28}),
                              quick_config(steps=2, limit_train=32), folder=tmp_path, device="cpu", progress=False,
                              out=tmp_path / "mine.pt", log=lambda *a: None)
    assert info["source"] == "trained" and info["step"] == 2
    assert load_checkpoint(tmp_path / "mine.pt")[1]["step"] == 2


def test_fit_or_load_finds_the_checkpoint_of_a_conditional_config(tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: pytest.fail("training started"))
    folder = tmp_path / "ship"
    unconditional = save_checkpoint(folder / "mnist.pt", MultiScaleFlow(TINY), dataset="mnist", step=1)
    class_config = FlowConfig(**{**TINY.to_dict(), "condition": "class"})
    conditional = save_checkpoint(folder / "mnist-class.pt", MultiScaleFlow(class_config), dataset="mnist", step=2)
    mislabelled = save_checkpoint(folder / "mnist-lowres.pt", MultiScaleFlow(TINY), dataset="mnist", step=3)
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                                               for p in (unconditional, conditional, mislabelled)))
    quiet = dict(folder=folder, device="cpu", log=lambda *a: None)
    model, info = fit_or_load("mnist", class_config, **quiet)
    assert info["step"] == 2 and model.config.condition == "class"
    model, info = fit_or_load("mnist", TINY, **quiet)
    assert info["step"] == 1 and model.config.condition is None
    with pytest.raises(CheckpointError, match="mnist-lowres.pt holds a model with condition=None, not 'lowres'"):
        fit_or_load("mnist", FlowConfig(**{**TINY.to_dict(), "condition": "lowres", "lowres_size": 4}), **quiet)


def test_fit_or_load_by_name_loads_that_file_only(tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "train_model", lambda *a, **k: {"trained": True})
    folder = tmp_path / "ship"
    default = save_checkpoint(folder / "mnist.pt", MultiScaleFlow(TINY), dataset="mnist", step=1)
    baseline = save_checkpoint(folder / "mnist-baseline.pt", MultiScaleFlow(TINY), dataset="mnist", step=7)
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                                               for p in (default, baseline)))
    quiet = dict(folder=folder, device="cpu", log=lambda *a: None)
    assert fit_or_load("mnist", TINY, name="mnist-baseline", **quiet)[1]["step"] == 7
    assert fit_or_load("mnist", TINY, **quiet)[1]["step"] == 1
    assert fit_or_load("mnist", TINY, name="mnist-missing", **quiet) == {"trained": True}


def test_fit_or_load_trains_a_conditional_model_when_its_checkpoint_is_missing(tmp_path, monkeypatch):
    seen = {}

    def fake_train(model_config, train_config, **kw):
        seen["config"] = model_config
        return MultiScaleFlow(model_config), {"source": "trained"}

    monkeypatch.setattr(train_mod, "train_model", fake_train)
    save_checkpoint(tmp_path / "mnist.pt", MultiScaleFlow(TINY), dataset="mnist")  # unconditional: not this one
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256((tmp_path / 'mnist.pt').read_bytes()).hexdigest()}  mnist.pt\n")
    mask_config = FlowConfig(**{**TINY.to_dict(), "condition": "mask"})
    logged = []
    model, info = fit_or_load("mnist", mask_config, quick_config(minutes=0.5), folder=tmp_path, device="cpu",
                              log=logged.append)
    assert info["source"] == "trained" and seen["config"] == mask_config
    assert logged == ["no shipped checkpoint mnist-mask.pt: training for 0.5 minutes (or 4 steps if sooner) on cpu"]


def test_lr_schedule_warms_up_then_decays():
    tc = TrainConfig(steps=100, warmup_steps=10, final_lr_fraction=0.1)
    assert tc.lr_factor(5) == pytest.approx(0.5)
    assert tc.lr_factor(10) == pytest.approx(1.0)
    assert tc.lr_factor(100) == pytest.approx(0.1)
    assert tc.lr_factor(55) == pytest.approx(0.55)


def test_the_warm_up_takes_at_most_a_quarter_of_a_step_budget():
    short = TrainConfig(steps=100, warmup_steps=400, final_lr_fraction=0.1)
    assert short.warmup() == 25
    assert short.lr_factor(25) == pytest.approx(1.0)  # the peak is reached, then the decay runs
    assert short.lr_factor(100) == pytest.approx(0.1)
    # a time budget lifts the step limit: the whole warm-up stays
    timed = TrainConfig(steps=10**9, minutes=10, warmup_steps=400)
    assert timed.warmup() == 400 and timed.lr_factor(200, seconds=1.0) == pytest.approx(0.5)


def test_the_defaults_are_the_flagship_optimisation_and_the_preset_adds_its_model_and_precision():
    from flowlib.training.train import PRESETS, preset

    model_part, train_part = PRESETS["flagship"]
    assert model_part == {"coupling": "mixture"}
    for name in ("batch_size", "lr", "warmup_steps", "ema"):
        assert getattr(TrainConfig(), name) == train_part[name], name
    mc, tc = preset("flagship", steps=7)
    assert mc.coupling == "mixture" and FlowConfig().coupling == "affine"  # the teaching layout stays the default
    assert (tc.precision, tc.channels_last, tc.steps) == ("bfloat16", False, 7)
    assert (TrainConfig().precision, TrainConfig().channels_last) == ("float32", True)
    classic = TrainConfig(**PRESETS["classic"][1])
    assert (classic.batch_size, classic.lr, classic.warmup_steps, classic.ema) == (32, 1e-3, 0, 0.0)


def test_time_schedule_decays_over_the_budget_not_the_steps():
    tc = TrainConfig(steps=10**9, minutes=10, warmup_steps=0, final_lr_fraction=0.0)
    assert tc.lr_factor(1, seconds=0.0) == pytest.approx(1.0)
    assert tc.lr_factor(50, seconds=300.0) == pytest.approx(0.5)
    assert tc.lr_factor(99, seconds=600.0) == pytest.approx(0.0)
    assert TrainConfig(steps=100, warmup_steps=0, final_lr_fraction=0.0).lr_factor(50, seconds=1e6) == pytest.approx(0.5)


def test_a_time_budget_ends_the_run_and_is_recorded(tmp_path):
    # CPU clock here and below: on a loaded machine one wall-clock step could overshoot the bounds
    tc = quick_config(steps=10**6, minutes=0.02, eval_every=0, clock="cpu")
    model, info = train_model(TINY, tc, out=tmp_path / "c.pt", device="cpu", progress=False, train_images=images(64),
                              test_images=images(16, 1),
                              log=lambda *a: None)
    hist = info["history"]
    assert 1 <= info["step"] < 10**6
    assert 1.2 <= hist["seconds"] < 1.2 + 5  # at most one step past the budget
    assert hist["eval_seconds"][-1] == pytest.approx(hist["seconds"])
    assert load_checkpoint(tmp_path / "c.pt")[1]["metrics"]["train_seconds"] == pytest.approx(hist["seconds"])


def test_pausing_keeps_the_schedule_and_resume_goes_on(tmp_path):
    tc = quick_config(steps=10**6, minutes=0.05, pause_after_minutes=0.01, eval_every=0, clock="cpu")
    _, first = train_model(TINY, tc, out=tmp_path / "c.pt", device="cpu", progress=False, train_images=images(64),
                           test_images=images(16, 1), log=lambda *a: None)
    assert 0.6 <= first["history"]["seconds"] < 3.0
    tc_rest = quick_config(steps=10**6, minutes=0.05, eval_every=0, clock="cpu")
    _, second = train_model(None, tc_rest, out=tmp_path / "c.pt", resume=tmp_path / "c.pt", device="cpu", progress=False,
                            train_images=images(64), test_images=images(16, 1), log=lambda *a: None)
    assert second["step"] > first["step"]
    assert 3.0 <= second["history"]["seconds"] < 6.0
    assert second["history"]["loss"][: first["step"]] == first["history"]["loss"]


def test_channels_last_and_compile_fallback_train_the_same_model(tmp_path, monkeypatch):
    torch.manual_seed(0)
    _, plain = train_model(TINY, quick_config(steps=3, channels_last=False), device="cpu", progress=False,
                           train_images=images(64), test_images=images(16, 1), log=lambda *a: None)
    torch.manual_seed(0)
    _, fast = train_model(TINY, quick_config(steps=3, channels_last=True), device="cpu", progress=False,
                          train_images=images(64), test_images=images(16, 1), log=lambda *a: None)
    assert fast["history"]["loss"] == pytest.approx(plain["history"]["loss"], abs=1e-4)

    def broken_compile(fn):
        def fail(*a, **k):
            raise RuntimeError("no compiler here")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    seen = []
    _, fallback = train_model(TINY, quick_config(steps=3, channels_last=False, compile=True), device="cpu",
                              progress=False, train_images=images(64), test_images=images(16, 1), log=seen.append)
    assert any("torch.compile failed (RuntimeError)" in line for line in seen)
    assert fallback["history"]["loss"] == pytest.approx(plain["history"]["loss"], abs=1e-4)


def test_bfloat16_conditioners_train_nearly_the_same_model_and_save_float32(tmp_path):
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="bf16")
    torch.manual_seed(0)
    _, plain = train_model(TINY, quick_config(steps=3, channels_last=False), device="cpu", progress=False,
                           train_images=images(64), test_images=images(16, 1), log=lambda *a: None)
    torch.manual_seed(0)
    _, low = train_model(TINY, quick_config(steps=3, channels_last=False, precision="bfloat16"), out=tmp_path / "c.pt",
                         device="cpu", progress=False, train_images=images(64), test_images=images(16, 1),
                         log=lambda *a: None)
    # the first step is exact in both (zero last layers: the couplings are the identity); after it the losses
    # stay close, yet are not float32's to the digit
    assert low["history"]["loss"][0] == plain["history"]["loss"][0]
    last_plain, last_low = plain["history"]["loss"][-1], low["history"]["loss"][-1]
    assert last_low != last_plain and last_low == pytest.approx(last_plain, rel=1e-2)
    saved, ckpt = load_checkpoint(tmp_path / "c.pt")
    assert all(p.dtype == torch.float32 for p in saved.parameters())
    assert ckpt["history"]["train_config"]["precision"] == "bfloat16"


def test_bfloat16_on_a_processor_without_its_instructions_warns_once_and_float32_does_not(monkeypatch):
    assert train_mod.has_fast_bfloat16("meta") is True  # a GPU (any non-CPU device) computes bfloat16 itself
    for name, answer in [("_is_avx512_bf16_supported", False), ("_is_amx_tile_supported", False)]:
        monkeypatch.setattr(torch.cpu, name, lambda answer=answer: answer, raising=False)
    assert train_mod.has_fast_bfloat16("cpu") is False
    run = dict(device="cpu", progress=False, train_images=images(64), test_images=images(16, 1))
    seen = []
    train_model(TINY, quick_config(steps=1, channels_last=False, precision="bfloat16"), log=seen.append, **run)
    assert sum("no bfloat16 instructions" in line and "--precision float32" in line for line in seen) == 1
    seen.clear()
    train_model(TINY, quick_config(steps=1, channels_last=False), log=seen.append, **run)
    assert not any("bfloat16" in line for line in seen)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert train_mod.has_fast_bfloat16("cpu") is True
    seen.clear()
    train_model(TINY, quick_config(steps=1, channels_last=False, precision="bfloat16"), log=seen.append, **run)
    assert not any("bfloat16" in line for line in seen)
