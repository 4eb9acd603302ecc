from __future__ import annotations

import pytest
import torch
from torch import nn

from flowlib.training.ema import WeightAverage


def test_the_average_follows_the_formula_with_its_ramped_decay():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(0.0)
    avg = WeightAverage(model, decay=0.99)
    expected = torch.zeros(1, 2)
    for step in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(step))
        avg.update(model, step)
        d = min(0.99, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * step
    assert avg.decay_at(1000) == 0.99 and avg.decay_at(1) == pytest.approx(2 / 11)
    assert torch.allclose(avg.average["weight"], expected)
    assert not torch.allclose(avg.average["weight"], model.weight)  # a wrong formula (no averaging) fails here


def test_applied_swaps_the_average_in_and_restores_the_trained_weights():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    avg = WeightAverage(model, decay=0.5)
    trained_before = model.weight.detach().clone()
    avg.average["weight"].add_(1.0)
    with avg.applied(model) as trained:
        assert torch.allclose(model.weight, trained_before + 1.0)
        assert torch.equal(trained["weight"], trained_before)
    assert torch.equal(model.weight, trained_before)
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(model, decay=1.0)


def test_training_with_an_average_saves_it_and_resumes_from_the_trained_weights(tmp_path):
    from flowlib.models.multiscale import FlowConfig
    from flowlib.training.checkpoint import load_checkpoint, read_checkpoint
    from flowlib.training.train import TrainConfig, train_model

    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    mc = FlowConfig(size=8, hidden=8, steps_per_level=1, pre_steps=0, dequantization="uniform")
    out = tmp_path / "run.pt"
    kw = dict(batch_size=8, eval_every=3, eval_images=16, save_every=0, ema=0.9)
    model, info = train_model(mc, TrainConfig(steps=6, **kw), out=out, progress=False, train_images=images,
                              test_images=images[:16], log=lambda *a: None)
    ckpt = read_checkpoint(out)
    saved, _ = load_checkpoint(out)
    # the model returned, evaluated and saved is the average; the trained weights are different and stored too
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved.state_dict()[k])
    diffs = [(ckpt["train_weights"][k] - v).abs().max() for k, v in ckpt["model"].items() if v.is_floating_point()]
    assert max(diffs) > 0
    raw = info["history"]["raw_evals"]  # the trained weights scored at the same steps as the average
    assert [e[0] for e in raw] == [e[0] for e in info["history"]["evals"]] == [3, 6]
    assert all(a[1] != b[1] for a, b in zip(raw, info["history"]["evals"]))
    from flowlib.training.evaluate import evaluate_bpd
    assert info["history"]["evals"][-1][1] == pytest.approx(evaluate_bpd(model, images[:16]), abs=0.02)
    # resuming with no steps left writes the checkpoint again: the trained weights must come back as they were
    # (a resume that started from the average would store the average there)
    train_model(None, TrainConfig(steps=6, **kw), out=out, resume=out, progress=False, train_images=images,
                test_images=images[:16], log=lambda *a: None)
    again = read_checkpoint(out)
    for k, v in ckpt["train_weights"].items():
        assert torch.equal(again["train_weights"][k], v), k
    _, info2 = train_model(None, TrainConfig(steps=9, **kw), out=out, resume=out, progress=False,
                           train_images=images, test_images=images[:16], log=lambda *a: None)
    assert info2["step"] == 9
