from __future__ import annotations

import pytest
from PIL import Image

from flowlib.apps import figures
from flowlib.apps.figures import sample_grid_png
from flowlib.training.checkpoint import save_checkpoint

from ..models.test_multiscale import tiny
from ..training.test_train_cli import assert_user_error, files


def test_sample_grid_png_is_reproducible(tmp_path):
    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist")
    a = sample_grid_png(ckpt, tmp_path / "a.png", n=6, nrow=3)
    b = sample_grid_png(ckpt, tmp_path / "b.png", n=6, nrow=3)
    assert a.read_bytes() == b.read_bytes()
    img = Image.open(a)
    assert img.mode == "L" and img.size == (2 * (3 * 8 + 2), 2 * (2 * 8 + 1))


def test_a_class_conditional_grid_has_one_row_per_class_and_image_conditions_are_refused(tmp_path, capsys):
    import torch

    from flowlib.models.multiscale import FlowConfig, MultiScaleFlow

    from ..models.test_multiscale import TINY

    torch.manual_seed(0)
    model = MultiScaleFlow(FlowConfig(**{**TINY.to_dict(), "condition": "class", "num_classes": 3}))
    ckpt = save_checkpoint(tmp_path / "c.pt", model, dataset="mnist")
    img = Image.open(sample_grid_png(ckpt, tmp_path / "c.png", n=64, nrow=4))
    assert img.size == (2 * (4 * 8 + 3), 2 * (3 * 8 + 2))   # 3 rows (classes) of 4, n not used
    lowres = MultiScaleFlow(FlowConfig(**{**TINY.to_dict(), "condition": "lowres", "lowres_size": 4}))
    ckpt = save_checkpoint(tmp_path / "l.pt", lowres, dataset="mnist")
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--out", str(tmp_path / "l.png"))
    assert code == 2 and "conditioned on images (condition='lowres')" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "l.png").exists()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = figures.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_command_line_refuses_to_replace_a_file_without_force(tmp_path, capsys):
    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist")
    png = tmp_path / "s.png"
    code, out, err = run(capsys, "--checkpoint", str(ckpt), "--out", str(png), "--n", "4", "--nrow", "2")
    assert code == 0 and out == f"wrote {png}\n" and err == ""
    first = png.read_bytes()
    png.write_bytes(b"the README's picture")
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--out", str(png), "--n", "4", "--nrow", "2")
    assert_user_error(code, err, "s.png already exists; pass --force to replace it")
    assert png.read_bytes() == b"the README's picture"
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--out", str(png), "--n", "4", "--nrow", "2", "--force")
    assert code == 0 and png.read_bytes() == first
    assert sorted(files(tmp_path)) == ["m.pt", "s.png"]  # written atomically: no temporary file left


@pytest.mark.parametrize("argv, fragment", [
    (["--out", "{tmp}/m.pt"], "--out must be a .png file, got"),  # would have replaced the checkpoint with a PNG
    (["--out", "{tmp}"], "--out must be a .png file"),
    (["--out", "{tmp}/x.png", "--n", "0"], "--n must be a whole number >= 1, got 0"),
    (["--out", "{tmp}/x.png", "--nrow", "-2"], "--nrow must be a whole number >= 1, got -2"),
    (["--out", "{tmp}/x.png", "--temperature", "-1"], "--temperature must be a number >= 0, got -1.0"),
    (["--out", "{tmp}/x.png", "--temperature", "inf"], "--temperature must be a number >= 0, got inf"),
    (["--out", "{tmp}/x.png", "--checkpoint", "{tmp}/missing.pt"], "no checkpoint at"),
    (["--out", "{tmp}/x.png", "--checkpoint", "{tmp}/cut.pt"], "is corrupt or not a flowlib checkpoint"),
])
def test_command_line_errors_are_one_line_and_write_nothing(tmp_path, capsys, argv, fragment):
    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist")
    (tmp_path / "cut.pt").write_bytes(ckpt.read_bytes()[:999])
    before = files(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, "--checkpoint", str(ckpt), *argv)
    assert_user_error(code, err, fragment)
    assert out == "" and files(tmp_path) == before


