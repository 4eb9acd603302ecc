from __future__ import annotations

from PIL import Image

from flowlib.checkpoint import save_checkpoint
from flowlib.figures import sample_grid_png

from .test_model import tiny


def test_sample_grid_png_is_reproducible(tmp_path):
    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, dataset="mnist")
    a = sample_grid_png(ckpt, tmp_path / "a.png", n=6, nrow=3)
    b = sample_grid_png(ckpt, tmp_path / "b.png", n=6, nrow=3)
    assert a.read_bytes() == b.read_bytes()
    img = Image.open(a)
    assert img.mode == "L" and img.size == (2 * (3 * 8 + 2), 2 * (2 * 8 + 1))
