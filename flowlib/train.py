"""Train the multi-scale flow on MNIST or FashionMNIST: library and command line (notebook 06).

    python -m flowlib.train --dataset mnist --out runs/mnist.pt --steps 3000
    python -m flowlib.train --dataset mnist --out runs/mnist.pt --steps 6000 --resume runs/mnist.pt

The device is picked automatically (CUDA, else Apple MPS, else CPU). Training uses Adam
(AdamW with ``--weight-decay``), a linear warm-up then cosine decay of the learning rate,
gradient-norm clipping, a tqdm progress bar and a test bits/dim every ``--eval-every``
steps. A NaN or infinite loss stops training with a message; the last checkpoint written
(only ever from finite weights) stays intact.
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

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint, shipped_checkpoint, verify_sha256
from .config import default_device
from .data import load_images
from .model import FlowConfig, MultiScaleFlow
from .training import History, NonFiniteLossError, batches_from_tensor, fit

__all__ = ["TrainConfig", "train_model", "evaluate_bpd", "fit_or_load", "main"]


@dataclass
class TrainConfig:
    """Optimisation settings, stored in the checkpoint's history."""

    dataset: str = "mnist"
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    final_lr_fraction: float = 0.05
    clip_grad: float = 1.0
    eval_every: int = 500
    eval_images: int = 2000
    save_every: int = 500
    seed: int = 0
    limit_train: int | None = None

    def lr_factor(self, step: int) -> float:
        """Linear warm-up to 1, then cosine decay to ``final_lr_fraction`` at ``steps``."""
        if self.warmup_steps and step <= self.warmup_steps:
            return step / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate_bpd(model: MultiScaleFlow, images: torch.Tensor, batch_size: int = 500, importance_samples: int = 1,
                 progress: bool = False) -> float:
    """Mean bits/dim of ``images`` (uint8, any device) under ``model``; K>1 uses importance weighting."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for chunk in tqdm(images.split(batch_size), desc="evaluating", disable=not progress, leave=False):
        chunk = chunk.to(device)
        if importance_samples > 1:
            bpd = model.importance_bits_per_dim(chunk, importance_samples)
        else:
            bpd = model.bits_per_dim(chunk)
        total += bpd.double().sum().item()
        n += chunk.shape[0]
    model.train(was_training)
    return total / n


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.weight_decay > 0:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train_model(model_config: FlowConfig | None = None, train_config: TrainConfig | None = None, *,
                out: str | Path | None = None, resume: str | Path | None = None,
                device: torch.device | str | None = None, progress: bool = True,
                train_images: torch.Tensor | None = None, test_images: torch.Tensor | None = None,
                log=print) -> tuple[MultiScaleFlow, dict[str, Any]]:
    """Train (or continue training) a :class:`MultiScaleFlow`; return ``(model, info)``.

    ``resume`` continues from a checkpoint written by this function: the model config,
    weights, optimizer state, step and history come from it, and training goes on up to
    ``train_config.steps`` in total. ``out`` receives a checkpoint every ``save_every``
    steps and at the end. ``train_images``/``test_images`` (uint8) override the dataset.
    """
    tc = train_config or TrainConfig()
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(tc.seed)
    history = History()
    state = None
    if resume is not None:
        model, state = load_checkpoint(resume, dataset=tc.dataset)
        if model_config is not None and model.config != model_config:
            raise CheckpointError(f"{resume} holds a model with another config than the one given")
        history.step = int(state["step"])
        history.loss = list(state["history"].get("loss", []))
        history.evals = [tuple(e) for e in state["history"].get("evals", [])]
        log(f"resuming {resume} at step {history.step}")
    else:
        model = MultiScaleFlow(model_config or FlowConfig())
    model.to(device)

    if train_images is None:
        train_images = load_images(tc.dataset, "train", limit=tc.limit_train).images
    if test_images is None:
        test_images = load_images(tc.dataset, "test").images
    eval_set = test_images[: tc.eval_images].to(device)
    data = train_images.to(device)

    opt = _make_optimizer(model, tc)
    if state is not None and state.get("optimizer") is not None:
        opt.load_state_dict(state["optimizer"])
        for g in opt.param_groups:  # the schedule multiplies the base rate, not the last one
            g["lr"] = tc.lr
    if history.step == 0:
        with torch.no_grad():  # data-dependent ActNorm initialisation on a large first batch
            model.log_prob(data[: min(len(data), 512)])

    def checkpoint(step: int) -> None:
        if out is not None:
            save_checkpoint(out, model, dataset=tc.dataset, step=step, optimizer=opt,
                            metrics=metrics(), history=hist_dict())

    def metrics() -> dict[str, Any]:
        m: dict[str, Any] = {"train_seconds": train_seconds[0]}
        if history.evals:
            m["test_bpd"] = history.evals[-1][1]
            m["test_bpd_images"] = int(eval_set.shape[0])
        return m

    def hist_dict() -> dict[str, Any]:
        return {"loss": history.loss, "evals": [list(e) for e in history.evals], "train_config": asdict(tc)}

    train_seconds = [float(state["metrics"].get("train_seconds", 0.0)) if state else 0.0]
    t0 = [time.perf_counter()]

    def callback(step: int, loss: float) -> None:
        if out is not None and tc.save_every and step % tc.save_every == 0 and step < tc.steps:
            train_seconds[0] += time.perf_counter() - t0[0]
            checkpoint(step)
            t0[0] = time.perf_counter()

    remaining = max(0, tc.steps - history.step)
    batches = batches_from_tensor(data, tc.batch_size, seed=tc.seed + history.step)
    fit(model, batches, remaining, optimizer=opt, lr_schedule=tc.lr_factor, clip_grad=tc.clip_grad,
        loss_fn=lambda m, x: m.bits_per_dim(x).mean(), eval_fn=lambda m: evaluate_bpd(m, eval_set),
        eval_every=tc.eval_every, callback=callback, history=history, progress=progress,
        desc=f"training {tc.dataset}")
    train_seconds[0] += time.perf_counter() - t0[0]
    if not history.evals or history.evals[-1][0] != history.step:
        history.evals.append((history.step, evaluate_bpd(model, eval_set)))
    checkpoint(history.step)
    info = {"step": history.step, "metrics": metrics(), "history": hist_dict(), "dataset": tc.dataset,
            "source": "trained"}
    return model.eval(), info


def fit_or_load(dataset: str = "mnist", model_config: FlowConfig | None = None, train_config: TrainConfig | None = None,
                *, folder: str | Path | None = None, device: torch.device | str | None = None,
                progress: bool = True, out: str | Path | None = None, log=print) -> tuple[MultiScaleFlow, dict[str, Any]]:
    """Load the shipped checkpoint ``data/checkpoints/<dataset>.pt`` if there is one, else train.

    A shipped checkpoint must be listed in ``SHA256SUMS`` with a matching hash. Its own
    config is used (``model_config`` only matters for training). A model trained here is
    saved to ``out`` when given.
    """
    path = shipped_checkpoint(dataset, folder)
    device = torch.device(device) if device is not None else default_device()
    if path is not None:
        verify_sha256(path)
        model, ckpt = load_checkpoint(path, dataset=dataset, device=device)
        bpd, n = ckpt["metrics"].get("test_bpd"), ckpt["metrics"].get("test_bpd_images")
        score = "not recorded" if bpd is None else f"{bpd:.3f} on the first {n} test images"
        log(f"loaded the shipped checkpoint {path.name} (step {ckpt['step']}, test bits/dim {score})")
        ckpt["source"] = "shipped"
        return model, ckpt
    tc = train_config or TrainConfig(dataset=dataset)
    if tc.dataset != dataset:
        raise ValueError(f"train_config.dataset is {tc.dataset!r} but dataset is {dataset!r}")
    log(f"no shipped checkpoint for {dataset}: training for {tc.steps} steps on {device}")
    return train_model(model_config, tc, out=out, device=device, progress=progress, log=log)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flowlib.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--out", required=True, help="checkpoint file to write (atomically)")
    p.add_argument("--resume", help="continue from this checkpoint (same model config)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    tdef = TrainConfig()
    for f in fields(TrainConfig):
        if f.name == "dataset":
            continue
        kind = int if f.name == "limit_train" else type(getattr(tdef, f.name))
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=getattr(tdef, f.name))
    mdef = FlowConfig()
    for f in fields(FlowConfig):
        default = getattr(mdef, f.name)
        if isinstance(default, bool):
            p.add_argument("--" + f.name.replace("_", "-"), type=lambda s: s.lower() in ("1", "true", "yes"),
                           default=default)
        else:
            p.add_argument("--" + f.name.replace("_", "-"), type=type(default), default=default)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tc = TrainConfig(dataset=args.dataset, **{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                                               if f.name != "dataset"})
    mc = None
    if args.resume is None:
        try:
            mc = FlowConfig(**{f.name: getattr(args, f.name) for f in fields(FlowConfig)})
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        read_checkpoint(args.resume)  # fail early and clearly on a bad file
    try:
        model, info = train_model(mc, tc, out=args.out, resume=args.resume, device=args.device,
                                  progress=not args.no_progress)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        print(f"no checkpoint was written from the bad step; {args.out} holds the last good one, if any", file=sys.stderr)
        return 2
    except (CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    m = info["metrics"]
    print(f"step {info['step']}: test bits/dim {m['test_bpd']:.4f} on {m['test_bpd_images']} images; "
          f"{model.num_parameters():,} parameters; checkpoint {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
