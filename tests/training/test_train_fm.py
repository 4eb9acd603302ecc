"""Training the flow-matching U-Net (``flowlib.training.train_fm``): checkpoints, EMA, resume, bad input."""

from __future__ import annotations

import pytest
import torch

from flowlib.layers.vector_fields import UNet
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow
from flowlib.training import train_fm
from flowlib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from flowlib.training.train import TrainConfig

from ..conftest import require_dataset
from .test_train_cli import assert_user_error, files


def images(n: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)


def small(steps: int) -> TrainConfig:
    return TrainConfig(dataset="mnist", steps=steps, batch_size=4, lr=1e-3, warmup_steps=0, save_every_minutes=0)


def test_checkpoint_holds_ema_and_raw_weights_and_loads_back(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "fm.pt"
    ema, history = train_fm.train_field(small(3), base=8, ema_decay=0.5, out=out, train_images=images(),
                                        progress=False, log=lambda *a: None)
    assert history.step == 3 and len(history.loss) == 3
    field, ckpt = train_fm.load_field_checkpoint(out, dataset="mnist")
    raw, _ = train_fm.load_field_checkpoint(out, raw=True)
    assert isinstance(field, UNet) and not field.training
    assert ckpt["config"] == {"kind": train_fm.KIND, "channels": 1, "base": 8, "time_dim": 64, "dequant_alpha": 0.05}
    assert ckpt["step"] == 3 and ckpt["ema_updates"] == 3
    for (name, a), b in zip(ema.state_dict().items(), field.state_dict().values()):
        assert torch.equal(a, b), name  # "model" is the average
    # with decay 0.5 over three steps the average lags the raw weights
    assert any(not torch.equal(a, b) for a, b in zip(field.state_dict().values(), raw.state_dict().values()))
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    assert field(t, x).shape == x.shape


def test_resume_goes_on_from_the_saved_step_with_the_saved_weights(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "fm.pt"
    train_fm.train_field(small(2), base=8, out=out, train_images=images(), progress=False, log=lambda *a: None)
    saved, first = train_fm.load_field_checkpoint(out, raw=True)
    lines = []
    ema, history = train_fm.train_field(small(5), base=8, out=out, resume=out, train_images=images(),
                                        progress=False, log=lines.append)
    _, second = train_fm.load_field_checkpoint(out)
    assert "resuming" in lines[0] and "step 2" in lines[0]
    assert history.step == 5 and len(history.loss) == 5 and history.loss[:2] == first["history"]["loss"]
    assert second["step"] == 5 and second["ema_updates"] == 5
    # the optimizer came back: Adam's step count goes on from 2
    assert all(s["step"] == 5 for s in second["optimizer"]["state"].values())


def test_the_two_kinds_of_checkpoint_are_not_confused(tmp_path):
    fm, flow = tmp_path / "fm.pt", tmp_path / "flow.pt"
    train_fm.save_field_checkpoint(fm, UNet(1, base=8), dataset="mnist", step=0)
    cfg = FlowConfig(hidden=4, steps_per_level=1)
    save_checkpoint(flow, MultiScaleFlow(cfg), dataset="mnist")
    with pytest.raises(CheckpointError, match="flow-matching-unet field"):
        load_checkpoint(fm)
    with pytest.raises(CheckpointError, match="multi-scale flow, not a flow-matching field"):
        train_fm.load_field_checkpoint(flow)
    with pytest.raises(CheckpointError, match="trained on mnist, not fashion-mnist"):
        train_fm.load_field_checkpoint(fm, dataset="fashion-mnist")


def test_non_finite_weights_are_never_saved(tmp_path):
    field = UNet(1, base=8)
    with torch.no_grad():
        field.out[-1].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        train_fm.save_field_checkpoint(tmp_path / "fm.pt", field, dataset="mnist", step=0)
    assert not (tmp_path / "fm.pt").exists()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = train_fm.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, fragments", [
    ([], ["give --out"]),
    (["--out", "{tmp}/a.pt", "--ema-decay", "1.5"], ["--ema-decay must be between 0 and 1"]),
    (["--out", "{tmp}/a.pt", "--base", "12"], ["--base must be a multiple of 8"]),
    (["--out", "{tmp}/a.pt", "--minutes", "0"], ["minutes must be a number > 0"]),
    (["--out", "{tmp}/a.pt", "--dataset", "cifar"], ["invalid choice"]),
    (["--resume", "{tmp}/missing.pt"], ["no checkpoint at"]),
    (["--out", "{tmp}/existing.pt"], ["already exists", "--force", "--resume"]),
])
def test_command_line_errors_are_one_line_and_touch_nothing(tmp_path, capsys, argv, fragments):
    (tmp_path / "existing.pt").write_bytes(b"keep me")
    before = files(tmp_path)
    code, _, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_user_error(code, err, *fragments)
    assert files(tmp_path) == before


