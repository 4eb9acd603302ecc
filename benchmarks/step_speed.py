"""CPU cost of one training step of the default model under different execution choices.

    OMP_NUM_THREADS=1 python benchmarks/step_speed.py eager masked channels_last compile bfloat16 bfloat16_cl

Each mode builds the default ``FlowConfig()`` model (``masked``: Glow steps with masked
instead of sliced channel couplings; ``bfloat16``: the conditioner networks in bfloat16, as
``TrainConfig(precision="bfloat16")`` trains; ``bfloat16_cl``: that and channels_last), runs 3
untimed steps (for ``compile``, these include the compilation), then times 8 Adam steps at batch
64 (``--batch-size``) in *process CPU time*, and prints the median. CPU time rather than wall
time, so that the numbers mean something on a busy machine;
run the modes one after another in one command so that they see the same load.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from flowlib.data.images import load_images
from flowlib.layers.nets import conditioner_precision
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow

MODES = ("eager", "masked", "channels_last", "compile", "bfloat16", "bfloat16_cl")


def measure(mode: str, images: torch.Tensor, batch_size: int = 64, steps: int = 8) -> tuple[float, float]:
    """(CPU seconds of the 3 warm-up steps, median CPU seconds per timed step)."""
    torch.manual_seed(0)
    model = MultiScaleFlow(FlowConfig(split_couplings=mode != "masked"))
    with torch.no_grad():
        model.log_prob(images[:256])
    if mode in ("channels_last", "bfloat16_cl"):
        model = model.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if mode.startswith("bfloat16") else None
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def loss_fn(x):
        with conditioner_precision(dtype):
            return model.bits_per_dim(x).mean()

    if mode == "compile":
        loss_fn = torch.compile(loss_fn)
    times = []
    t_warm = time.process_time()
    for i in range(3 + steps):
        if i == 3:
            warmup = time.process_time() - t_warm
        x = images[i * batch_size:(i + 1) * batch_size]
        t = time.process_time()
        loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.process_time() - t)
    times.sort()
    return warmup, times[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="CPU seconds per training step of the default model, mode by mode.")
    p.add_argument("modes", nargs="+", help=", ".join(MODES))
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    bad = [m for m in args.modes if m not in MODES]
    if bad or args.batch_size < 1:
        print(f"error: name one or more of {', '.join(MODES)}, and a batch size >= 1", file=sys.stderr)
        return 2
    images = load_images("mnist", "train", limit=max(1024, 11 * args.batch_size)).images
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch_size}, process CPU time")
    for mode in args.modes:
        warmup, per_step = measure(mode, images, args.batch_size)
        print(f"{mode:>14}: {per_step * 1000:6.0f} ms/step (median of 8), first 3 steps {warmup:5.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
