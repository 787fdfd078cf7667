"""Reflow on a 2-D toy: does a second flow trained on the first one's (noise, sample) pairs
sample well in fewer Euler steps? (issue #20)

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/diffusion_reflow.py \\
        runs/bench/flow-matching-two-moons runs/bench/flow-matching-two-moons-reflow \\
        --json benchmarks/results/diffusion-reflow.json --figure docs/figures/diffusion-reflow.png

For each run and each number of Euler steps, draws ``--n`` samples from seeds 0, 1, 2 and
measures the unbiased MMD^2 to as many test points (Gaussian kernels at 0.25 to 4 times the median
distance of the test set, fixed for all rows), and the straightness of the model's own paths,
``E int_0^1 |(x_1 - x_0) - v(x_t, t)|^2 dt`` on a 100-step Euler path (0 for straight lines; Liu et
al. 2023). Writes the rows with the command, commit and threads, and a figure of one-step samples.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from pinned import git_commit, interval  # benchmarks/ is on sys.path

from unsup.data import DataArgs
from unsup.nn.mmd import MEDIAN_SCALES, median_bandwidths, mmd2
from unsup.train import load_run

STEPS = (1, 2, 4, 8, 25)
SEEDS = (0, 1, 2)


def straightness(model, n: int, seed: int) -> float:
    torch.manual_seed(seed)
    record: list[torch.Tensor] = []
    with torch.no_grad():
        model.draw(n, None, 1.0, record=record, sampler="euler", steps=100)
    path = torch.stack(record)  # (101, n, 2)
    velocity = (path[1:] - path[:-1]) * 100
    return float(((path[-1] - path[0]) - velocity).pow(2).sum(-1).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs=2, type=Path, help="the flow-matching run and its reflowed run")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--figure", type=Path, default=None)
    args = p.parse_args()
    models = [load_run(r, "best")[0].eval() for r in args.runs]
    meta = load_run(args.runs[0], "best")[1]
    test = DataArgs.from_dict(meta["data"]).load("test").x[:args.n].float()
    bandwidths = median_bandwidths(test, test, MEDIAN_SCALES)
    rows = []
    for run, model in zip(args.runs, models, strict=True):
        for steps in STEPS:
            values = []
            for seed in SEEDS:
                torch.manual_seed(seed)
                x = model.sample(len(test), sampler="euler", steps=steps).float()
                values.append(float(mmd2(x, test, bandwidths)))
            rows.append({"run": str(run), "steps": steps, "mmd2": interval(values)})
            print(f"{run.name:>36} euler {steps:3d}: MMD^2 {rows[-1]['mmd2']['mean']:.5f}", flush=True)
        rows.append({"run": str(run), "straightness": interval([straightness(model, 500, s) for s in SEEDS])})
        print(f"{run.name:>36} straightness {rows[-1]['straightness']['mean']:.4f}", flush=True)
    out = {"command": " ".join(["python", "benchmarks/diffusion_reflow.py", *sys.argv[1:]]),
           "git_commit": git_commit(), "threads": torch.get_num_threads(), "n": len(test),
           "seeds": list(SEEDS), "rows": rows}
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.figure:
        from unsup.plots import _pyplot

        plt = _pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
        axes[0].scatter(test[:, 0], test[:, 1], s=2, color="0.5")
        axes[0].set_title("test data")
        for ax, run, model in zip(axes[1:], args.runs, models, strict=True):
            torch.manual_seed(0)
            x = model.sample(len(test), sampler="euler", steps=1)
            ax.scatter(x[:, 0], x[:, 1], s=2)
            ax.set_title(f"{run.name}: one Euler step", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main()
