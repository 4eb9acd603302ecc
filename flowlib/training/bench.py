"""Measure training throughput and sampling latency of the multi-scale flow.

    python -m flowlib.bench                       # default config, best device
    python -m flowlib.bench --device cpu --steps 20 --batch-size 64
    python -m flowlib.bench --target-bpd 1.5 --max-seconds 600   # also: time to a test bits/dim
    python -m flowlib.bench --threads 1 --curve 20 --curve-out runs/curve.json   # learning curve

Reports, for the device it runs on: training images/s (after warm-up steps that are not
timed), seconds per training step, sampling latency for 64 images, the parameter count,
and optionally a learning curve: test bits/dim (on ``--eval-images`` images, one
dequantization sample) against training seconds for a ``--curve MINUTES`` run of the
default recipe (``train_model``, with its schedule fitted to the budget), or the time
until ``--target-bpd`` is reached. With ``--json`` the last line is a JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from ..data.images import load_images
from ..layers.nets import conditioner_precision
from ..models.multiscale import FlowConfig, MultiScaleFlow
from .loop import batches_from_tensor
from .train import _PRECISIONS, PRESETS, TrainConfig, train_model

__all__ = ["measure_throughput", "measure_sampling", "learning_curve", "main"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_throughput(model: MultiScaleFlow, images: torch.Tensor, batch_size: int, steps: int, warmup: int = 3,
                       lr: float = 1e-3, precision: str = "float32") -> dict[str, float]:
    """Time ``steps`` Adam steps (after ``warmup`` untimed ones) on batches of ``images``.

    ``precision="bfloat16"``: the conditioner networks compute in bfloat16, as in training.
    """
    dtype = _PRECISIONS[precision]
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = batches_from_tensor(images.to(device), batch_size)
    model.train()

    def step() -> float:
        with conditioner_precision(dtype):
            loss = model.bits_per_dim(next(batches)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"seconds_per_step": seconds / steps, "images_per_second": steps * batch_size / seconds}


@torch.no_grad()
def measure_sampling(model: MultiScaleFlow, n: int = 64, repeats: int = 5) -> float:
    """Median seconds to draw ``n`` samples."""
    device = next(model.parameters()).device
    model.eval()
    model.sample(n)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        model.sample(n)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def learning_curve(model_config: FlowConfig, train_config: TrainConfig, device: torch.device | str,
                   target_bpd: float | None = None, progress: bool = False) -> dict[str, object]:
    """Train from scratch with ``train_model`` and return test bits/dim against training seconds.

    ``train_config.minutes`` is the budget and ``eval_every_minutes`` the spacing of the
    points; evaluation time is not counted. With ``target_bpd`` training stops at the first
    evaluation at or below it. Returns ``{"curve": [(seconds, step, bpd), ...], ...}``.
    """
    stop = None if target_bpd is None else (lambda h: h.evals[-1][1] <= target_bpd)
    model, info = train_model(model_config, train_config, device=device, progress=progress, stop_fn=stop,
                              log=lambda *a: None)
    hist = info["history"]
    curve = [(t, s, b) for t, (s, b) in zip(hist["eval_seconds"], hist["evals"])]
    result: dict[str, object] = {"curve": curve, "steps": info["step"], "train_seconds": hist["seconds"],
                                 "parameters": model.num_parameters(), "clock": train_config.clock}
    if "raw_evals" in hist:  # a run with a weight average: the trained weights' bits/dim at the same points
        result["raw_curve"] = [(t, s, b) for t, (s, b) in zip(hist["eval_seconds"], hist["raw_evals"])]
    if target_bpd is not None:
        hit = next(((t, s, b) for t, s, b in curve if b <= target_bpd), None)
        result.update(seconds_to_target=hit[0] if hit else None, steps_to_target=hit[1] if hit else None,
                      bpd_reached=curve[-1][2])
    return result


def _bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    from ..data.images import DatasetNotFoundError
    from . import cli

    p = cli.Parser(prog="python -m flowlib.bench", description="Throughput, latency and learning curves.")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--steps", type=int, default=20, help="timed training steps")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
    p.add_argument("--curve", type=float, default=None, metavar="MINUTES",
                   help="also train from scratch for MINUTES and record test bits/dim against training seconds")
    p.add_argument("--ema", type=float, default=TrainConfig.ema, help="weight average's decay per step (0: none)")
    p.add_argument("--eval-every-minutes", type=float, default=1.0, help="spacing of the curve's points")
    p.add_argument("--target-bpd", type=float, default=None, help="stop the curve when test bits/dim reaches this")
    p.add_argument("--max-seconds", type=float, default=600, help="budget for --target-bpd without --curve")
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--curve-out", default=None, help="write the curve (JSON) here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--precision", choices=sorted(_PRECISIONS), default=TrainConfig.precision,
                   help="the conditioner networks' dtype in training steps (the curve and the throughput)")
    p.add_argument("--channels-last", type=_bool, default=TrainConfig.channels_last,
                   help="the curve's memory format (TrainConfig.channels_last)")
    mdef = FlowConfig()
    for f in fields(FlowConfig):
        default = getattr(mdef, f.name)
        kind = _bool if isinstance(default, bool) else type(default)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named recipe of flowlib.train (classic: the default before issue 25); options given "
                        "here override it")
    first, _ = p.parse_known_args(argv)
    if first.preset:  # the preset's settings replace the defaults; options given still win
        model_part, train_part = PRESETS[first.preset]
        p.set_defaults(**model_part, **train_part)
    args = p.parse_args(argv)
    try:  # a user's mistake ends here, in one line, before minutes of measuring
        for name in ("steps", "batch_size", "eval_images", "threads"):
            value = getattr(args, name)
            cli.require(value is None or value >= 1, f"--{name.replace('_', '-')} must be >= 1, got {value}")
        for name in ("lr", "max_seconds", "eval_every_minutes", "curve", "target_bpd"):
            value = getattr(args, name)
            cli.require(value is None or 0 < value < float("inf"),
                        f"--{name.replace('_', '-')} must be a number > 0, got {value}")
        if args.curve_out:
            cli.output_file(args.curve_out, option="--curve-out", force=True, example="curve.json")
        device = cli.device(args.device)
        mc = FlowConfig(**{f.name: getattr(args, f.name) for f in fields(FlowConfig)})
        images = load_images(args.dataset, "train", limit=max(2048, 4 * args.batch_size)).images
    except (cli.UsageError, DatasetNotFoundError) as err:
        return cli.fail(err)
    except ValueError as err:  # FlowConfig naming a field
        return cli.fail(cli.option_message(err, [f.name for f in fields(FlowConfig)]))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MultiScaleFlow(mc).to(device)
    with torch.no_grad():
        model.log_prob(images[:256].to(device))
    result: dict[str, object] = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "parameters": model.num_parameters(), "batch_size": args.batch_size,
                                 "config": mc.to_dict()}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    result.update(measure_throughput(model, images, args.batch_size, args.steps, precision=args.precision))
    model.to(memory_format=torch.contiguous_format)
    try:
        result["sample64_seconds"] = measure_sampling(model, 64)
        sampled = f"64 samples in {result['sample64_seconds'] * 1000:.0f} ms"
    except ValueError as err:  # a barely trained model's inverse can overflow (the mixture coupling's can)
        result["sample64_seconds"], result["sampling_error"] = None, str(err)
        sampled = f"sampling failed after {args.steps + 3} training steps ({err})"
    where = result.get("device_name", f"{result['threads']} threads")
    print(f"{device} ({where}): {result['parameters']:,} parameters, "
          f"{result['images_per_second']:.0f} images/s training at batch {args.batch_size} "
          f"({result['seconds_per_step'] * 1000:.0f} ms/step), {sampled}")
    if args.curve is not None or args.target_bpd is not None:
        minutes = args.curve if args.curve is not None else args.max_seconds / 60
        tc = TrainConfig(dataset=args.dataset, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                         steps=10**9, minutes=minutes, eval_every=0, eval_every_minutes=args.eval_every_minutes,
                         eval_images=args.eval_images, save_every=0, clock=args.clock, ema=args.ema,
                         precision=args.precision, channels_last=args.channels_last)
        curve = learning_curve(mc, tc, device, target_bpd=args.target_bpd, progress=not args.json)
        raw = {step: bpd for _, step, bpd in curve.get("raw_curve", [])}
        for t, step, bpd in curve["curve"]:
            extra = f" (trained weights {raw[step]:.4f})" if step in raw else ""
            print(f"  {t:7.1f} s ({args.clock}), step {step:6d}: test bits/dim {bpd:.4f} on {args.eval_images} images"
                  + extra)
        if args.target_bpd is not None:
            print(f"time to {args.target_bpd} test bits/dim: {curve['seconds_to_target']} s "
                  f"(reached {curve['bpd_reached']:.3f})")
        result.update(curve)
        if args.curve_out:
            Path(args.curve_out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.curve_out).write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
