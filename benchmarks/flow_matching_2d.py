"""Flow matching against maximum likelihood on notebook 10's four 2D sets: test NLL against training time.

    python benchmarks/flow_matching_2d.py --json benchmarks/results/flow-matching-2d.json

For each set, notebook 10's CNF recipe (``fl.cnf_flow(2, hidden=128, layers=3)``, tolerance 1e-4, lr 3e-3 with a
cosine decay, 150 steps of batch 256, fit's default) gives the reference test NLL and its training time. Flow matching (a
``TimeMLP`` of about the same size, notebook 11's recipe by default: lr 3e-3, batch 1024, cosine decay) is trained once
per step budget in ``--fm-steps``, each run with its own schedule, and scored the same way (exact trace,
tolerance 1e-5, ``--eval`` held-out points). The result says, per set, the cheapest budget whose NLL is within
``--margin`` nats of the CNF's, and what fraction of the CNF's training time it took. Training time is process
CPU time on ``--threads`` threads (evaluation not counted).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import flowlib as fl
from flowlib.layers.flow_matching import cfm_loss, log_likelihood
from flowlib.layers.vector_fields import TimeMLP

SETS = ["moons", "rings", "checkerboard", "spirals"]


def cosine(steps: int):
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def train_cnf(data: torch.Tensor, steps: int) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(0)
    model = fl.cnf_flow(2, hidden=128, layers=3, rtol=1e-4, atol=1e-4)
    start = time.process_time()
    fl.fit(model, data, steps, lr=3e-3, lr_schedule=cosine(steps), progress=False)
    return model.eval(), time.process_time() - start


def train_fm(data: torch.Tensor, steps: int, batch_size: int = 1024, lr: float = 3e-3) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(0)
    field = TimeMLP(2, hidden=128, layers=3)
    start = time.process_time()
    fl.fit(field, data, steps, lr=lr, batch_size=batch_size, lr_schedule=cosine(steps), loss_fn=lambda m, x: cfm_loss(m, x),
           progress=False)
    return field.eval(), time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", default=SETS, choices=SETS)
    p.add_argument("--cnf-steps", type=int, default=150)
    p.add_argument("--fm-steps", type=int, nargs="+", default=[250, 500, 1000, 2000, 5000])
    p.add_argument("--fm-batch-size", type=int, default=1024)
    p.add_argument("--fm-lr", type=float, default=3e-3)
    p.add_argument("--eval", type=int, default=2000, help="held-out points per set")
    p.add_argument("--margin", type=float, default=0.05, help="nats: how close to the CNF counts as reaching it")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the result here (refuses to overwrite without --force)")
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    if args.json and Path(args.json).exists() and not args.force:
        p.error(f"--json {args.json} already exists; pass --force to replace it")
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "fm_batch_size": args.fm_batch_size, "fm_lr": args.fm_lr,
              "eval_points": args.eval, "margin": args.margin, "sets": {}}
    reached = 0
    for name in args.sets:
        train, test = fl.make_toy(name, 20_000, seed=0), fl.make_toy(name, args.eval, seed=1)
        cnf, cnf_s = train_cnf(train, args.cnf_steps)
        cnf.bijection.rtol = cnf.bijection.atol = 1e-5
        with torch.no_grad():
            cnf_nll = -cnf.log_prob(test).mean().item()
        runs = []
        for steps in args.fm_steps:
            field, fm_s = train_fm(train, steps, args.fm_batch_size, args.fm_lr)
            lp, _ = log_likelihood(field, test, trace="exact")
            runs.append({"steps": steps, "train_s": round(fm_s, 2), "nll": round(-lp.mean().item(), 4),
                         "stderr": round((lp.std() / math.sqrt(len(lp))).item(), 4)})
            print(f"{name:>12}: flow matching {steps:5d} steps {fm_s:6.1f} s  NLL {runs[-1]['nll']:.3f}", flush=True)
        good = [r for r in runs if r["nll"] <= cnf_nll + args.margin]
        first = min(good, key=lambda r: r["train_s"]) if good else None
        fraction = first["train_s"] / cnf_s if first else None
        reached += fraction is not None and fraction <= 1 / 3
        result["sets"][name] = {"cnf": {"steps": args.cnf_steps, "train_s": round(cnf_s, 2), "nll": round(cnf_nll, 4)},
                                "flow_matching": runs,
                                "cheapest_within_margin": first,
                                "time_fraction": round(fraction, 3) if fraction is not None else None}
        print(f"{name:>12}: CNF {args.cnf_steps} steps {cnf_s:6.1f} s  NLL {cnf_nll:.3f}; flow matching within "
              f"{args.margin} nats: " + (f"{first['steps']} steps, {fraction:.2f} of the CNF's time" if first else "never"),
              flush=True)
    result["sets_within_margin_in_a_third_of_the_time"] = int(reached)
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
