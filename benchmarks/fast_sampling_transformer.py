"""Transformer sampling with a key/value cache against the naive sampler: 784-element sequences.

The CPU default transformer (4 layers, d = 128, 4 heads, full attention) with untrained weights --
the cost of a sampler does not depend on the weights -- draws ``n`` binarised 28 x 28 images,
784 elements each, in raster order:

* naive (``fast=False``): for every new element the transformer runs over the whole prefix,
  ``t + 1`` positions at step ``t``: ``O(D^2)`` position-layer evaluations (and ``O(D^3)``
  attention arithmetic) in all;
* cached (``fast=True``): every layer keeps the keys and values of earlier positions, so a step
  is one query per layer against the cache: ``O(D)`` position-layer evaluations.

Both run with the same seed; the script checks that they return the same samples. The cached
figure is the median of ``--fast-rounds`` runs, interleaved with the naive run.

    OMP_NUM_THREADS=1 python benchmarks/fast_sampling_transformer.py
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


def timed(model, n: int, fast: bool, seed: int) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    x = model.sample(n, fast=fast)
    return time.perf_counter() - t0, x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4, help="samples drawn at once")
    p.add_argument("--side", type=int, default=28, help="image side: side^2 elements")
    p.add_argument("--attention", default="full", choices=("full", "strided", "fixed"))
    p.add_argument("--fast-rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fast_sampling_transformer.json")
    args = p.parse_args()

    torch.manual_seed(0)
    spec = DataSpec((1, args.side, args.side), 2)
    model = unsup.create("transformer", spec, attention=args.attention).eval()
    fast_times, naive_s = [], None
    for i in range(args.fast_rounds):
        seconds, fast_x = timed(model, args.n, True, args.seed)
        fast_times.append(seconds)
        print(f"cached round {i + 1}: {seconds:.2f} s", flush=True)
        if i == 0:
            naive_s, naive_x = timed(model, args.n, False, args.seed)
            print(f"naive: {naive_s:.1f} s", flush=True)
    assert naive_s is not None
    fast_s = statistics.median(fast_times)
    same = torch.equal(fast_x, naive_x)
    result = {
        "benchmark": "Transformer sampling, naive (full prefix per element) vs KV cache",
        "command": "OMP_NUM_THREADS=1 python benchmarks/fast_sampling_transformer.py"
                   + (f" --n {args.n}" if args.n != 4 else "")
                   + (f" --side {args.side}" if args.side != 28 else "")
                   + (f" --attention {args.attention}" if args.attention != "full" else ""),
        "config": {**vars(model.config), "parameters": sum(q.numel() for q in model.parameters())},
        "elements": spec.dims, "n": args.n,
        "fast_seconds": round(fast_s, 3), "fast_rounds_seconds": [round(s, 3) for s in fast_times],
        "fast_ms_per_element": round(1e3 * fast_s / spec.dims, 3),
        "naive_seconds": round(naive_s, 2),
        "naive_ms_per_element": round(1e3 * naive_s / spec.dims, 2),
        "speedup": round(naive_s / fast_s, 2),
        "same_samples": same,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"cached {fast_s:.2f} s, naive {naive_s:.1f} s: speedup {result['speedup']}x; "
          f"same samples: {same}; wrote {out}")


if __name__ == "__main__":
    main()
