"""Train a flow-matching U-Net on MNIST or FashionMNIST: library and command line (notebook 11).

    python -m flowlib.train_fm --dataset mnist --minutes 60 --out runs/mnist-fm.pt
    python -m flowlib.train_fm --resume runs/mnist-fm.pt --minutes 90      # --minutes is the total to reach
    python -m flowlib.train_fm --export runs/mnist-fm.pt --out data/checkpoints/mnist-fm.pt   # weights only, to ship

The field (:class:`flowlib.layers.vector_fields.UNet`) models images in logit space (uniform
dequantization and the logit of notebook 03), so that :func:`flowlib.layers.flow_matching.image_bits_per_dim`
gives the same quantity as the multi-scale flow's bits/dim: an upper bound on the discrete images'
bits/dim (the flow's variational dequantization makes its bound tighter; this one is uniform).
Training runs on the course's one loop (:func:`flowlib.training.loop.fit`) with the
conditional flow-matching loss, Adam, a linear warm-up then cosine decay over the time budget,
gradient clipping, a progress bar, and an exponential moving average of the weights (the EMA
is what is sampled and scored, as in most strong generative models; its decay warms up as
``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that short runs average recent weights). A checkpoint is written
atomically every ``--save-minutes`` and at the end; it holds the EMA weights, the raw weights
and the optimizer, so ``--resume`` goes on exactly where a run stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import __version__
from ..data.images import DATASETS, load_images
from ..layers.dequantize import UniformDequantization
from ..layers.flow_matching import cfm_loss
from ..layers.vector_fields import UNet
from . import cli
from .checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, read_checkpoint, write_atomically
from .loop import History, batches_from_tensor, fit
from .train import TrainConfig

__all__ = ["KIND", "DEQUANT_ALPHA", "save_field_checkpoint", "load_field_checkpoint", "export_field_checkpoint",
           "sample_images", "train_field", "main"]

KIND = "flow-matching-unet"
DEQUANT_ALPHA = 0.05  # notebook 03's logit squeeze (UniformDequantization's default)


def _unet(config: dict[str, Any]) -> UNet:
    return UNet(config["channels"], base=config["base"], time_dim=config["time_dim"])


def save_field_checkpoint(path: str | Path, field: UNet, *, dataset: str, step: int, ema: nn.Module | None = None,
                          optimizer: torch.optim.Optimizer | None = None, history: dict[str, Any] | None = None) -> Path:
    """Write a flow-matching checkpoint atomically: EMA weights as ``model``, the raw ones and the optimizer beside."""
    config = {"kind": KIND, "channels": field.inp.in_channels, "base": field.inp.out_channels,
              "time_dim": field.time_dim, "dequant_alpha": DEQUANT_ALPHA}
    raw = {k: v.detach().cpu() for k, v in field.state_dict().items()}
    averaged = {k: v.detach().cpu() for k, v in ema.module.state_dict().items()} if ema is not None else raw
    if not all(torch.isfinite(v).all() for v in averaged.values() if v.is_floating_point()):
        raise CheckpointError("refusing to save a checkpoint: the field has NaN or infinite weights")
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION, "flowlib_version": __version__, "dataset": dataset,
            "config": config, "model": averaged, "raw_model": raw, "step": int(step),
            "ema_updates": int(ema.n_averaged.item()) if ema is not None else 0,
            "optimizer": optimizer.state_dict() if optimizer is not None else None, "history": dict(history or {}),
            "metrics": {}}
    return write_atomically(path, lambda f: torch.save(ckpt, f))


def load_field_checkpoint(path: str | Path, *, dataset: str | None = None, raw: bool = False) -> tuple[UNet, dict]:
    """The field stored at ``path`` (its EMA weights, or the raw ones with ``raw=True``) in eval mode, and the checkpoint."""
    ckpt = read_checkpoint(path)
    if ckpt["config"].get("kind") != KIND:
        raise CheckpointError(f"{path} holds a multi-scale flow, not a flow-matching field; "
                              f"load it with flowlib.training.checkpoint.load_checkpoint")
    if dataset is not None and ckpt["dataset"] != dataset:
        raise CheckpointError(f"{path} was trained on {ckpt['dataset']}, not {dataset}")
    field = _unet(ckpt["config"])
    if raw and "raw_model" not in ckpt:
        raise CheckpointError(f"{path} holds only the averaged weights (an exported checkpoint), so it cannot be resumed; "
                              f"resume the run it was exported from")
    field.load_state_dict(ckpt["raw_model"] if raw else ckpt["model"])
    return field.eval(), ckpt


def export_field_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Write the EMA weights of ``src`` to ``dst`` without the raw weights and the optimizer (a quarter of the size).

    What is shipped in ``data/checkpoints/``: it samples and scores like ``src``, but cannot be resumed.
    """
    _, ckpt = load_field_checkpoint(src)
    slim = {k: v for k, v in ckpt.items() if k not in ("raw_model", "optimizer")}
    slim["optimizer"] = None
    return write_atomically(dst, lambda f: torch.save(slim, f))


