"""Fast WaveNet generation (Paine et al. 2016) against the naive sampler: one second of 16 kHz audio.

The CPU default WaveNet (2 stacks of dilations 1..512, 32 residual / gate / skip channels,
receptive field R = 2048 samples) with untrained weights -- the cost of a sampler does not depend
on the weights -- draws one sequence (n = 1) of 16,000 mu-law samples. A smaller network, 2 stacks
of dilations 1..128 (R = 512), is measured the same way: the naive cost per sample grows with R,
the fast one does not, so the speedup depends on R.

* naive (``fast=False``): for every new sample, the network runs over the last R + 1 positions
  (all the output needs), so each step costs the same once t >= R;
* fast (``fast=True``): per-layer queues of past activations, one time step of every layer per
  sample.

Both run with the same seed, and the script checks that they return the same 16,000 samples. The
naive sampler is timed over all 16,000 steps by default; with ``--naive-steps N`` it is timed over
the first N steps only and the rest extrapolated at its median per-step cost after t >= R, which
the per-block timings in the JSON show to be constant (the JSON says which was done). Times are
CPU seconds of the process (``time.process_time``); the fast figure is the median of
``--fast-rounds`` runs, interleaved with the naive run. Run it on one pinned core with one thread:

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/fast_sampling_wavenet.py   # ~12 minutes
    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/fast_sampling_wavenet.py --naive-steps 4096
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
from unsup.data.speech import LEVELS, SAMPLE_RATE

BLOCK = 500  # steps per timing block of the naive sampler


def timed_fast(model, length: int, seed: int) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    t0 = time.process_time()
    x = model.sample(1, fast=True, length=length)
    return time.process_time() - t0, x


def timed_naive(model, length: int, steps: int, seed: int) -> tuple[list[float], torch.Tensor]:
    """Seconds of each block of BLOCK steps over the first ``steps`` steps, and the samples.

    The blocks continue one sampling run: a block primes the sampler with the samples drawn so
    far (prime costs the naive sampler nothing) and restores the RNG state it left off with.
    """
    torch.manual_seed(seed)
    x = torch.zeros(1, 0, dtype=torch.long)
    blocks = []
    while x.shape[1] < steps:
        end = min(steps, x.shape[1] + BLOCK)
        t0 = time.process_time()
        x = model.sample(1, fast=False, length=end, prime=x)
        blocks.append(time.process_time() - t0)
    return blocks, x


CONFIGS = {  # name -> options over the CPU defaults
    "default": {},
    "small (2 x 8 layers)": {"layers_per_stack": 8},
}


def measure(options: dict, length: int, naive_steps: int | None, fast_rounds: int,
            seed: int) -> dict:
    """Time both samplers on one configuration; see the module docstring."""
    torch.manual_seed(0)
    spec = DataSpec((length,), LEVELS, None, "sequence")
    model = unsup.create("wavenet", spec, **options).eval()
    r = model.receptive_field
    naive_steps = min(length, naive_steps or length)
    if naive_steps < length and naive_steps < r + 2 * BLOCK:
        raise SystemExit(f"--naive-steps must be >= R + {2 * BLOCK} = {r + 2 * BLOCK} to measure "
                         f"the steady per-step cost")
    fast_times = []
    fast_x = None
    for i in range(fast_rounds):
        seconds, fast_x = timed_fast(model, length, seed)
        fast_times.append(seconds)
        print(f"  fast round {i + 1}: {seconds:.2f} s", flush=True)
        if i == 0:  # interleave: the naive run between the first and the other fast rounds
            blocks, naive_x = timed_naive(model, length, naive_steps, seed)
            print(f"  naive, {naive_steps} steps: {sum(blocks):.1f} s", flush=True)
    assert fast_x is not None

    per_step_ms = [1e3 * s / BLOCK for s in blocks]
    if naive_steps % BLOCK:  # the last block is shorter
        per_step_ms[-1] = 1e3 * blocks[-1] / (naive_steps % BLOCK)
    steady = [ms for i, ms in enumerate(per_step_ms) if i * BLOCK >= r]  # blocks with t >= R
    steady = steady or per_step_ms  # a run shorter than R (a smoke test) has none
    steady_ms = statistics.median(steady)
    naive_measured = sum(blocks)
    extrapolated = naive_steps < length
    naive_total = naive_measured + (length - naive_steps) * steady_ms / 1e3
    fast_s = statistics.median(fast_times)
    return {
        "options": {**vars(model.config)}, "receptive_field": r,
        "receptive_field_ms": 1e3 * r / SAMPLE_RATE,
        "parameters": sum(q.numel() for q in model.parameters()),
        "fast_seconds": round(fast_s, 3), "fast_rounds_seconds": [round(s, 3) for s in fast_times],
        "fast_ms_per_sample": round(1e3 * fast_s / length, 4),
        "naive_seconds": round(naive_total, 2),
        "naive_measured_steps": naive_steps, "naive_measured_seconds": round(naive_measured, 2),
        "naive_extrapolated": extrapolated,
        "naive_ms_per_step_by_block": [round(ms, 3) for ms in per_step_ms],
        "naive_steady_ms_per_step": round(steady_ms, 3),
        "naive_steady_relative_spread": round((max(steady) - min(steady)) / steady_ms, 3),
        "speedup": round(naive_total / fast_s, 2),
        "same_samples": torch.equal(fast_x[:, :naive_steps], naive_x),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, default=SAMPLE_RATE, help="samples to draw (1 s)")
    p.add_argument("--naive-steps", type=int, default=None,
                   help="time the naive sampler over this many steps and extrapolate (default: all)")
    p.add_argument("--fast-rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fast_sampling_wavenet.json")
    args = p.parse_args()

    results = {}
    for name, options in CONFIGS.items():
        print(f"{name}:", flush=True)
        results[name] = measure(options, args.length, args.naive_steps, args.fast_rounds, args.seed)
    default = results["default"]
    result = {
        **provenance("benchmarks/fast_sampling_wavenet.py", sys.argv[1:]),
        "clock": "CPU seconds of this process (time.process_time); fast: median of the rounds",
        "cores": sorted(os.sched_getaffinity(0)),
        "benchmark": "WaveNet sampling of 1 s of 16 kHz audio, naive vs fast (Paine et al. 2016), n=1",
        "length": args.length, "sample_rate": SAMPLE_RATE, "naive_block_steps": BLOCK,
        "speedup": default["speedup"], "fast_seconds": default["fast_seconds"],
        "naive_seconds": default["naive_seconds"], "configs": results,
        "torch": torch.__version__, "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name} (R = {r['receptive_field']}): fast {r['fast_seconds']:.2f} s, naive "
              f"{r['naive_seconds']:.1f} s{' (extrapolated)' if r['naive_extrapolated'] else ''}: "
              f"speedup {r['speedup']}x; same samples: {r['same_samples']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
