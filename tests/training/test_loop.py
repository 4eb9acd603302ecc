from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.training.loop import NonFiniteLossError, batches_from_tensor


def test_fit_lowers_the_loss_on_moons():
    torch.manual_seed(0)
    flow = fl.coupling_flow_2d(layers=4, hidden=32)
    data = fl.make_toy("moons", 2000)
    history = fl.fit(flow, data, steps=200, lr=3e-3, batch_size=256, progress=False)
    assert len(history.loss) == 200 and history.step == 200
    first = sum(history.loss[:10]) / 10
    last = sum(history.loss[-10:]) / 10
    assert last < first - 0.5


def test_fit_accepts_a_sampler_and_records_evals():
    flow = fl.coupling_flow_2d(layers=2, hidden=8)
    held_out = fl.make_toy("rings", 256, seed=1)
    h = fl.fit(flow, lambda: fl.make_toy("rings", 64, seed=torch.randint(1000, ()).item()), steps=20,
               eval_fn=lambda m: -m.log_prob(held_out).mean().item(), eval_every=10, progress=False)
    assert [s for s, _ in h.evals] == [10, 20]


def test_non_finite_loss_is_caught_before_the_update():
    flow = fl.coupling_flow_2d(layers=2, hidden=8)
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    bad = torch.full((8, 2), 1e30)
    with pytest.raises(NonFiniteLossError, match="not updated"):
        fl.fit(flow, lambda: bad, steps=3, progress=False, loss_fn=lambda m, x: (m.log_prob(x) * float("nan")).mean())
    for k, v in flow.state_dict().items():
        assert torch.equal(v, before[k])


def test_warmup_raises_lr_linearly():
    flow = fl.coupling_flow_2d(layers=1, hidden=4)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    lrs = []
    fl.fit(flow, fl.make_toy("moons", 256), steps=4, optimizer=opt, warmup_steps=4, batch_size=64, progress=False,
           callback=lambda step, loss: lrs.append(opt.param_groups[0]["lr"]))
    assert lrs == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])


def test_batches_cover_every_example_each_epoch():
    data = torch.arange(10).float()[:, None]
    it = batches_from_tensor(data, 5)
    epoch = torch.cat([next(it), next(it)])
    assert sorted(epoch.flatten().tolist()) == list(range(10))


def test_time_budget_and_evaluation_by_seconds_follow_the_clock(capsys):
    ticks = iter(range(10**6))
    clock = lambda: 0.5 * next(ticks)  # each call advances half a second: one step takes 0.5 s
    model = fl.coupling_flow_2d(layers=2, hidden=8)
    h = fl.fit(model, lambda: torch.randn(16, 2), steps=1000, time_budget=3.0, eval_fn=lambda m: 1.0,
               eval_every_seconds=1.0, clock=clock, desc="budget test")
    assert h.step == 6 and h.seconds == pytest.approx(3.0)
    assert [s for s, _ in h.evals] == [2, 4, 6] and h.eval_seconds == pytest.approx([1.0, 2.0, 3.0])
    assert "budget test: 6 steps in 3.0 s" in capsys.readouterr().out


def test_stop_fn_ends_training_after_an_evaluation():
    model = fl.coupling_flow_2d(layers=2, hidden=8)
    h = fl.fit(model, lambda: torch.randn(16, 2), steps=100, eval_fn=lambda m: 1.0, eval_every=5,
               stop_fn=lambda hist: hist.step >= 10, progress=False)
    assert h.step == 10
