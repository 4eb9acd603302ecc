from __future__ import annotations

import os

import pytest
import torch

from flowlib.training import cli


def test_fail_prints_one_error_line_and_returns_2(capsys):
    assert cli.fail(ValueError("first\nsecond")) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: first second\n"


def test_parser_errors_are_one_line_with_exit_code_2(capsys):
    p = cli.Parser(prog="python -m flowlib.x")
    p.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--n", "many"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --n: invalid int value: 'many'") and err.count("\n") == 1
    assert "python -m flowlib.x --help" in err and "usage:" not in err


def test_device_accepts_cpu_and_names_what_is_wrong():
    assert cli.device("cpu") == torch.device("cpu")
    assert cli.device(None) == cli.default_device()
    with pytest.raises(cli.UsageError, match="'gpu' is not a device; use cpu, cuda or mps"):
        cli.device("gpu")
    with pytest.raises(cli.UsageError, match="runs on cpu, cuda or mps"):
        cli.device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(cli.UsageError, match="no CUDA GPU is available here"):
            cli.device("cuda")
    else:
        with pytest.raises(cli.UsageError, match="CUDA device"):
            cli.device(f"cuda:{torch.cuda.device_count()}")


def test_output_file_refuses_what_would_destroy_something(tmp_path):
    new = tmp_path / "sub" / "new.pt"
    assert cli.output_file(new) == new and not new.parent.exists()  # checking creates nothing
    old = tmp_path / "old.pt"
    old.write_bytes(b"keep me")
    with pytest.raises(cli.UsageError, match="old.pt already exists; pass --force to replace it"):
        cli.output_file(old)
    with pytest.raises(cli.UsageError, match="already exists; do this"):
        cli.output_file(old, hint="do this")
    assert cli.output_file(old, force=True) == old
    assert cli.output_file(old, may_replace=tmp_path / "." / "old.pt") == old  # the same file, spelled differently
    with pytest.raises(cli.UsageError, match="already exists"):
        cli.output_file(old, may_replace=tmp_path / "other.pt")
    with pytest.raises(cli.UsageError, match="is a folder; give a file name inside it, such as .*x.png"):
        cli.output_file(tmp_path, force=True, example="x.png")
    with pytest.raises(cli.UsageError, match="old.pt is a file, not a folder"):
        cli.output_file(old / "inside.pt")
    assert old.read_bytes() == b"keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_output_file_refuses_a_folder_it_cannot_write(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(cli.UsageError, match="permission denied"):
        cli.output_file(locked / "x.pt")


def test_option_message_names_the_option():
    assert cli.option_message(ValueError("batch_size must be >= 1, got 0"), ["batch_size"]) == \
        "--batch-size must be >= 1, got 0"
    assert cli.option_message(ValueError("size 28 must be divisible"), ["batch_size"]) == "size 28 must be divisible"
