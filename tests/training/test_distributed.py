"""Training on two processes (gloo, one CPU thread each) agrees with training on one.

The workers are this module run as ``python -m tests.training.test_distributed SCENARIO... DIR`` with
the environment ``torchrun`` would give them (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``); each writes what it saw to ``DIR/rank<r>.pt``. Every wait has a timeout,
and a hung worker is killed, so a bug here fails the test instead of hanging CI.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowlib.core.testing import perturb
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow
from flowlib.training import distributed as dist
from flowlib.training.checkpoint import load_checkpoint
from flowlib.training.evaluate import evaluate_bpd
from flowlib.training.loop import NonFiniteLossError, fit
from flowlib.training.train import TrainConfig, train_model

from ..conftest import ROOT, require_dataset

TINY = FlowConfig(size=8, levels=2, steps_per_level=1, hidden=8)
WORLD = 2
TIMEOUT = 120  # seconds for a whole launch; the process group times out after 60


def images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (n, 1, 8, 8), generator=g) * 255).to(torch.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", **extra}
    env.pop("FLOWLIB_QUICK", None)
    return env


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Exit codes and output of ``procs``; all of them are killed if they outlast ``timeout``."""
    results = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            results.append((p.returncode, out))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.communicate()
        pytest.fail(f"distributed workers hung for more than {timeout} s")
    return results


def launch(tmp_path: Path, *scenarios: str) -> list[dict]:
    """Run ``scenarios`` on two ranks; return each rank's results."""
    env = child_env(WORLD_SIZE=str(WORLD), MASTER_PORT=str(free_port()))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.training.test_distributed", *scenarios, str(tmp_path)], cwd=ROOT,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(WORLD)]
    for rank, (code, out) in enumerate(wait_all(procs, TIMEOUT)):
        assert code == 0, f"rank {rank} failed:\n{out}"
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# ---- what the workers do --------------------------------------------------------------------

def centred_loss(model: MultiScaleFlow, x: torch.Tensor) -> torch.Tensor:
    """Bits/dim with the dequantization noise fixed at its centre: the same numbers on any number of ranks."""
    y, logdet = model.dequant(x.float(), deterministic=True)
    latents, ld = model.transform(y)
    log_p = sum(-0.5 * z.pow(2).flatten(1).sum(1) - 0.5 * z[0].numel() * math.log(2 * math.pi) for z in latents)
    return -(log_p + logdet + ld).mean() / (model.num_dims * math.log(2))


def start_model() -> MultiScaleFlow:
    torch.manual_seed(0)
    model = MultiScaleFlow(TINY)
    model.log_prob(images(32, seed=5))
    return perturb(model, std=0.05)


def one_step(model: MultiScaleFlow, batch: torch.Tensor, **hooks) -> float:
    """One SGD step (the update is proportional to the gradient, so the comparison is sharp)."""
    loss_fn = hooks.pop("loss_fn", centred_loss)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    return fit(model, iter([batch]), 1, optimizer=opt, clip_grad=None, loss_fn=loss_fn, progress=False,
               **hooks).loss[0]


def scenario_step(rank: int, folder: Path) -> dict:
    model = start_model()
    ddp = dist.wrap_loss(model, centred_loss)
    batch = images(16, seed=1).chunk(WORLD)[rank]
    loss = one_step(model, batch, loss_fn=lambda m, x: ddp(x), reduce_loss=dist.mean_over_ranks)
    return {"state": model.state_dict(), "loss": loss}


def scenario_actnorm(rank: int, folder: Path) -> dict:
    torch.manual_seed(0)
    model = MultiScaleFlow(TINY)
    model.log_prob(images(16, seed=10 + rank))  # a mistake on purpose: each rank initialises on its own batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dist.wrap_loss(model, centred_loss)
    return {"before": before, "after": model.state_dict()}


