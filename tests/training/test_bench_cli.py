"""``python -m flowlib.bench`` given bad input: one error line and exit code 2 before anything is measured."""

from __future__ import annotations

import pytest

from flowlib.training import bench

from .test_train_cli import assert_user_error, files


@pytest.mark.parametrize("argv, fragment", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--eval-images", "-1"], "--eval-images must be >= 1, got -1"),
    (["--lr", "0"], "--lr must be a number > 0, got 0.0"),
    (["--eval-every-minutes", "0"], "--eval-every-minutes must be a number > 0, got 0.0"),
    (["--curve", "-2"], "--curve must be a number > 0, got -2.0"),
    (["--max-seconds", "nan"], "--max-seconds must be a number > 0, got nan"),
    (["--device", "gpu"], "--device 'gpu' is not a device"),
    (["--alpha", "0.7"], "--alpha must be in [0, 0.5), got 0.7"),
    (["--hidden", "0"], "--hidden must be a whole number >= 1, got 0"),
    (["--curve-out", "{tmp}"], "--curve-out {tmp} is a folder; give a file name inside it, such as {tmp}/curve.json"),
    (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
])
def test_bad_options_fail_before_measuring(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.setattr(bench, "load_images", lambda *a, **k: pytest.fail("started measuring"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = bench.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert_user_error(code, err, fragment.replace("{tmp}", str(tmp_path)))
    assert out == "" and files(tmp_path) == {}
