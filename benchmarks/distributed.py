"""Data-parallel training on the CPU: one process against two (torchrun, gloo) at equal global batch.

Three runs of the same `unsup train` command (PixelCNN on the binarised 8x8 digits, fixed steps,
seed 0, global batch 64), each a subprocess exactly as a user starts it:

* ``1 process x 1 thread`` and ``1 process x 2 threads`` (``OMP_NUM_THREADS``);
* ``2 processes x 1 thread``: ``torchrun --nproc-per-node 2`` (32 examples per process and step).

On a 2-core machine the two processes get one core each, so the fair comparison for them is one
process with 2 threads (same cores); one process with 1 thread shows what the second core buys in
each form. The loss curves (from each run's metrics.csv) show that the two-process run follows the
one-process run: the model is deterministic, so they differ only by float rounding. Throughput is
the steady-state examples/s between step ``WARMUP`` and the last step (wall-clock times of the
metrics.csv rows); validation, data loading and start-up are outside it. The runs alternate in
``--rounds`` rounds so that machine noise hits all alike; the figure is each run's median.

    python benchmarks/distributed.py --steps 300 --rounds 3

writes benchmarks/results/distributed.json and docs/figures/distributed-loss.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pinned import provenance  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 20  # steps excluded from the steady-state rate (first-call set-up, allocator)
RUNS = {  # name: (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread": (2, 1),
}


def train_command(processes: int, args: argparse.Namespace, out: str) -> list[str]:
    """The `unsup train` command line, under torchrun (``torch.distributed.run``) for > 1 process."""
    launcher = [sys.executable, "-m", "unsup.cli"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
        str(processes), "-m", "unsup.cli"]
    return launcher + [
        "train", args.model, "--data", args.data, "--represent", args.represent,
        "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
        "--device", "cpu", "--eval-every", "0", "--log-every", str(args.log_every), "--samples", "0",
        "--no-test", "--no-progress", "--no-tensorboard", "--out", out]


def run(name: str, args: argparse.Namespace) -> dict:
    processes, threads = RUNS[name]
    with tempfile.TemporaryDirectory() as d:
        cmd = train_command(processes, args, d)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode:
            raise SystemExit(f"{name} failed:\n{p.stderr[-3000:]}")
        summary = json.loads((Path(d) / "train.json").read_text())
        with open(Path(d) / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["split"] == "train" and r["metric"] == "loss"]
    curve = [(int(r["step"]), float(r["value"])) for r in rows]
    times = {int(r["step"]): float(r["time"]) for r in rows}
    steady = (args.steps - WARMUP) * args.batch_size / (times[args.steps] - times[WARMUP])
    print(f"{name}: {steady:.0f} examples/s steady, final loss {curve[-1][1]:.4f}, "
          f"val {summary['best_val']:.4f} nats/dim, {wall:.0f}s wall", file=sys.stderr)
    return {"processes": processes, "threads_per_process": threads,
            "examples_per_second_steady": steady,
            "examples_per_second_whole": summary["examples_per_second"],
            "val_nats_per_dim": summary["best_val"], "val_bpd": summary["best_val"] / math.log(2),
            "wall_seconds": wall, "command": " ".join(cmd[1:]).replace(d, "DIR"),
            "loss_curve": curve}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    styles = {"1 process x 1 thread": ("C0", "-", 3.0), "1 process x 2 threads": ("C1", "-", 1.5),
              "2 processes x 1 thread": ("C3", "--", 1.5)}
    for name, r in results["runs"].items():
        color, ls, lw = styles[name]
        steps, loss = zip(*r["loss_curve"], strict=True)
        ax.plot(steps, [v / math.log(2) for v in loss], color=color, ls=ls, lw=lw, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (bits/dim)")
    ax.set_title(f"{results['model']} on {results['data']}, global batch {results['batch_size']}")
    ax.legend()
    names = list(results["runs"])
    rates = [results["runs"][n]["examples_per_second_steady"] for n in names]
    bx.barh(range(len(names)), rates, color=[styles[n][0] for n in names])
    bx.set_yticks(range(len(names)), [n.replace(" x ", "\nx ") for n in names])
    bx.invert_yaxis()
    bx.set_xlabel("examples/s (steady state)")
    for i, v in enumerate(rates):
        bx.text(v, i, f" {v:.0f}", va="center")
    bx.set_xlim(0, max(rates) * 1.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pixelcnn")
    p.add_argument("--data", default="digits")
    p.add_argument("--represent", default="binary")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median rate counts")
    p.add_argument("--json", default=str(ROOT / "benchmarks/results/distributed.json"))
    p.add_argument("--figure", default=str(ROOT / "docs/figures/distributed-loss.png"))
    args = p.parse_args()
    rounds = [{name: run(name, args) for name in RUNS} for _ in range(args.rounds)]
    runs = rounds[0]  # the loss curves are those of the first round
    for name, r in runs.items():
        r["loss_curve_repeats_in_every_round"] = all(o[name]["loss_curve"] == r["loss_curve"] for o in rounds)
        r["examples_per_second_steady_rounds"] = [o[name]["examples_per_second_steady"] for o in rounds]
        r["examples_per_second_steady"] = statistics.median(r["examples_per_second_steady_rounds"])
    one, two = runs["1 process x 2 threads"], runs["2 processes x 1 thread"]

    def max_difference(a: str, b: str, until: int) -> float:
        """Largest |loss difference| of two runs' logged training losses up to step ``until``."""
        return max(abs(u[1] - v[1]) for u, v in zip(runs[a]["loss_curve"], runs[b]["loss_curve"], strict=True)
                   if u[0] <= until)

    results = {
        "model": args.model, "data": f"{args.data} ({args.represent})", "steps": args.steps,
        "batch_size": args.batch_size, "seed": args.seed, "cpu_cores": os.cpu_count(),
        "warmup_steps_excluded": WARMUP, "runs": runs,
        # float rounding (summation order) differs between all three runs and grows with the steps;
        # the two one-process runs (1 vs 2 threads) show how much of it rounding alone produces
        "max_abs_loss_difference": {
            f"{a} vs {b}, steps <= {until}": max_difference(a, b, until)
            for a, b in (("1 process x 2 threads", "2 processes x 1 thread"),
                         ("1 process x 1 thread", "2 processes x 1 thread"),
                         ("1 process x 1 thread", "1 process x 2 threads"))
            for until in (100, args.steps)},
        "speedup_2_processes_vs_1_process_2_threads":
            two["examples_per_second_steady"] / one["examples_per_second_steady"],
        "speedup_2_processes_vs_1_process_1_thread":
            two["examples_per_second_steady"] / runs["1 process x 1 thread"]["examples_per_second_steady"],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    results = {**provenance("benchmarks/distributed.py", sys.argv[1:]), **results}
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    plot(results, Path(args.figure))
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
