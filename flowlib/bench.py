"""Measure training throughput and sampling latency of the multi-scale flow.

    python -m flowlib.bench                       # default config, best device
    python -m flowlib.bench --device cpu --steps 20 --batch-size 64
    python -m flowlib.bench --target-bpd 1.5 --max-seconds 600   # also: time to a test bits/dim

Reports, for the device it runs on: training images/s (after warm-up steps that are not
timed), seconds per training step, sampling latency for 64 images, the parameter count,
and optionally the training time until the test bits/dim (on ``--eval-images`` images)
first reaches ``--target-bpd``. With ``--json`` the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields

import torch

from .config import default_device
from .data import load_images
from .model import FlowConfig, MultiScaleFlow
from .train import TrainConfig, evaluate_bpd
from .training import batches_from_tensor

__all__ = ["measure_throughput", "measure_sampling", "main"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_throughput(model: MultiScaleFlow, images: torch.Tensor, batch_size: int, steps: int, warmup: int = 3,
                       lr: float = 1e-3) -> dict[str, float]:
    """Time ``steps`` Adam steps (after ``warmup`` untimed ones) on batches of ``images``."""
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = batches_from_tensor(images.to(device), batch_size)
    model.train()

    def step() -> float:
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


def time_to_bpd(model_config: FlowConfig, train_config: TrainConfig, device: torch.device, target: float,
                max_seconds: float, eval_images: int) -> dict[str, float | None]:
    """Train from scratch; return the training seconds (evaluation excluded) until test bpd <= ``target``."""
    model = MultiScaleFlow(model_config).to(device)
    train = load_images(train_config.dataset, "train").images.to(device)
    test = load_images(train_config.dataset, "test").images[:eval_images].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    batches = batches_from_tensor(train, train_config.batch_size, seed=train_config.seed)
    with torch.no_grad():
        model.log_prob(train[:512])
    trained, step, bpd = 0.0, 0, float("nan")
    while trained < max_seconds:
        model.train()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(train_config.eval_every):
            step += 1
            for g in opt.param_groups:
                g["lr"] = train_config.lr * min(1.0, step / max(1, train_config.warmup_steps))
            loss = model.bits_per_dim(next(batches)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.clip_grad)
            opt.step()
        _sync(device)
        trained += time.perf_counter() - t0
        bpd = evaluate_bpd(model, test)
        print(f"  step {step}: {trained:.1f} s of training, test bpd {bpd:.3f}", flush=True)
        if bpd <= target:
            return {"seconds_to_target": trained, "steps_to_target": step, "bpd_reached": bpd}
    return {"seconds_to_target": None, "steps_to_target": None, "bpd_reached": bpd}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.bench", description="Throughput and latency of the flow.")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed training steps")
    p.add_argument("--target-bpd", type=float, default=None, help="also measure training time to this test bpd")
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--json", action="store_true")
    mdef = FlowConfig()
    for f in fields(FlowConfig):
        default = getattr(mdef, f.name)
        if not isinstance(default, bool):
            p.add_argument("--" + f.name.replace("_", "-"), type=type(default), default=default)
    args = p.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    mc = FlowConfig(**{f.name: getattr(args, f.name) for f in fields(FlowConfig) if hasattr(args, f.name)})
    torch.manual_seed(0)
    images = load_images(args.dataset, "train", limit=max(2048, 4 * args.batch_size)).images
    model = MultiScaleFlow(mc).to(device)
    with torch.no_grad():
        model.log_prob(images[:256].to(device))
    result: dict[str, object] = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "parameters": model.num_parameters(), "batch_size": args.batch_size,
                                 "config": mc.to_dict()}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    result.update(measure_throughput(model, images, args.batch_size, args.steps))
    result["sample64_seconds"] = measure_sampling(model, 64)
    where = result.get("device_name", f"{result['threads']} threads")
    print(f"{device} ({where}): {result['parameters']:,} parameters, "
          f"{result['images_per_second']:.0f} images/s training at batch {args.batch_size} "
          f"({result['seconds_per_step'] * 1000:.0f} ms/step), 64 samples in {result['sample64_seconds'] * 1000:.0f} ms")
    if args.target_bpd is not None:
        tc = TrainConfig(dataset=args.dataset, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every)
        result.update(time_to_bpd(mc, tc, device, args.target_bpd, args.max_seconds, args.eval_images))
        print(f"time to {args.target_bpd} test bits/dim: {result['seconds_to_target']} s "
              f"(reached {result['bpd_reached']:.3f})")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
