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