def test_sample_grid_png_checks_its_arguments(tmp_path):
    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist")
    with pytest.raises(ValueError, match="n must be a whole number >= 1, got 0"):
        sample_grid_png(ckpt, tmp_path / "a.png", n=0)
    with pytest.raises(ValueError, match="out must be a .png file"):
        sample_grid_png(ckpt, tmp_path / "a.pt")
    assert sorted(files(tmp_path)) == ["m.pt"]


def test_learning_curves_from_a_checkpoint_and_a_curve_file(tmp_path, capsys):
    import json

    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist",
                           history={"evals": [[10, 3.0], [20, 2.5]], "eval_seconds": [60.0, 120.0]})
    curve = tmp_path / "c.json"
    curve.write_text(json.dumps({"curve": [[30.0, 5, 4.0], [90.0, 15, 3.5]]}))
    assert figures.read_curve(ckpt) == ([1.0, 2.0], [3.0, 2.5])
    assert figures.read_curve(curve) == ([0.5, 1.5], [4.0, 3.5])
    code, out, err = run(capsys, "--curve", str(ckpt), str(curve), "--out", str(tmp_path / "lc.png"))
    assert code == 0, err
    assert Image.open(tmp_path / "lc.png").size == (600, 400)   # close curves: one panel
    far = tmp_path / "far.json"
    far.write_text(json.dumps({"curve": [[30.0, 5, 9.0], [90.0, 15, 8.8]]}))
    code, _, err = run(capsys, "--curve", str(ckpt), str(far), "--out", str(tmp_path / "lc2.png"))
    assert code == 0, err
    assert Image.open(tmp_path / "lc2.png").size == (1000, 400)  # far apart: a panel each, side by side


def test_a_checkpoint_without_a_time_history_is_one_line(tmp_path, capsys):
    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist")
    code, _, err = run(capsys, "--curve", str(ckpt), "--out", str(tmp_path / "lc.png"))
    assert_user_error(code, err, "records no test bits/dim against training time")
    assert not (tmp_path / "lc.png").exists()


def test_a_flow_matching_field_draws_its_grid_by_the_ode(tmp_path):
    import torch

    from flowlib.layers.dequantize import UniformDequantization
    from flowlib.layers.vector_fields import UNet
    from flowlib.training import train_fm

    torch.manual_seed(0)
    ckpt = train_fm.save_field_checkpoint(tmp_path / "fm.pt", UNet(1, base=8), dataset="mnist", step=0)
    a = sample_grid_png(ckpt, tmp_path / "a.png", n=6, nrow=3, temperature=1.0)
    b = sample_grid_png(ckpt, tmp_path / "b.png", n=6, nrow=3, temperature=1.0, seed=1)
    img = Image.open(a)
    assert img.mode == "L" and img.size == (2 * (3 * 28 + 2), 2 * (2 * 28 + 1))
    assert a.read_bytes() != b.read_bytes()  # the seed reaches the noise
    # an untrained U-Net's field is zero at the start (zero-initialised output), so the images are the noise's pixels
    field, _ = train_fm.load_field_checkpoint(ckpt)
    pixels, nfe = train_fm.sample_images(field, 3, generator=torch.Generator().manual_seed(2))
    x0 = torch.randn((3, 1, 28, 28), generator=torch.Generator().manual_seed(2))
    expected, _ = UniformDequantization(alpha=train_fm.DEQUANT_ALPHA).inverse(x0)
    assert pixels.shape == (3, 1, 28, 28) and nfe > 0
    # (the solver's interpolation to t = 1 may round a value across a pixel level)
    assert (pixels - expected / 255).abs().max() <= 1.01 / 255 and (pixels == expected / 255).float().mean() > 0.99
