"""Cached (Fast PixelCNN++-style) against naive sampling of 28 x 28 binary images.

For each model -- Gated PixelCNN and PixelCNN in their CPU default configurations, untrained
(the cost of a sampler does not depend on the weights), built for binarised Fashion-MNIST's
shape ``(1, 28, 28)`` -- draw ``n`` samples:

* naive (``fast=False``): one full forward pass per pixel, 784 passes;
* cached (``fast=True``): every activation computed once, when its position comes up
  (``unsup/nn/cached_conv.py``).

Both start from the same seed; the script asserts that they return the same samples. The naive
samplers alternate, ``--naive-rounds`` and ``--fast-rounds`` times; each figure is the median CPU
time (``time.process_time``) of its rounds, so that it means the same on a loaded machine. Run it
on one pinned core with one thread. Results go to ``benchmarks/results/fast_sampling_<model>.json``.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/fast_sampling.py --n 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from pinned import provenance  # benchmarks/ is on sys.path

import unsup
from unsup.data.base import DataSpec

SHAPE = (1, 28, 28)  # binarised Fashion-MNIST


def timed(model, n: int, seed: int, fast: bool) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    t0 = time.process_time()
    x = model.sample(n, fast=fast)
    return time.process_time() - t0, x


def run(name: str, n: int, rounds: int, naive_rounds: int, seed: int) -> dict:
    torch.manual_seed(0)
    model = unsup.create(name, DataSpec(SHAPE, 2)).eval()
    with torch.no_grad():  # one forward pass, the naive sampler's unit of work
        x0 = torch.zeros(n, *SHAPE)
        model.logits(x0)
        t0 = time.process_time()
        model.logits(x0)
        pass_s = time.process_time() - t0
    fast_times, naive_times = [], []
    for i in range(max(rounds, naive_rounds)):  # the two samplers alternate, round by round
        if i < rounds:
            seconds, fast_x = timed(model, n, seed, fast=True)
            fast_times.append(seconds)
            print(f"{name}: cached round {i + 1}: {seconds:.2f} CPU-s", flush=True)
        if i < naive_rounds:
            seconds, naive_x = timed(model, n, seed, fast=False)
            naive_times.append(seconds)
            print(f"{name}: naive round {i + 1}: {seconds:.1f} CPU-s", flush=True)
    same = torch.equal(fast_x, naive_x)
    assert same, f"{name}: cached and naive sampling differ for the same seed"
    fast_s, naive_s = statistics.median(fast_times), statistics.median(naive_times)
    pixels = SHAPE[1] * SHAPE[2]
    return {
        **provenance("benchmarks/fast_sampling.py", sys.argv[1:]),
        "clock": "CPU seconds of this process (time.process_time), median of the rounds",
        "cores": sorted(os.sched_getaffinity(0)),
        "benchmark": f"{name} sampling, naive vs cached, {SHAPE} binary, n={n}",
        "model": name,
        "config": {**vars(model.config), "parameters": sum(q.numel() for q in model.parameters())},
        "n": n, "shape": list(SHAPE), "levels": 2,
        "fast_seconds": round(fast_s, 3), "fast_rounds_seconds": [round(s, 3) for s in fast_times],
        "fast_ms_per_pixel": round(1e3 * fast_s / pixels, 3),
        "naive_seconds": round(naive_s, 2), "naive_rounds_seconds": [round(t, 2) for t in naive_times],
        "naive_ms_per_pixel": round(1e3 * naive_s / pixels, 2),
        "one_forward_pass_ms": round(1e3 * pass_s, 2),
        "speedup": round(naive_s / fast_s, 1),
        "same_samples": same,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["gated-pixelcnn", "pixelcnn"])
    p.add_argument("--n", type=int, default=16, help="samples per run")
    p.add_argument("--fast-rounds", type=int, default=3)
    p.add_argument("--naive-rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="benchmarks/results")
    args = p.parse_args()
    for name in args.models:
        result = run(name, args.n, args.fast_rounds, args.naive_rounds, args.seed)
        out = Path(args.out_dir) / f"fast_sampling_{name.replace('-', '_')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: cached {result['fast_seconds']:.2f} s, naive {result['naive_seconds']:.1f} s"
              f": speedup {result['speedup']}x, same samples; wrote {out}", flush=True)


if __name__ == "__main__":
    main()
