"""Sample quality against cost: the samplers of one trained diffusion model and one flow-matching
model, at several numbers of network evaluations (issue #20).

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/diffusion_samplers.py runs/bench/ddpm-fashion \\
        --n 500 --json benchmarks/results/diffusion-samplers-ddpm.json

For each (sampler, steps) of the run's grid (:data:`GRIDS`; ``--grid sampler:steps,...`` to
choose), draws ``--n`` samples from seed 0, 100 at a time, timing the drawing in CPU seconds of
this process (``time.process_time``: run it pinned to an otherwise idle core, one thread), and
scores them with the shipped classifier (``unsup.quality.score_samples``: KID, FD,
precision/recall, beside the floor). NFE is network evaluations per image (Heun: two a step).
Rows go to ``--json`` with the command, commit and threads. The figure, KID against NFE for
every sampler of the given result files:

    python benchmarks/diffusion_samplers.py --plot docs/figures/diffusion-samplers.png \
        benchmarks/results/diffusion-samplers-ddpm.json \\
        benchmarks/results/diffusion-samplers-flow-matching.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from pinned import git_commit  # benchmarks/ is on sys.path

from unsup.data import DataArgs
from unsup.quality import draw_samples, score_samples
from unsup.train import load_run

GRIDS = {  # ancestral with all 1000 steps: --grid ancestral:1000 (33 CPU minutes for 300 samples)
    "ddpm": [("ancestral", s) for s in (10, 20, 50, 100)]
    + [("ddim", s) for s in (10, 20, 50, 100)] + [("dpm-solver", s) for s in (5, 10, 20, 50)],
    "flow-matching": [("euler", s) for s in (10, 20, 50)] + [("heun", s) for s in (5, 10, 25)],
}
BATCH = 100


def training(run: Path) -> dict:
    """The last validated step of a run and the wall minutes to it, from its metrics.csv (the
    first row is logged a few steps in: the figure is a slight underestimate)."""
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    val = [r for r in rows if r[1] == "val"]
    return {"train_step": int(val[-1][0]),
            "train_minutes": (float(val[-1][4]) - float(rows[0][4])) / 60}


def nfe(sampler: str, steps: int) -> int:
    return 2 * steps if sampler == "heun" else steps


def parse_grid(text: str) -> list[tuple[str, int]]:
    return [(name, int(steps)) for name, steps in (item.split(":") for item in text.split(","))]


def _name(path: Path, result: dict) -> str:
    """The legend's name of a result file: its stem without the script's prefix (``ddpm``,
    ``ddpm-eps``, ``flow-matching``), or the model's name for other file names."""
    prefix = "diffusion-samplers-"
    return path.stem.removeprefix(prefix) if path.stem.startswith(prefix) else result["model"]


def plot(results: list[Path], out: Path) -> None:
    """KID (± its s.d. over subsets) against NFE, one line per (model, sampler), log-log."""
    from unsup.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    floor, data = None, ""
    for path in results:
        r = json.loads(path.read_text())
        for sampler in dict.fromkeys(row["sampler"] for row in r["rows"]):
            mine = sorted((row for row in r["rows"] if row["sampler"] == sampler), key=lambda row: row["nfe"])
            ax.errorbar([row["nfe"] for row in mine], [row["samples"]["kid"] for row in mine],
                        yerr=[row["samples"]["kid_sd"] for row in mine], marker="o", capsize=3,
                        label=f"{_name(path, r)}: {sampler}")
            floor, data = mine[0]["floor"]["kid"], r["data"]
    if floor is not None and floor > 0:  # an unbiased KID of real against real may be <= 0
        ax.axhline(floor, color="0.5", ls="--", lw=1, label=f"floor (real train vs test): {floor:.1e}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations per image (NFE)")
    ax.set_ylabel("KID (shipped classifier's features)")
    ax.set_title(f"sample quality against sampling cost, {data}"
                 + (f" (floor KID {floor:.1e})" if floor is not None and floor <= 0 else ""), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, nargs="+",
                   help="a trained ddpm or flow-matching run directory (with --plot: result files)")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="draw the given results")
    p.add_argument("--n", type=int, default=300, help="samples per (sampler, steps)")
    p.add_argument("--grid", type=parse_grid, default=None, metavar="SAMPLER:STEPS,...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--no-ema", action="store_true",
                   help="sample with the trained weights, not their moving average (--ema runs)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.plot:
        return plot(args.run, args.plot)
    if args.json is None or len(args.run) != 1:
        p.error("give one run directory and --json")
    args.run = args.run[0]
    model, meta = load_run(args.run, args.checkpoint, device="cpu", ema=not args.no_ema)
    grid = args.grid or GRIDS[meta["model"]]
    data = DataArgs.from_dict(meta["data"])
    done = json.loads(args.json.read_text()) if args.json.exists() else {"rows": []}
    have = {(r["sampler"], r["steps"]) for r in done["rows"]}
    rows = done["rows"]
    model.sample(2, steps=2)  # warm-up: first-call allocations
    for sampler, steps in grid:
        if (sampler, steps) in have:
            continue
        cpu0, wall0 = time.process_time(), time.perf_counter()
        options = {"sampler": sampler, "steps": steps}
        fake, asked = draw_samples(model, args.n, BATCH, args.seed, False, options)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        quality = score_samples(fake, data, args.seed, asked)
        row = {"sampler": sampler, "steps": steps, "nfe": nfe(sampler, steps), "n": args.n,
               "cpu_seconds_per_image": cpu / args.n, "wall_seconds_per_image": wall / args.n,
               "samples": quality["samples"], "floor": quality["floor"]}
        rows.append(row)
        s = row["samples"]
        print(f"{sampler:>10} {steps:5d} steps ({row['nfe']} NFE): KID {s['kid']:.4f} ± {s['kid_sd']:.4f}, "
              f"FD {s['fd']:.1f}, {row['cpu_seconds_per_image']:.3f} CPU s/image", flush=True)
        out = {"run": str(args.run), "model": meta["model"], "data": data.name, "n": args.n,
               "prediction": meta["model_config"].get("prediction"),
               "command": " ".join(["python", "benchmarks/diffusion_samplers.py", *sys.argv[1:]]),
               "git_commit": git_commit(), "threads": torch.get_num_threads(), "checkpoint": args.checkpoint,
               "weights": "trained" if args.no_ema else "EMA when kept",
               **training(args.run), "features": quality["features"], "rows": rows}
        args.json.write_text(json.dumps(out, indent=1) + "\n")  # after every row: resumable


if __name__ == "__main__":
    main()
