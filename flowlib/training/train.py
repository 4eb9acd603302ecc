"""Train the multi-scale flow on MNIST or FashionMNIST: library and command line (notebook 06).

    python -m flowlib.train --dataset mnist --out runs/mnist.pt --steps 3000
    python -m flowlib.train --dataset mnist --out runs/mnist.pt --steps 6000 --resume runs/mnist.pt
    python -m flowlib.train --dataset fashion-mnist --condition class --out runs/fashion-class.pt   # notebook 08
    torchrun --nproc_per_node=2 -m flowlib.train --dataset mnist --out runs/mnist.pt --steps 3000   # distributed.py

The device is picked automatically (CUDA, else Apple MPS, else CPU). Training uses Adam
(AdamW with ``--weight-decay``), a linear warm-up then cosine decay of the learning rate,
gradient-norm clipping, a tqdm progress bar and a test bits/dim every ``--eval-every``
steps. A NaN or infinite loss stops training with a message; the last checkpoint written
(only ever from finite weights) stays intact. ``--condition class|lowres|mask`` trains a
conditional model ``p(x | c)`` (:mod:`flowlib.models.conditions`): the labels, the low-resolution
copy, or a masked copy with a random half of each training image hidden.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..config import default_device
from ..data.images import load_images
from ..layers.nets import conditioner_precision
from ..models.conditions import CONDITIONS
from ..models.multiscale import FlowConfig, MultiScaleFlow, make_condition
from . import distributed as dist
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint, shipped_checkpoint, verify_sha256
from .ema import WeightAverage
from .evaluate import evaluate_bpd  # re-exported: notebooks import it from here
from .loop import History, NonFiniteLossError, batches_from_tensor, fit

__all__ = ["TrainConfig", "PRESETS", "preset", "has_fast_bfloat16", "train_model", "evaluate_bpd", "fit_or_load", "main"]


@dataclass
class TrainConfig:
    """Optimisation settings, stored in the checkpoint's history.

    A run ends after ``steps`` optimiser steps or, when ``minutes`` is set, once that many
    minutes of training (evaluation and saving not counted) have passed, whichever comes
    first. With ``minutes`` the cosine schedule runs over the time budget instead of the
    steps, so a short budget still ends at a low learning rate. ``pause_after_minutes``
    stops this process early, with a resumable checkpoint, without changing the schedule:
    ``--resume`` with the same options goes on where it stopped. ``clock="cpu"`` measures
    process CPU time instead of wall-clock time (for experiments on a shared machine).
    ``channels_last`` stores conv weights and activations pixel-major (about 10% less CPU time
    per step in ``benchmarks/step_speed.py``; same maths). ``compile`` runs the loss through
    ``torch.compile`` (faster steps after a compilation of several seconds; falls back to
    eager mode, with a warning, if compilation fails). ``ema`` > 0 keeps an exponential moving
    average of the weights with that decay per step (``ema_k = d ema_{k-1} + (1 - d) w_k``, with
    ``d`` ramped up as ``min(ema, (1 + k) / (10 + k))`` so the first steps do not freeze it);
    evaluations and the saved model use the average, and the trained weights are stored beside
    it for ``--resume``. ``precision="bfloat16"`` runs the couplings' conditioner networks in
    bfloat16 during training steps (:func:`flowlib.layers.nets.conditioner_precision`; the flow's
    own arithmetic, evaluation and the saved weights stay float32): fewer CPU seconds per step on
    a processor with bfloat16 instructions, slower on one without.

    The defaults are issue 25's optimisation recipe (batch 16, lr 2e-3 after a 400-step warm-up, a
    weight average of decay 0.999): at 20 CPU-minutes as good as the earlier default at 40
    (benchmarks/README.md). ``preset("flagship")`` adds logistic-mixture couplings and bfloat16
    conditioners, the recipe of issue 25's MNIST and FashionMNIST flagship runs; ``preset("classic")``
    gives the earlier recipe (batch 32, lr 1e-3, no warm-up, no average), which the conditional
    checkpoints were trained with.
    """

    dataset: str = "mnist"
    steps: int = 3000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 400
    final_lr_fraction: float = 0.05
    clip_grad: float = 1.0
    eval_every: int = 500
    eval_images: int = 2000
    save_every: int = 500
    seed: int = 0
    limit_train: int | None = None
    minutes: float | None = None
    pause_after_minutes: float | None = None
    eval_every_minutes: float | None = None
    save_every_minutes: float = 5.0
    clock: str = "wall"
    channels_last: bool = True
    compile: bool = False
    ema: float = 0.999
    precision: str = "float32"

    def __post_init__(self) -> None:
        """Reject settings that cannot train, naming the field, before any data is loaded or file written."""
        from ..data.images import DATASETS

        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}")
        counts = {"steps": 0, "batch_size": 1, "warmup_steps": 0, "eval_every": 0, "eval_images": 1, "save_every": 0,
                  "limit_train": 1, "seed": None}
        for name, least in counts.items():
            value = getattr(self, name)
            if name == "limit_train" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or (least is not None and value < least):
                raise ValueError(f"{name} must be a whole number" + (f" >= {least}" if least is not None else "")
                                 + f", got {value!r}")
        for name in ("lr", "clip_grad", "minutes", "pause_after_minutes", "eval_every_minutes"):
            value = getattr(self, name)
            if value is None and name != "lr":
                continue  # None switches the feature off
            if not _is_number(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        for name in ("weight_decay", "save_every_minutes"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not _is_number(self.final_lr_fraction) or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction!r}")
        if self.clock not in _CLOCKS:
            raise ValueError(f"clock must be one of {sorted(_CLOCKS)}, got {self.clock!r}")
        if not _is_number(self.ema) or not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1) (0: no averaging), got {self.ema!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {self.precision!r}")

    def lr_factor(self, step: int, seconds: float = 0.0) -> float:
        """Linear warm-up to 1 over :meth:`warmup` steps, then cosine decay to ``final_lr_fraction``.

        The decay runs over ``steps``, or over ``minutes`` of training time when that is set
        (``seconds`` is the training time so far).
        """
        warmup = self.warmup()
        if warmup and step <= warmup:
            return step / warmup
        if self.minutes is not None:
            t = min(1.0, seconds / (60 * self.minutes))
        else:
            t = min(1.0, (step - warmup) / max(1, self.steps - warmup))
        return self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))

    def warmup(self) -> int:
        """The warm-up in steps: ``warmup_steps``, but at most a quarter of ``steps``.

        So the default warm-up of 400 steps does not swallow a short run (``steps=100`` warms up
        over 25 steps and then decays); a time budget with the step limit lifted keeps all of it.
        """
        return min(self.warmup_steps, self.steps // 4)

    def timer(self):
        """The clock that training time is measured with."""
        if self.clock not in _CLOCKS:
            raise ValueError(f"clock must be one of {sorted(_CLOCKS)}, got {self.clock!r}")
        return _CLOCKS[self.clock]


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}

# Named recipes (``python -m flowlib.train --preset NAME``): model and training settings over the defaults,
# which the options given on the command line override. benchmarks/README.md has the study that chose them.
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # issue 25's study (benchmarks/README.md): the default optimisation, logistic-mixture couplings (1.0928 at 20
    # CPU-minutes against the affine couplings' 1.1284) and bfloat16 conditioners (1.0811: 30% more steps in the
    # same CPU time, on a processor with bfloat16 instructions); the model part is not the default, so
    # notebooks 03-07 keep their affine teaching layout and the older checkpoints their meaning
    "flagship": ({"coupling": "mixture"}, {"batch_size": 16, "lr": 2e-3, "warmup_steps": 400, "ema": 0.999,
                                           "precision": "bfloat16", "channels_last": False}),
    # the default before issue 25: the recipe the conditional checkpoints and notebook 09's flows were trained with
    "classic": ({}, {"batch_size": 32, "lr": 1e-3, "warmup_steps": 0, "ema": 0.0}),
}


def preset(name: str, **train_options: Any) -> tuple[FlowConfig, TrainConfig]:
    """The model and training configs of the named recipe in :data:`PRESETS` (``train_options`` override)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    model, train = PRESETS[name]
    return FlowConfig(**model), TrainConfig(**{**train, **train_options})


