"""Cached (Fast PixelCNN++-style) against naive sampling of 28 x 28 binary images.

For each model -- Gated PixelCNN and PixelCNN in their CPU default configurations, untrained
(the cost of a sampler does not depend on the weights), built for binarised Fashion-MNIST's
shape ``(1, 28, 28)`` -- draw ``n`` samples:

* naive (``fast=False``): one full forward pass per pixel, 784 passes;
* cached (``fast=True``): every activation computed once, when its position comes up
  (``unsup/nn/cached_conv.py``).

Both start from the same seed; the script asserts that they return the same samples. The naive
sampler runs once, the cached one ``--fast-rounds`` times around it (the figure is the median).
Results go to ``benchmarks/results/fast_sampling_<model>.json``.

    OMP_NUM_THREADS=1 python benchmarks/fast_sampling.py --n 16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import unsup
from unsup.data.base import DataSpec

SHAPE = (1, 28, 28)  # binarised Fashion-MNIST


def timed(model, n: int, seed: int, fast: bool) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    x = model.sample(n, fast=fast)
    return time.perf_counter() - t0, x


def run(name: str, n: int, rounds: int, seed: int) -> dict:
    torch.manual_seed(0)
    model = unsup.create(name, DataSpec(SHAPE, 2)).eval()
    with torch.no_grad():  # one forward pass, the naive sampler's unit of work
        x0 = torch.zeros(n, *SHAPE)
        model.logits(x0)
        t0 = time.perf_counter()
        model.logits(x0)
        pass_s = time.perf_counter() - t0
    fast_times, naive_s = [], None
    for i in range(rounds):
        seconds, fast_x = timed(model, n, seed, fast=True)
        fast_times.append(seconds)
        print(f"{name}: fast round {i + 1}: {seconds:.2f} s", flush=True)
        if i == 0:  # the naive run between the first and the other fast rounds
            naive_s, naive_x = timed(model, n, seed, fast=False)
            print(f"{name}: naive: {naive_s:.1f} s", flush=True)
    same = torch.equal(fast_x, naive_x)
    assert same, f"{name}: cached and naive sampling differ for the same seed"
    fast_s = statistics.median(fast_times)
    pixels = SHAPE[1] * SHAPE[2]
    return {
        "benchmark": f"{name} sampling, naive vs cached, {SHAPE} binary, n={n}",
        "command": f"OMP_NUM_THREADS=1 python benchmarks/fast_sampling.py --n {n}",
        "model": name,
        "config": {**vars(model.config), "parameters": sum(q.numel() for q in model.parameters())},
        "n": n, "shape": list(SHAPE), "levels": 2,
        "fast_seconds": round(fast_s, 3), "fast_rounds_seconds": [round(s, 3) for s in fast_times],
        "fast_ms_per_pixel": round(1e3 * fast_s / pixels, 3),
        "naive_seconds": round(naive_s, 2),
        "naive_ms_per_pixel": round(1e3 * naive_s / pixels, 2),
        "one_forward_pass_ms": round(1e3 * pass_s, 2),
        "speedup": round(naive_s / fast_s, 1),
        "same_samples": same,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["gated-pixelcnn", "pixelcnn"])
    p.add_argument("--n", type=int, default=16, help="samples per run")
    p.add_argument("--fast-rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="benchmarks/results")
    args = p.parse_args()
    for name in args.models:
        result = run(name, args.n, args.fast_rounds, args.seed)
        out = Path(args.out_dir) / f"fast_sampling_{name.replace('-', '_')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: cached {result['fast_seconds']:.2f} s, naive {result['naive_seconds']:.1f} s"
              f": speedup {result['speedup']}x, same samples; wrote {out}", flush=True)


if __name__ == "__main__":
    main()