def test_the_command_trains_resumes_and_refuses_to_overwrite(tmp_path, capsys):
    require_dataset("MNIST")
    out = str(tmp_path / "fm.pt")
    args = ["--limit-train", "16", "--batch-size", "4", "--base", "8", "--threads", "1", "--no-progress"]
    code, stdout, err = run(capsys, "--out", out, "--minutes", "0.01", *args)
    assert code == 0, err
    assert stdout.startswith(f"{out}: step ")
    first = train_fm.load_field_checkpoint(out)[1]["step"]
    assert first >= 1
    code, _, err = run(capsys, "--out", out, "--minutes", "0.02", *args)
    assert_user_error(code, err, "already exists")
    code, stdout, err = run(capsys, "--resume", out, "--minutes", "0.02", *args)
    assert code == 0, err
    assert "resuming" in stdout and train_fm.load_field_checkpoint(out)[1]["step"] > first


def test_export_keeps_the_averaged_weights_and_drops_what_only_resuming_needs(tmp_path, capsys):
    torch.manual_seed(0)
    src, dst = tmp_path / "run.pt", tmp_path / "shipped.pt"
    train_fm.train_field(small(2), base=8, out=src, train_images=images(), progress=False, log=lambda *a: None)
    code, stdout, err = run(capsys, "--export", str(src), "--out", str(dst))
    assert code == 0, err
    assert "averaged weights" in stdout and dst.stat().st_size < src.stat().st_size / 2
    a, ca = train_fm.load_field_checkpoint(src)
    b, cb = train_fm.load_field_checkpoint(dst)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert cb["step"] == ca["step"] and cb["optimizer"] is None and "raw_model" not in cb
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        train_fm.load_field_checkpoint(dst, raw=True)
    code, _, err = run(capsys, "--export", str(src), "--out", str(dst))
    assert_user_error(code, err, "already exists")


def test_the_average_of_a_short_run_follows_the_recent_weights_not_the_initial_ones(tmp_path):
    # with a fixed decay of 0.999 the average of a 3-step run is still 99.8% the first step's weights
    torch.manual_seed(0)
    init = UNet(1, base=8).state_dict()
    torch.manual_seed(0)
    train_fm.train_field(small(3), base=8, ema_decay=0.999, out=tmp_path / "fm.pt", train_images=images(),
                         progress=False, log=lambda *a: None)
    ema = train_fm.load_field_checkpoint(tmp_path / "fm.pt")[0].state_dict()
    raw = train_fm.load_field_checkpoint(tmp_path / "fm.pt", raw=True)[0].state_dict()
    moved = sum((ema[k] - init[k]).norm() ** 2 for k in init if init[k].is_floating_point()) ** 0.5
    trained = sum((raw[k] - init[k]).norm() ** 2 for k in init if init[k].is_floating_point()) ** 0.5
    assert trained > 0 and moved > 0.6 * trained, (moved, trained)
