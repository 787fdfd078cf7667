"""Sampling speed beside the other families: a DDPM at 10 and 50 steps, flow matching, a flow and
a cached autoregressive model, all at their CPU default sizes on 8-bit 28 x 28 images (issue #20).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/diffusion_speed.py \\
        --json benchmarks/results/diffusion-speed.json

The models are untrained (the cost of sampling does not depend on the weights), built for
Fashion-MNIST's shape with 256 levels. Each draws ``--n`` images in one batch after a warm-up,
``--rounds`` times; the figure is the median CPU time of this process (``time.process_time``),
so run it pinned to an otherwise idle core with one thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from pinned import git_commit  # benchmarks/ is on sys.path

import unsup
from unsup.data.base import DataSpec

SPEC = DataSpec((1, 28, 28), 256, 10, "image")
CASES = [  # (label, model, options of sample)
    ("ddpm, ddim 10 steps", "ddpm", {"sampler": "ddim", "steps": 10}),
    ("ddpm, ddim 50 steps", "ddpm", {"sampler": "ddim", "steps": 50}),
    ("ddpm, dpm-solver 10 steps", "ddpm", {"sampler": "dpm-solver", "steps": 10}),
    ("ddpm, ancestral 1000 steps", "ddpm", {"sampler": "ancestral", "steps": 1000}),
    ("flow-matching, heun 10 steps (20 NFE)", "flow-matching", {"sampler": "heun", "steps": 10}),
    ("glow (one pass)", "glow", {}),
    ("realnvp (one pass)", "realnvp", {}),
    ("gated-pixelcnn, cached (784 positions)", "gated-pixelcnn", {}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="images per draw")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    rows = []
    for label, name, options in CASES:
        torch.manual_seed(0)
        model = unsup.create(name, SPEC).eval()
        rounds = 1 if options.get("steps") == 1000 else args.rounds
        model.sample(2, **options)  # warm-up
        times = []
        for r in range(rounds):
            torch.manual_seed(r)
            t0 = time.process_time()
            model.sample(args.n, **options)
            times.append(time.process_time() - t0)
        cpu = statistics.median(times)
        rows.append({"label": label, "model": name, "options": options, "n": args.n, "rounds": rounds,
                     "cpu_seconds": times, "images_per_cpu_second": args.n / cpu,
                     "parameters": sum(q.numel() for q in model.parameters())})
        print(f"{label:>42}: {args.n / cpu:9.3f} images per CPU second ({cpu:.2f} s for {args.n})",
              flush=True)
    out = {"command": " ".join(["python", "benchmarks/diffusion_speed.py", *sys.argv[1:]]),
           "git_commit": git_commit(), "threads": torch.get_num_threads(), "shape": list(SPEC.shape),
           "levels": SPEC.levels, "rows": rows}
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
