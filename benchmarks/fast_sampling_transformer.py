"""Transformer sampling with a key/value cache against the naive sampler: 784-element sequences.

The CPU default transformer (4 layers, d = 128, 4 heads, full attention) with untrained weights --
the cost of a sampler does not depend on the weights -- draws ``n`` binarised 28 x 28 images,
784 elements each, in raster order:

* naive (``fast=False``): for every new element the transformer runs over the whole prefix,
  ``t + 1`` positions at step ``t``: ``O(D^2)`` position-layer evaluations (and ``O(D^3)``
  attention arithmetic) in all;
* cached (``fast=True``): every layer keeps the keys and values of earlier positions, so a step
  is one query per layer against the cache: ``O(D)`` position-layer evaluations.

Both run with the same seed; the script checks that they return the same samples. The samplers
alternate, ``--naive-rounds`` and ``--fast-rounds`` times; each figure is the median CPU time
(``time.process_time``) of its rounds. Run it on one pinned core with one thread:

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/fast_sampling_transformer.py
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


def timed(model, n: int, fast: bool, seed: int) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    t0 = time.process_time()
    x = model.sample(n, fast=fast)
    return time.process_time() - t0, x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4, help="samples drawn at once")
    p.add_argument("--side", type=int, default=28, help="image side: side^2 elements")
    p.add_argument("--attention", default="full", choices=("full", "strided", "fixed"))
    p.add_argument("--fast-rounds", type=int, default=3)
    p.add_argument("--naive-rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fast_sampling_transformer.json")
    args = p.parse_args()

    torch.manual_seed(0)
    spec = DataSpec((1, args.side, args.side), 2)
    model = unsup.create("transformer", spec, attention=args.attention).eval()
    fast_times, naive_times = [], []
    for i in range(max(args.fast_rounds, args.naive_rounds)):  # the samplers alternate
        if i < args.fast_rounds:
            seconds, fast_x = timed(model, args.n, True, args.seed)
            fast_times.append(seconds)
            print(f"cached round {i + 1}: {seconds:.2f} CPU-s", flush=True)
        if i < args.naive_rounds:
            seconds, naive_x = timed(model, args.n, False, args.seed)
            naive_times.append(seconds)
            print(f"naive round {i + 1}: {seconds:.1f} CPU-s", flush=True)
    fast_s, naive_s = statistics.median(fast_times), statistics.median(naive_times)
    same = torch.equal(fast_x, naive_x)
    result = {
        **provenance("benchmarks/fast_sampling_transformer.py", sys.argv[1:]),
        "clock": "CPU seconds of this process (time.process_time), median of the rounds",
        "cores": sorted(os.sched_getaffinity(0)),
        "benchmark": "Transformer sampling, naive (full prefix per element) vs KV cache",
        "config": {**vars(model.config), "parameters": sum(q.numel() for q in model.parameters())},
        "elements": spec.dims, "n": args.n,
        "fast_seconds": round(fast_s, 3), "fast_rounds_seconds": [round(s, 3) for s in fast_times],
        "fast_ms_per_element": round(1e3 * fast_s / spec.dims, 3),
        "naive_seconds": round(naive_s, 2), "naive_rounds_seconds": [round(t, 2) for t in naive_times],
        "naive_ms_per_element": round(1e3 * naive_s / spec.dims, 2),
        "speedup": round(naive_s / fast_s, 2),
        "same_samples": same,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"cached {fast_s:.2f} s, naive {naive_s:.1f} s: speedup {result['speedup']}x; "
          f"same samples: {same}; wrote {out}")


if __name__ == "__main__":
    main()