@torch.no_grad()
def sample_images(field: nn.Module, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
                  rtol: float = 1e-4, atol: float = 1e-4) -> tuple[torch.Tensor, int]:
    """Draw ``n`` images ``(n, C, 28, 28)`` with intensities in ``[0, 1]`` by the adaptive ODE, and the solver's NFE.

    The noise is scaled by ``temperature`` (as the multi-scale flow's latents are); the ODE's end point is
    in logit space and goes back to pixels through the inverse logit and quantization.
    """
    from ..layers.flow_matching import sample_ode

    channels = field.inp.in_channels
    x0 = temperature * torch.randn((n, channels, 28, 28), generator=generator)
    y, nfe = sample_ode(field, x0, method="adaptive", rtol=rtol, atol=atol)
    pixels, _ = UniformDequantization(alpha=DEQUANT_ALPHA).inverse(y)
    return pixels / 255, nfe


def train_field(tc: TrainConfig, *, base: int = 32, ema_decay: float = 0.999, out: str | Path | None = None,
                resume: str | Path | None = None, train_images: torch.Tensor | None = None, progress: bool = True,
                log=print) -> tuple[UNet, History]:
    """Train (or go on training, from ``resume``) a flow-matching U-Net; returns the EMA field and the history.

    ``train_images: (N, 1, 28, 28)`` integer pixels; by default the training split of ``tc.dataset``.
    """
    if resume is not None:
        field, state = load_field_checkpoint(resume, dataset=tc.dataset, raw=True)
        field.train()
    else:
        field, state = UNet(1, base=base), None
    def average(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        # the decay grows from 0.1 to ema_decay over the first steps, so a short run's average is not
        # dominated by its random initial weights (with a fixed 0.999 they keep 0.999**n of the weight)
        decay = min(ema_decay, (1 + n.item()) / (10 + n.item()))
        return decay * avg + (1 - decay) * new

    ema = torch.optim.swa_utils.AveragedModel(field, avg_fn=average)
    opt = torch.optim.Adam(field.parameters(), lr=tc.lr)
    history = History()
    if state is not None:
        ema.module.load_state_dict(state["model"])
        ema.n_averaged.fill_(state.get("ema_updates", 1))
        if state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])
        h = state["history"]
        history.step, history.seconds, history.loss = state["step"], h.get("seconds", 0.0), list(h.get("loss", []))
        log(f"resuming {resume} at step {history.step} ({history.seconds / 60:.1f} min of training so far)")
    deq = UniformDequantization(alpha=DEQUANT_ALPHA)
    data = train_images if train_images is not None else load_images(tc.dataset, "train", limit=tc.limit_train).images

    def loss_fn(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y, _ = deq(x.to(torch.get_default_dtype()))
        return cfm_loss(model, y)

    def checkpoint() -> None:
        if out is not None:
            save_field_checkpoint(out, field, dataset=tc.dataset, step=history.step, ema=ema, optimizer=opt,
                                  history={"loss": history.loss, "seconds": history.seconds,
                                           "train_config": vars(tc).copy(), "base": base, "ema_decay": ema_decay})
        last_save[0] = history.seconds

    last_save = [history.seconds]

    def callback(step: int, loss: float) -> None:
        ema.update_parameters(field)
        if out is not None and tc.save_every_minutes and history.seconds - last_save[0] >= 60 * tc.save_every_minutes:
            checkpoint()

    budget = 60 * tc.minutes if tc.minutes is not None else None
    remaining = max(0, tc.steps - history.step)
    if budget is not None and history.seconds >= budget:
        remaining = 0
    fit(field, batches_from_tensor(data, tc.batch_size, seed=tc.seed + history.step), remaining, optimizer=opt,
        lr_schedule=lambda step: tc.lr_factor(step, history.seconds), clip_grad=tc.clip_grad, loss_fn=loss_fn,
        callback=callback, history=history, progress=progress, desc=f"flow matching on {tc.dataset}",
        time_budget=budget, clock=tc.timer())
    checkpoint()
    return ema.module.eval(), history


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog="python -m flowlib.train_fm", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    p.add_argument("--minutes", type=float, default=60.0, help="minutes of training in all (a total with --resume)")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what --minutes measures (default: CPU time)")
    p.add_argument("--base", type=int, default=32, help="U-Net channels at full resolution (32: 0.5 M parameters)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-minutes", type=float, default=5.0, help="write the checkpoint this often")
    p.add_argument("--out", help="checkpoint to write (default: the --resume file)")
    p.add_argument("--resume", help="continue from this checkpoint")
    p.add_argument("--force", action="store_true", help="replace --out even if it exists")
    p.add_argument("--limit-train", type=int, help="use only the first N training images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--export", metavar="SRC", help="train nothing: write SRC's averaged weights alone to --out")
    args = p.parse_args(argv)
    try:
        cli.require(args.out is not None or args.resume is not None, "give --out (where to write the checkpoint)")
        if args.export is not None:
            cli.require(args.resume is None, "--export and --resume do not go together: --export trains nothing")
            cli.require(args.out is not None, "--export needs --out (where to write the weights)")
            cli.output_file(args.out, force=args.force)
            dst = export_field_checkpoint(args.export, args.out)
            print(f"{dst}: the averaged weights of {args.export} ({dst.stat().st_size / 2**20:.1f} MiB)")
            return 0
        out = args.out if args.out is not None else args.resume
        cli.require(0 < args.ema_decay < 1, f"--ema-decay must be between 0 and 1, got {args.ema_decay}")
        cli.require(args.base >= 8 and args.base % 8 == 0, f"--base must be a multiple of 8, got {args.base}")
        dataset = args.dataset
        if args.resume is not None:
            dataset = read_checkpoint(args.resume)["dataset"]
        cli.output_file(out, force=args.force, may_replace=args.resume,
                        hint=f"pass --force to replace it, or --resume {out} to continue training it")
        tc = TrainConfig(dataset=dataset, steps=10**9, batch_size=args.batch_size, lr=args.lr,
                         warmup_steps=args.warmup_steps, minutes=args.minutes, clock=args.clock, seed=args.seed,
                         save_every_minutes=args.save_minutes, limit_train=args.limit_train)
    except (cli.UsageError, CheckpointError, ValueError) as err:
        return cli.fail(err)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        field, history = train_field(tc, base=args.base, ema_decay=args.ema_decay, out=out, resume=args.resume,
                                     progress=not args.no_progress)
    except CheckpointError as err:
        return cli.fail(err)
    except KeyboardInterrupt:
        print(f"interrupted; {out} holds the last checkpoint saved, if any (--resume {out} goes on)", file=sys.stderr)
        return 130
    print(f"{out}: step {history.step}, {history.seconds / 60:.1f} min of training, "
          f"mean loss of the last 100 steps {sum(history.loss[-100:]) / max(1, len(history.loss[-100:])):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