class Stub(torch.nn.Module):
    """A "model" whose bits/dim is the image's first pixel: a wrong count or a lost image changes the mean."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def bits_per_dim(self, x):
        return x[:, 0, 0, 0].double()


def scenario_eval(rank: int, folder: Path) -> dict:
    x = torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1) * 10
    return {"bpd": evaluate_bpd(Stub(), x, batch_size=2, distributed=True)}


def train_config(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 8, "batch_size": 8, "eval_every": 4, "eval_images": 16, "save_every": 2,
                          "lr": 3e-3, "channels_last": False, **kw})


def train(folder: Path, name: str, resume: Path | None = None, stop_fn=None):
    return train_model(TINY if resume is None else None, train_config(), out=folder / name, resume=resume,
                       device="cpu", progress=False, train_images=images(64), test_images=images(16, 1),
                       log=lambda *a: None, stop_fn=stop_fn, distributed=True)


def scenario_train(rank: int, folder: Path) -> dict:
    real_bpd = MultiScaleFlow.bits_per_dim
    seen: list[torch.Tensor] = []
    saves: list[int] = []

    def recording(self, x):
        if self.training:
            seen.append(x.clone())
        return real_bpd(self, x)

    import flowlib.training.train as train_mod

    real_save = train_mod.save_checkpoint
    train_mod.save_checkpoint = lambda *a, **k: (saves.append(k["step"]), real_save(*a, **k))[1]
    MultiScaleFlow.bits_per_dim = recording
    whole, info = train(folder, "whole.pt")  # one epoch: 64 images in 8 global batches of 8
    MultiScaleFlow.bits_per_dim = real_bpd
    train(folder, "resumed.pt", stop_fn=lambda history: history.step >= 4)  # interrupted after step 4's evaluation
    resumed, info_resumed = train(folder, "resumed.pt", resume=folder / "resumed.pt")
    return {"whole": whole.state_dict(), "resumed": resumed.state_dict(), "history": info["history"],
            "history_resumed": info_resumed["history"], "seen": torch.cat(seen), "saves": saves}


def label_of(x: torch.Tensor) -> torch.Tensor:
    """A label that is a function of the image: a pair torn apart by the sharding shows."""
    return (x.flatten(1).sum(1) // 255 % 3).long()


def scenario_cond(rank: int, folder: Path) -> dict:
    config = FlowConfig(**{**TINY.to_dict(), "condition": "class", "num_classes": 3})
    real_bpd = MultiScaleFlow.bits_per_dim
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(self, x, cond=None):
        if self.training:
            pairs.append((x.clone(), cond.clone()))
        return real_bpd(self, x, cond)

    MultiScaleFlow.bits_per_dim = recording
    try:
        train_x, test_x = images(64), images(16, 1)
        model, info = train_model(config, train_config(), out=folder / "cond.pt", device="cpu", progress=False,
                                  train_images=train_x, train_labels=label_of(train_x), test_images=test_x,
                                  test_labels=label_of(test_x), log=lambda *a: None, distributed=True)
    finally:
        MultiScaleFlow.bits_per_dim = real_bpd
    return {"state": model.state_dict(), "history": info["history"], "x": torch.cat([x for x, _ in pairs]),
            "labels": torch.cat([c for _, c in pairs])}


def scenario_nan(rank: int, folder: Path) -> dict:
    real_bpd = MultiScaleFlow.bits_per_dim
    calls = {"n": 0}

    def poisoned(self, x):  # only rank 1 goes wrong, at its 5th training step
        calls["n"] += self.training
        out = real_bpd(self, x)
        return out * float("nan") if rank == 1 and self.training and calls["n"] >= 5 else out

    MultiScaleFlow.bits_per_dim = poisoned
    try:
        train(folder, "nan.pt")
        message = None
    except NonFiniteLossError as err:
        message = str(err)
    finally:
        MultiScaleFlow.bits_per_dim = real_bpd
    return {"message": message}


def worker(scenarios: list[str], folder: Path) -> None:
    torch.set_num_threads(1)
    dist.init("cpu", timeout=60)
    try:
        rank = dist.rank()
        results = {name: globals()[f"scenario_{name}"](rank, folder) for name in scenarios}
        torch.save(results, folder / f"rank{rank}.pt")
    finally:
        dist.shutdown()


# ---- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One launch of two ranks for every scenario (starting the processes is the slow part)."""
    folder = tmp_path_factory.mktemp("dist")
    return folder, launch(folder, "step", "actnorm", "eval", "train", "nan", "cond")


