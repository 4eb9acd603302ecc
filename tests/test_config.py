from __future__ import annotations

import flowlib as fl


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("FLOWLIB_QUICK", "1")
    assert fl.is_quick() and fl.quick_or_full(1, 2) == 1
    monkeypatch.setenv("FLOWLIB_QUICK", "0")
    assert not fl.is_quick() and fl.quick_or_full(1, 2) == 2
    monkeypatch.delenv("FLOWLIB_QUICK")
    assert not fl.is_quick()


def test_default_device_is_usable():
    import torch

    dev = fl.default_device()
    assert torch.zeros(1, device=dev).device.type == dev.type


def test_reuse_freed_memory_takes_effect_on_linux_and_can_be_switched_off(monkeypatch):
    import platform
    import sys

    from flowlib.config import reuse_freed_memory

    monkeypatch.delenv("FLOWLIB_MALLOC", raising=False)
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is on_glibc
    monkeypatch.setenv("FLOWLIB_MALLOC", "default")
    assert reuse_freed_memory() is False
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("FLOWLIB_MALLOC")
    assert reuse_freed_memory() is False


def test_evaluation_gives_the_same_bits_whatever_glibc_does_with_freed_memory(tmp_path):
    import os
    import subprocess
    import sys

    import torch

    from flowlib.models.multiscale import FlowConfig, MultiScaleFlow

    torch.manual_seed(0)
    model = MultiScaleFlow(FlowConfig(size=8, hidden=8, steps_per_level=1))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    code = (f"import torch, flowlib; from flowlib.models.multiscale import FlowConfig, MultiScaleFlow; "
            f"m = MultiScaleFlow(FlowConfig(size=8, hidden=8, steps_per_level=1)); "
            f"m.load_state_dict(torch.load({str(tmp_path / 'weights.pt')!r})); torch.manual_seed(1); "
            f"x = torch.randint(0, 256, (300, 1, 8, 8), dtype=torch.uint8); torch.manual_seed(2); "
            f"print(repr(m.bits_per_dim(x).double().sum().item()))")
    results = []
    for setting in ("default", "reuse"):
        env = {**os.environ, "FLOWLIB_MALLOC": setting}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        results.append(out.stdout.strip())
    assert results[0] == results[1]