def _is_number(value: object) -> bool:
    """A finite int or float (not a bool): what every numeric TrainConfig field must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bpd_loss(model: MultiScaleFlow, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean bits/dim of a batch of images, or of ``(images, labels)`` given their training condition."""
    if isinstance(batch, torch.Tensor):
        return model.bits_per_dim(batch).mean()
    x, labels = batch
    return model.bits_per_dim(x, make_condition(model.config, x, labels, train=True)).mean()


def has_fast_bfloat16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively: a GPU, or a CPU with AVX512-BF16 or AMX instructions.

    Without them PyTorch emulates bfloat16 matrix products on the CPU: on one such machine (AVX2 only) a training
    step of the flagship preset took 9 times as long as in float32 (benchmarks/README.md, "The flagship runs").
    """
    if torch.device(device).type != "cpu":
        return True
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def _loss_fn(compile_it: bool, log, precision: str = "float32"):
    """The training loss, optionally through ``torch.compile`` with eager mode as the fallback.

    With ``precision="bfloat16"`` the conditioner networks compute in bfloat16 (float32 elsewhere).
    """
    dtype = _PRECISIONS[precision]
    if dtype is not None:
        inner = _loss_fn(compile_it, log)

        def low_precision_loss(model: MultiScaleFlow, x: torch.Tensor) -> torch.Tensor:
            with conditioner_precision(dtype):
                return inner(model, x)

        return low_precision_loss
    if not compile_it:
        return _bpd_loss
    compiled = torch.compile(_bpd_loss)
    state = {"eager": False}

    def loss(model: MultiScaleFlow, x: torch.Tensor) -> torch.Tensor:
        if not state["eager"]:
            try:
                return compiled(model, x)
            except Exception as err:  # noqa: BLE001 - any compiler failure: train on, uncompiled
                state["eager"] = True
                log(f"warning: torch.compile failed ({type(err).__name__}); training in eager mode")
        return _bpd_loss(model, x)

    return loss


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.weight_decay > 0:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train_model(model_config: FlowConfig | None = None, train_config: TrainConfig | None = None, *,
                out: str | Path | None = None, resume: str | Path | None = None,
                device: torch.device | str | None = None, progress: bool = True,
                train_images: torch.Tensor | None = None, test_images: torch.Tensor | None = None,
                train_labels: torch.Tensor | None = None, test_labels: torch.Tensor | None = None,
                log=print, stop_fn=None, distributed: bool = False) -> tuple[MultiScaleFlow, dict[str, Any]]:
    """Train (or continue training) a :class:`MultiScaleFlow`; return ``(model, info)``.

    ``resume`` continues from a checkpoint written by this function: the model config,
    weights, optimizer state, step and history come from it, and training goes on up to
    ``train_config.steps`` in total. ``out`` receives a checkpoint every ``save_every``
    steps and at the end. ``train_images``/``test_images`` (uint8) override the dataset, with
    ``train_labels``/``test_labels`` for a class-conditional model.
    ``stop_fn(history)``, called after each evaluation, ends training early when it returns True.

    ``distributed=True`` trains with every rank of the process group (:mod:`flowlib.training.distributed`,
    started by ``torchrun``): every rank calls this function with the same arguments, and
    ``train_config.batch_size`` is the global batch, split across the ranks. Only rank 0 logs,
    shows progress and writes ``out``; the checkpoint is the same as a single process writes.
    """
    tc = train_config or TrainConfig()
    if distributed and not dist.is_active():
        raise RuntimeError(
            "distributed=True needs a process group: start with torchrun, or call flowlib.training.distributed.init"
        )
    if distributed and not dist.is_main():
        log, progress = (lambda *a, **k: None), False
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(tc.seed)
    history = History()
    state = None
    if resume is not None:
        model, state = load_checkpoint(resume, dataset=tc.dataset)
        if model_config is not None and model.config != model_config:
            raise CheckpointError(f"{resume} holds a model with another config than the one given")
        stored = state["history"]
        history.step = int(state["step"])
        history.loss = list(stored.get("loss", []))
        history.evals = [tuple(e) for e in stored.get("evals", [])]
        history.seconds = float(stored.get("seconds", state["metrics"].get("train_seconds", 0.0)))
        history.eval_seconds = [float(t) for t in stored.get("eval_seconds", [])]
        log(f"resuming {resume} at step {history.step} ({history.seconds / 60:.1f} min of training so far)")
    else:
        model = MultiScaleFlow(model_config or FlowConfig())
    model.to(device)
    if tc.channels_last:
        model.to(memory_format=torch.channels_last)
    if tc.precision == "bfloat16" and not has_fast_bfloat16(device):
        log("warning: this processor has no bfloat16 instructions (AVX512-BF16 or AMX), so bfloat16 conditioners "
            "are emulated and steps are many times slower; train with --precision float32 here")

    if train_images is None:
        train = load_images(tc.dataset, "train", limit=tc.limit_train)
        train_images, train_labels = train.images, train.labels
    if test_images is None:
        test = load_images(tc.dataset, "test")
        test_images, test_labels = test.images, test.labels
    conditional = model.config.condition is not None
    if model.config.condition == "class" and (train_labels is None or test_labels is None):
        raise ValueError("a class-conditional model needs train_labels and test_labels with the images")
    eval_set = test_images[: tc.eval_images].to(device)
    eval_labels = test_labels[: tc.eval_images] if test_labels is not None else None
    data = train_images.to(device)
    if conditional and train_labels is None:
        train_labels = torch.zeros(len(data), dtype=torch.long)  # only "class" reads them
    labels = train_labels.to(device) if conditional else None

    opt = _make_optimizer(model, tc)
    if state is not None and state.get("optimizer") is not None:
        opt.load_state_dict(state["optimizer"])
        for g in opt.param_groups:  # the schedule multiplies the base rate, not the last one
            g["lr"] = tc.lr
    if history.step == 0:
        with torch.no_grad():  # data-dependent ActNorm initialisation on a large first batch
            first = data[: min(len(data), 512)]
            model.log_prob(first, make_condition(model.config, first, labels[: len(first)] if conditional else None,
                                                 train=True))
    average = None
    # with an average, each evaluation also scores the trained weights: what the average gains, in the history
    raw_evals = [tuple(e) for e in (state["history"].get("raw_evals", []) if state is not None else [])]
    if tc.ema:
        # a checkpoint written with an average holds it as the model and the trained weights beside it
        average = WeightAverage(model, tc.ema)
        if state is not None and state.get("train_weights") is not None:
            model.load_state_dict(state["train_weights"])

    def evaluate(m: MultiScaleFlow) -> float:
        if average is None:
            return evaluate_bpd(m, eval_set, distributed=distributed, labels=eval_labels)
        raw_evals.append((history.step, evaluate_bpd(m, eval_set, distributed=distributed, labels=eval_labels)))
        with average.applied(m):
            return evaluate_bpd(m, eval_set, distributed=distributed, labels=eval_labels)

    def metrics() -> dict[str, Any]:
        m: dict[str, Any] = {"train_seconds": history.seconds, "clock": tc.clock, "threads": torch.get_num_threads(),
                             "world_size": dist.world_size() if distributed else 1}
        if history.evals:
            m["test_bpd"] = history.evals[-1][1]
            m["test_bpd_images"] = int(eval_set.shape[0])
        return m

    def hist_dict() -> dict[str, Any]:
        d = {"loss": history.loss, "evals": [list(e) for e in history.evals], "seconds": history.seconds,
             "eval_seconds": history.eval_seconds, "train_config": asdict(tc)}
        if raw_evals:
            d["raw_evals"] = [list(e) for e in raw_evals]
        return d

    def checkpoint() -> None:
        if out is not None and (not distributed or dist.is_main()):
            if average is None:
                save_checkpoint(out, model, dataset=tc.dataset, step=history.step, optimizer=opt,
                                metrics=metrics(), history=hist_dict())
            else:
                with average.applied(model) as trained:
                    save_checkpoint(out, model, dataset=tc.dataset, step=history.step, optimizer=opt,
                                    metrics=metrics(), history=hist_dict(), train_weights=trained)
        if distributed:
            dist.barrier()  # the others wait here, not inside their next timed step
        last_save[0] = history.seconds

    last_save = [history.seconds]

    def callback(step: int, loss: float) -> None:
        if average is not None:
            average.update(model, step)
        by_steps = tc.save_every and step % tc.save_every == 0
        by_time = tc.save_every_minutes and history.seconds - last_save[0] >= 60 * tc.save_every_minutes
        if out is not None and (by_steps or by_time) and step < tc.steps:
            checkpoint()

    budget = None
    if tc.minutes is not None:
        budget = 60 * tc.minutes
    if tc.pause_after_minutes is not None:
        pause_at = history.seconds + 60 * tc.pause_after_minutes
        budget = pause_at if budget is None else min(budget, pause_at)
    remaining = max(0, tc.steps - history.step)
    if budget is not None and history.seconds >= budget:
        remaining = 0
    loss_fn = _loss_fn(tc.compile, log, tc.precision)
    hooks: dict[str, Any] = {}
    # a conditional model draws batches of indices, then takes the images and their labels
    source = torch.arange(len(data), device=device) if conditional else data
    if distributed:  # see flowlib.training.distributed for what the ranks agree on, and how
        rank = dist.rank()
        batches = dist.shard_batches(source, tc.batch_size, seed=tc.seed, rank=rank, world_size=dist.world_size(),
                                     start_step=history.step)
        ddp = dist.wrap_loss(model, loss_fn)  # also gives every rank rank 0's weights
        loss_fn = lambda m, x: ddp(x)
        hooks = {"before_step": lambda step: torch.manual_seed(dist.step_seed(tc.seed, rank, step)),
                 "reduce_loss": dist.mean_over_ranks, "reduce_seconds": lambda s: dist.max_over_ranks(s, device)}
    else:
        batches = batches_from_tensor(source, tc.batch_size, seed=tc.seed + history.step)
    if conditional:
        batches = ((data[i], labels[i]) for i in batches)
    fit(model, batches, remaining, optimizer=opt, lr_schedule=lambda step: tc.lr_factor(step, history.seconds),
        clip_grad=tc.clip_grad, loss_fn=loss_fn,
        eval_fn=evaluate,
        eval_every=tc.eval_every,
        eval_every_seconds=60 * tc.eval_every_minutes if tc.eval_every_minutes else None, callback=callback,
        history=history, progress=progress, desc=f"training {tc.dataset}", time_budget=budget, clock=tc.timer(),
        stop_fn=stop_fn, **hooks)
    if not history.evals or history.evals[-1][0] != history.step:
        history.evals.append((history.step, evaluate(model)))
        history.eval_seconds.append(history.seconds)
    checkpoint()
    if average is not None:  # the caller gets the model that was evaluated and saved
        model.load_state_dict(average.state_dict(model))
    info = {"step": history.step, "metrics": metrics(), "history": hist_dict(), "dataset": tc.dataset,
            "source": "trained"}
    return model.eval(), info


def fit_or_load(dataset: str = "mnist", model_config: FlowConfig | None = None, train_config: TrainConfig | None = None,
                *, folder: str | Path | None = None, device: torch.device | str | None = None,
                progress: bool = True, out: str | Path | None = None, log=print,
                name: str | None = None) -> tuple[MultiScaleFlow, dict[str, Any]]:
    """Load the shipped checkpoint ``data/checkpoints/<dataset>.pt`` if there is one, else train.

    A shipped checkpoint must be listed in ``SHA256SUMS`` with a matching hash. Its own
    config is used (``model_config`` only matters for training), except for the kind of
    condition: a conditional ``model_config`` (notebook 08) looks for
    ``<dataset>-<condition>.pt`` instead, e.g. ``fashion-mnist-class.pt``, which must hold a
    model with that condition. ``name`` picks another shipped file, ``<name>.pt`` (notebook 08's
    same-budget unconditional baseline). A model trained here is saved to ``out`` when given.
    """
    condition = model_config.condition if model_config is not None else None
    if name is None:
        name = dataset if condition is None else f"{dataset}-{condition}"
    path = shipped_checkpoint(name, folder)
    device = torch.device(device) if device is not None else default_device()
    if path is not None:
        verify_sha256(path)
        model, ckpt = load_checkpoint(path, dataset=dataset, device=device)
        if model.config.condition != condition:
            raise CheckpointError(f"{path} holds a model with condition={model.config.condition!r}, not {condition!r}")
        bpd, n = ckpt["metrics"].get("test_bpd"), ckpt["metrics"].get("test_bpd_images")
        score = "not recorded" if bpd is None else f"{bpd:.3f} on the first {n} test images"
        log(f"loaded the shipped checkpoint {path.name} (step {ckpt['step']}, test bits/dim {score})")
        ckpt["source"] = "shipped"
        return model, ckpt
    tc = train_config or TrainConfig(dataset=dataset)
    if tc.dataset != dataset:
        raise ValueError(f"train_config.dataset is {tc.dataset!r} but dataset is {dataset!r}")
    budget = f"{tc.steps} steps" if tc.minutes is None else f"{tc.minutes:g} minutes"
    if tc.minutes is not None and tc.steps < 10**9:  # 10**9 is the CLI's "no step limit"
        budget += f" (or {tc.steps} steps if sooner)"
    log(f"no shipped checkpoint {name}.pt: training for {budget} on {device}")
    return train_model(model_config, tc, out=out, device=device, progress=progress, log=log)


_FIELD_HELP = {
    "steps": " (with --minutes: no step limit)",
    "batch_size": "; the global batch: under torchrun it is split across the processes",
    "minutes": "; train for this many minutes, with the learning-rate schedule fitted to them",
    "pause_after_minutes": "; stop this process after this many minutes with a resumable checkpoint",
    "clock": "; wall or cpu",
    "precision": "; float32 or bfloat16 (the conditioner networks during training steps only)",
}


def _train_config(args: argparse.Namespace, ckpt: dict[str, Any] | None, dataset: str) -> TrainConfig:
    """The options given on the command line, over a resumed run's stored ones, over the defaults.

    So ``--resume`` alone continues a run with the schedule, batch size and budget it started with.
    A ``--preset``'s settings lie between the defaults and the rest.
    """
    names = [f.name for f in fields(TrainConfig) if f.name != "dataset"]
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    base: dict[str, Any] = dict(PRESETS[args.preset][1]) if args.preset else {}
    if ckpt is not None:
        stored = ckpt.get("history", {}).get("train_config", {}) or {}
        base.update({k: v for k, v in stored.items() if k in names and k != "pause_after_minutes"})
    if "steps" not in given and "steps" not in base and given.get("minutes", base.get("minutes")) is not None:
        given["steps"] = 10**9  # a time budget alone decides when to stop
    return TrainConfig(**{**base, **given, "dataset": dataset})


def _parser() -> argparse.ArgumentParser:
    from .cli import Parser

    p = Parser(prog="python -m flowlib.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default=None,
                   help="default: the checkpoint's with --resume, else mnist")
    p.add_argument("--out", required=True, help="checkpoint file to write (atomically); an existing one is refused "
                                                "unless it is the --resume file or --force is given")
    p.add_argument("--resume", help="continue from this checkpoint (its model; --steps is the total to reach)")
    p.add_argument("--force", action="store_true", help="replace --out even if it exists")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")

    def boolean(text: str) -> bool:
        value = text.strip().lower()
        if value not in ("1", "true", "yes", "0", "false", "no"):
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        return value in ("1", "true", "yes")

    kinds = {"int": int, "float": float, "str": str, "bool": boolean}
    tdef = TrainConfig()
    for f in fields(TrainConfig):
        if f.name == "dataset":
            continue
        kind = kinds[str(f.type).split("|")[0].strip()]  # "int | None" takes an int; None means unset
        # not given -> absent from the namespace: a resumed run keeps its stored setting
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=argparse.SUPPRESS,
                       help=f"default: {getattr(tdef, f.name)}" + _FIELD_HELP.get(f.name, ""))
    mdef = FlowConfig()
    p.add_argument("--condition", choices=CONDITIONS, default=None,
                   help="train a conditional model p(x | c): on the class label, a low-resolution copy, or a masked "
                        "copy (default: unconditional)")
    for f in fields(FlowConfig):
        default = getattr(mdef, f.name)
        if f.name == "condition":
            continue
        kind = boolean if isinstance(default, bool) else type(default)
        # None marks "not given": with --resume the checkpoint's model is kept and may not be contradicted
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None, help=f"model; default: {default}")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named recipe: its model and training settings replace the defaults; options given "
                        "here override them (" + "; ".join(f"{name}: {_describe(recipe)}"
                                                           for name, recipe in PRESETS.items()) + ")")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _describe(recipe: tuple[dict[str, Any], dict[str, Any]]) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in {**recipe[0], **recipe[1]}.items())


def main(argv: list[str] | None = None) -> int:
    from ..data.images import DatasetNotFoundError
    from . import cli
    from .checkpoint import is_listed

    args = _parser().parse_args(argv)
    train_names = [f.name for f in fields(TrainConfig) if f.name != "dataset"]
    model_names = [f.name for f in fields(FlowConfig)]
    world, first_rank = dist.world_size_from_env(), dist.rank_from_env() == 0  # torchrun sets them; else 1 and 0
    try:  # every check a user's mistake can fail happens here, before data is loaded or a file written
        steps = getattr(args, "steps", 1)
        cli.require(isinstance(steps, int) and steps >= 1, f"--steps must be >= 1, got {steps}")
        # first, because whatever else is wrong, this --out may not be written (a finished shipped run would
        # otherwise answer with its used-up budget, and a bigger budget with this error)
        cli.require(args.force or not first_rank or not (Path(args.out).is_file() and is_listed(args.out)),
                    f"--out {args.out} is a shipped checkpoint listed in SHA256SUMS; write to another file "
                    f"(e.g. runs/{Path(args.out).name}) or pass --force")
        device = cli.device(args.device)
        if world > 1:
            cli.require(device.type != "mps", "training on several processes runs on cuda or cpu, not mps; "
                                              "pass --device cpu")
            cli.require(device.index is None, f"--device {args.device}: under torchrun each process takes the GPU "
                                              f"numbered by its LOCAL_RANK; pass --device cuda")
        ckpt = read_checkpoint(args.resume) if args.resume is not None else None
        dataset = args.dataset or (ckpt["dataset"] if ckpt is not None else "mnist")
        tc = _train_config(args, ckpt, dataset)
        given = {name: getattr(args, name) for name in model_names if getattr(args, name) is not None}
        if args.preset:
            given = {**PRESETS[args.preset][0], **given}
        mc = None
        if ckpt is None:
            mc = FlowConfig(**given)
        else:
            cli.require(ckpt["dataset"] == dataset, f"--resume {args.resume} was trained on {ckpt['dataset']}, not "
                                                    f"{dataset}; leave --dataset out or pass --dataset {ckpt['dataset']}")
            try:
                saved = FlowConfig.from_dict(ckpt["config"])
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"{args.resume} holds an invalid model config: {err}") from err
            clash = {name: value for name, value in given.items() if getattr(saved, name) != value}
            cli.require(not clash, f"--resume keeps the model of {args.resume}, which has " + ", ".join(
                f"{name} = {getattr(saved, name)!r}" for name in clash) + "; leave out " + " ".join(
                "--" + name.replace("_", "-") for name in clash))
            cli.require(tc.steps > ckpt["step"], f"--resume {args.resume} is already at step {ckpt['step']}; --steps "
                                                 f"is the total to reach, so pass more than {ckpt['step']}")
            done = float(ckpt.get("history", {}).get("seconds", ckpt.get("metrics", {}).get("train_seconds", 0.0)))
            cli.require(tc.minutes is None or 60 * tc.minutes > done,
                        f"--resume {args.resume} has already trained for {done / 60:.1f} minutes; --minutes is the total "
                        f"budget, so pass more than {done / 60:.1f}")
        cli.require(tc.batch_size % world == 0, f"--batch-size {tc.batch_size} is the global batch, split across the "
                                                f"{world} processes of torchrun; pass a multiple of {world}")
        cli.require(world == 1 or tc.limit_train is None or tc.limit_train >= tc.batch_size,
                    f"--limit-train {tc.limit_train} is fewer images than one global batch of {tc.batch_size}; "
                    f"pass at least {tc.batch_size}")
        if first_rank:  # only rank 0 writes --out
            cli.output_file(args.out, force=args.force, may_replace=args.resume,
                            hint=f"pass --force to replace it, or --resume {args.out} to continue training it")
    except CheckpointError as err:
        return cli.fail(err)
    except ValueError as err:  # cli.UsageError, or TrainConfig / FlowConfig naming a field
        return cli.fail(cli.option_message(err, train_names + model_names))
    try:
        if world > 1:
            device = dist.init(device)
        model, info = train_model(mc, tc, out=args.out, resume=args.resume, device=device,
                                  progress=not args.no_progress, distributed=world > 1)
    except NonFiniteLossError as err:
        return cli.fail(f"{err}; no checkpoint was written from the bad step, so {args.out} holds the last good one, "
                        f"if any")
    except (CheckpointError, DatasetNotFoundError) as err:
        return cli.fail(err)
    except KeyboardInterrupt:
        print(f"interrupted; {args.out} holds the last checkpoint saved, if any (--resume {args.out} goes on)",
              file=sys.stderr)
        return 130
    finally:
        dist.shutdown()
    if not first_rank:
        return 0
    m = info["metrics"]
    given = "" if model.config.condition is None else f" given {model.config.condition}"
    print(f"step {info['step']}: test bits/dim{given} {m['test_bpd']:.4f} on {m['test_bpd_images']} images; "
          f"{model.num_parameters():,} parameters; checkpoint {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
