"""Where a DDPM's bits/dim come from: the bound's terms of a trained run, grouped by step (issue #20).

    OMP_NUM_THREADS=1 python benchmarks/diffusion_terms.py runs/bench/ddpm-fashion \\
        --json benchmarks/results/diffusion-terms.json

On the first ``--n`` test images, the prior term, and for each group of steps the mean of its
terms at up to ``--per-group`` evenly spaced steps (``x_t`` drawn once per image and step, seed 0)
times the number of steps in the group: an estimate of the group's share of the bound, in
bits/dim. The shares add up to (an estimate of) the whole bound.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from pinned import git_commit  # benchmarks/ is on sys.path

from unsup.data import DataArgs
from unsup.train import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--per-group", type=int, default=8)
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    model, meta = load_run(args.run, "best")
    model.eval()
    x = DataArgs.from_dict(meta["data"]).load("test").x[:args.n]
    x0 = model.to_unit(x)
    T, bits = model.config.timesteps, model.spec.dims * math.log(2)
    edges = sorted({0, 1, 10, 100, T - 100, T - 1, T} & set(range(T + 1)))
    torch.manual_seed(0)
    groups = {"prior (L_T)": float(model.prior_term(x0).mean()) / bits}
    with torch.no_grad():
        for lo, hi in zip(edges, edges[1:], strict=False):
            steps = torch.linspace(lo, hi - 1, min(args.per_group, hi - lo)).round().long().unique()
            mean = sum(float(model.term_at(x0, torch.full((len(x0),), int(i)), None).mean())
                       for i in steps) / len(steps)
            label = ("decoder (L_0, t = 1)" if hi == 1 else f"t = {hi}" if hi - lo == 1
                     else f"t = {lo + 1} .. {hi}")
            groups[label] = mean * (hi - lo) / bits
            print(f"{label:>22}: {groups[label]:.3f} bits/dim", flush=True)
    keys = ("timesteps", "noise_schedule", "prediction", "variance")
    out = {"run": str(args.run), "model": meta["model"],
           "config": {k: getattr(model.config, k) for k in keys},
           "n": len(x0), "per_group": args.per_group, "bits_per_dim": groups, "total": sum(groups.values()),
           "command": " ".join(["python", "benchmarks/diffusion_terms.py", *sys.argv[1:]]),
           "git_commit": git_commit(), "threads": torch.get_num_threads()}
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