def test_shards_are_disjoint_and_cover_the_epoch():
    data = torch.arange(30)
    parts = [dist.shard_batches(data, 6, seed=3, rank=r, world_size=3) for r in range(3)]
    epoch = [torch.cat([next(p) for _ in range(5)]) for p in parts]  # 30 // 6 = 5 global batches
    assert all(len(e) == 10 for e in epoch)
    assert sorted(torch.cat(epoch).tolist()) == list(range(30))
    single = dist.shard_batches(data, 6, seed=3)
    assert torch.equal(next(single), torch.cat([next(dist.shard_batches(data, 6, seed=3, rank=r, world_size=3))
                                                for r in range(3)]))  # rank parts put together = the global batch
    later = dist.shard_batches(data, 6, seed=3, rank=1, world_size=3, start_step=7)
    again = dist.shard_batches(data, 6, seed=3, rank=1, world_size=3)
    assert torch.equal(next(later), [next(again) for _ in range(8)][-1])  # resuming at a step replays its batch
    first = torch.cat([next(dist.shard_batches(data, 6, seed=3)) for _ in range(1)] + [next(single) for _ in range(4)])
    second = torch.cat([next(single) for _ in range(5)])
    assert sorted(second.tolist()) == list(range(30)) and not torch.equal(first, second)  # a new shuffle each epoch
    with pytest.raises(ValueError, match="multiple of the 4 processes"):
        next(dist.shard_batches(data, 6, world_size=4))


def test_one_step_on_two_ranks_equals_one_step_on_both_batches(launched):
    _, results = launched
    both = images(16, seed=1)
    model = start_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = one_step(model, both)
    alone = start_model()
    one_step(alone, both[:8])  # negative control: rank 0's half alone gives another step
    moved = max((p - before[k]).abs().max().item() for k, p in model.named_parameters())
    assert moved > 1e-3
    for r in results:
        assert r["step"]["loss"] == pytest.approx(loss, rel=1e-5)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(r["step"]["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.allclose(alone.state_dict()[k], model.state_dict()[k], rtol=1e-5, atol=1e-6) for k in before)


def test_every_rank_starts_from_rank_0s_actnorm_initialisation(launched):
    _, results = launched
    a, b = (r["actnorm"] for r in results)
    assert not torch.equal(a["before"]["pre.layers.0.bias"], b["before"]["pre.layers.0.bias"])  # they did differ
    for name, value in a["before"].items():
        assert torch.equal(a["after"][name], value) and torch.equal(b["after"][name], value), name


def test_evaluation_counts_every_image_once(launched):
    _, results = launched
    x = torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1) * 10
    assert evaluate_bpd(Stub(), x) == pytest.approx(30.0)
    assert [r["eval"]["bpd"] for r in results] == [30.0, 30.0]


def test_ranks_see_disjoint_data_and_together_all_of_it(launched):
    _, results = launched
    data = {bytes(x.flatten().tolist()): i for i, x in enumerate(images(64))}
    assert len(data) == 64
    seen = [[data[bytes(x.flatten().tolist())] for x in r["train"]["seen"]] for r in results]
    assert [len(s) for s in seen] == [32, 32]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(64))


def test_ranks_stay_identical_and_only_rank_0_saves(launched):
    _, (a, b) = launched
    for name, value in a["train"]["whole"].items():
        assert torch.equal(b["train"]["whole"][name], value), name
    assert a["train"]["history"] == b["train"]["history"]  # same losses, evaluations and seconds
    assert a["train"]["saves"] and not b["train"]["saves"]


