"""benchmarks/reference_uva.py: it runs only the notebook's definitions, and says so when they are missing.

The real tutorial notebook is not in the repository (no machine in CI reaches GitHub), so these
tests use small stand-in notebooks with the same shape.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "reference_uva", Path(__file__).resolve().parents[1] / "benchmarks" / "reference_uva.py")
reference_uva = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_uva)

# An ImageFlow-like model: one learned scale on the pixels, the tutorial's interface
# (flows called as flow(z, ldj, reverse=False), _get_likelihood(imgs, return_ll=True)).
MODEL_CELL = '''
class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.log_s = nn.Parameter(torch.zeros(1))

    def forward(self, z, ldj, reverse=False):
        z = (z.float() + 0.5) / 256.0
        ldj = ldj - math.log(256.0) * z[0].numel()
        return z * self.log_s.exp(), ldj + self.log_s * z[0].numel()


class ImageFlow(pl.LightningModule):
    def __init__(self, flows):
        super().__init__()
        self.flows = nn.ModuleList(flows)
        self.example_input_array = train_set[0][0].unsqueeze(dim=0)

    def _get_likelihood(self, imgs, return_ll=False):
        z, ldj = imgs, torch.zeros(imgs.shape[0], device=self.device)
        for flow in self.flows:
            z, ldj = flow(z, ldj, reverse=False)
        log_px = ldj + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(dim=[1, 2, 3])
        return log_px if return_ll else (-log_px * np.log2(np.exp(1)) / np.prod(imgs.shape[1:])).mean()


def create_multiscale_flow():
    return ImageFlow([Scale()]).to(device)
'''


def notebook(tmp_path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "code", "source": s.splitlines(keepends=True), "metadata": {}, "outputs": []}
             for s in sources]
    path = tmp_path / "tutorial.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# title"]}, *cells]}))
    return path


def test_only_definitions_run_not_the_notebooks_training_or_downloads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    side_effects = "%matplotlib inline\nopen('SHOULD_NOT_EXIST', 'w')\ntrainer.fit(model)\n"
    ref = reference_uva.load_reference(notebook(tmp_path, side_effects, MODEL_CELL, "!pip install lightning"))
    model = ref.create_multiscale_flow()
    assert model.device == torch.device("cpu")
    assert not Path("SHOULD_NOT_EXIST").exists()
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    # with scale 1 the latent is the image in [0, 1): bits/dim = 8 + the standard normal's, computed here
    z = (images.double() + 0.5) / 256
    expected = ((0.5 * z**2 + 0.5 * math.log(2 * math.pi)).sum((1, 2, 3)) / 784 + math.log(256)) / math.log(2)
    assert reference_uva.bits_per_dim(model, images, batch_size=4) == pytest.approx(expected.mean().item(), rel=1e-5)


def test_a_notebook_without_the_reference_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="defines no create_multiscale_flow"):
        reference_uva.load_reference(notebook(tmp_path, "def something_else():\n    return 1\n"))
    (tmp_path / "broken.ipynb").write_text("not json")
    with pytest.raises(ValueError, match="is not a readable Jupyter notebook"):
        reference_uva.load_reference(tmp_path / "broken.ipynb")


def test_the_command_trains_against_the_clock_and_writes_a_curve_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reference_uva, "TRAIN_IMAGES", 64)
    images = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    monkeypatch.setattr(reference_uva, "load_images",
                        lambda name, split, limit=None: type("D", (), {"images": images[:limit]})())
    path = notebook(tmp_path, MODEL_CELL)
    out = tmp_path / "curve.json"
    reference_uva.main(["--notebook", str(path), "--minutes", "0.01", "--eval-every-minutes", "0.005",
                        "--eval-images", "50", "--clock", "wall", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["parameters"] == 1 and result["eval_images"] == 50 and result["steps"] >= 1
    assert result["curve"] and all(math.isfinite(bpd) for _, _, bpd in result["curve"])
    assert result["curve"][-1][1] == result["steps"]  # the last point is the end of training
    with pytest.raises(SystemExit):
        reference_uva.main(["--notebook", str(path), "--out", str(out)])  # exists: not overwritten
    assert "already exists" in capsys.readouterr().err
