"""The cost of the framework: PixelCNN training throughput through `unsup train` against the same
network trained by a plain PyTorch loop.

Both train the course PixelCNN (7x7 mask A, five 3x3 mask-B layers, 64 filters) on binarised
Fashion-MNIST with Adam, batch 128, for the same number of steps, in alternating rounds so that
machine noise hits both alike; the figure is the median images/s of each. `unsup train` runs as
a subprocess exactly as a user runs it (its own examples/s covers the training loop only: data
loading, validation and the test evaluation are outside the timed region, as they are for the
plain loop).

    python benchmarks/throughput.py --steps 150 --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from pinned import provenance  # benchmarks/ is on sys.path

import unsup
from unsup.train.trainer import seed_everything

WARMUP = 20  # steps excluded from the steady-state rate (first-call kernel set-up, allocator)


def plain_loop(train, steps: int, batch_size: int, seed: int) -> tuple[float, float]:
    """The same network, optimiser and batches, with nothing but PyTorch around it.

    Returns images/s over the whole run and over the steps after ``WARMUP``.
    """
    seed_everything(seed)
    model = unsup.create("pixelcnn", data=train, preset="course")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    x_all = train.x
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x_all), generator=g)
    model.train()
    t0 = time.perf_counter()
    t_warm = t0
    for step in range(steps):
        if step == WARMUP:
            t_warm = time.perf_counter()
        idx = perm[step * batch_size:(step + 1) * batch_size]
        x = x_all[idx]
        loss = -model.log_prob(x).mean() / train.spec.dims
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    end = time.perf_counter()
    return steps * batch_size / (end - t0), (steps - WARMUP) * batch_size / (end - t_warm)


def through_cli(steps: int, batch_size: int, seed: int) -> tuple[float, float]:
    """`unsup train` in a subprocess; the steady-state rate comes from the wall-clock times of
    its metrics.csv rows (written every 20 steps) between step WARMUP and the last step."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "unsup.cli", "train", "pixelcnn", "--preset", "course",
               "--data", "fashion-mnist", "--represent", "binary", "--steps", str(steps),
               "--batch-size", str(batch_size), "--seed", str(seed), "--eval-every", "0",
               "--eval-batches", "1", "--samples", "0", "--no-test", "--no-progress",
               "--log-every", str(WARMUP), "--out", d]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        whole = json.loads((Path(d) / "train.json").read_text())["examples_per_second"]
        with open(Path(d) / "metrics.csv") as f:
            times = {int(r["step"]): float(r["time"]) for r in csv.DictReader(f)
                     if r["split"] == "train" and r["metric"] == "loss"}
        steady = (steps - WARMUP) * batch_size / (times[steps] - times[WARMUP])
        return whole, steady


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    train = unsup.data.load("fashion-mnist", "train", "binary")
    cli, plain = [], []
    for r in range(args.rounds):
        cli.append(through_cli(args.steps, args.batch_size, args.seed))
        plain.append(plain_loop(train, args.steps, args.batch_size, args.seed))
        print(f"round {r + 1}: unsup train {cli[-1][0]:.1f} img/s ({cli[-1][1]:.1f} after warm-up), "
              f"plain loop {plain[-1][0]:.1f} img/s ({plain[-1][1]:.1f})", flush=True)
    med = statistics.median
    res = {"unsup_train_img_per_s": med(c[0] for c in cli),
           "plain_loop_img_per_s": med(p[0] for p in plain),
           "unsup_train_steady_img_per_s": med(c[1] for c in cli),
           "plain_loop_steady_img_per_s": med(p[1] for p in plain),
           "rounds_detail": {"unsup_train": cli, "plain_loop": plain},
           "warmup_steps": WARMUP, "steps": args.steps, "batch_size": args.batch_size,
           "rounds": args.rounds, "threads": torch.get_num_threads()}
    res["overhead_percent"] = 100 * (1 - res["unsup_train_img_per_s"] / res["plain_loop_img_per_s"])
    res["steady_overhead_percent"] = 100 * (
        1 - res["unsup_train_steady_img_per_s"] / res["plain_loop_steady_img_per_s"])
    res = {**provenance("benchmarks/throughput.py", sys.argv[1:]), **res}
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