def test_resumed_distributed_run_equals_an_uninterrupted_one(launched):
    folder, (a, _) = launched
    assert a["train"]["history_resumed"]["loss"] == pytest.approx(a["train"]["history"]["loss"], rel=1e-6)
    for name, value in a["train"]["whole"].items():
        torch.testing.assert_close(a["train"]["resumed"][name], value, rtol=1e-6, atol=1e-7, msg=name)
    model, ckpt = load_checkpoint(folder / "whole.pt")  # a plain single-process load
    assert ckpt["step"] == 8 and ckpt["metrics"]["world_size"] == 2
    for name, value in model.state_dict().items():
        assert torch.equal(a["train"]["whole"][name], value), name


def test_a_nan_on_one_rank_stops_every_rank_with_one_message(launched):
    tmp_path, results = launched
    messages = [r["nan"]["message"] for r in results]
    assert messages[0] is not None and messages[0] == messages[1]
    assert messages[0].startswith("the loss became nan at step 5;")
    model, ckpt = load_checkpoint(tmp_path / "nan.pt")  # the last good one, from step 4
    assert ckpt["step"] == 4 and all(torch.isfinite(p).all() for p in model.parameters())


def test_a_class_conditional_model_trains_on_two_ranks(launched):
    folder, (a, b) = launched
    for r in (a, b):
        assert len(r["cond"]["x"]) == 32 and torch.equal(r["cond"]["labels"], label_of(r["cond"]["x"]))  # still paired
    assert not set(map(bytes, a["cond"]["x"].flatten(1).tolist())) & set(map(bytes, b["cond"]["x"].flatten(1).tolist()))
    for name, value in a["cond"]["state"].items():
        assert torch.equal(b["cond"]["state"][name], value), name
    assert a["cond"]["history"] == b["cond"]["history"]
    model, ckpt = load_checkpoint(folder / "cond.pt")
    assert model.config.condition == "class" and ckpt["step"] == 8 and ckpt["metrics"]["world_size"] == 2
    x, zeros = images(4, 2), torch.zeros(4, dtype=torch.long)
    assert not torch.allclose(model.log_prob(x, zeros), model.log_prob(x, zeros + 1))  # the label matters


def test_torchrun_runs_the_command_line(tmp_path):
    require_dataset("MNIST")
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["--standalone", "--nproc_per_node=2", "-m", "flowlib.training.train", "--dataset", "mnist", "--steps", "2",
            "--batch-size", "8", "--eval-every", "2", "--eval-images", "20", "--limit-train", "64", "--hidden", "4",
            "--steps-per-level", "1", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "c.pt")]
    run = subprocess.Popen([str(torchrun), *args], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    [(code, out)] = wait_all([run], TIMEOUT)
    assert code == 0, out
    assert out.count("test bits/dim") == 1  # rank 0 alone reports
    model, ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["step"] == 2 and ckpt["metrics"]["world_size"] == 2


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path, capsys, monkeypatch):
    import flowlib.training.train as train_mod

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc_per_node=2 would set it
    monkeypatch.setattr(dist, "init", lambda *a, **k: pytest.fail("joined a process group"))
    code = train_mod.main(["--out", str(tmp_path / "c.pt"), "--steps", "2", "--batch-size", "7", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --batch-size 7 is the global batch, split across the 2 processes of torchrun; pass a "
                          "multiple of 2")
    assert list(tmp_path.iterdir()) == []
    code = train_mod.main(["--out", str(tmp_path / "c.pt"), "--steps", "2", "--batch-size", "8", "--limit-train", "4",
                           "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: --limit-train 4 is fewer images than one global batch of 8; pass at least 8\n"
    assert list(tmp_path.iterdir()) == []


if __name__ == "__main__":
    worker(sys.argv[1:-1], Path(sys.argv[-1]))
