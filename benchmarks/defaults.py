"""Which configuration should be a family's CPU default? A small sweep at the budgets users run.

For a family, each candidate configuration trains on Fashion-MNIST (binarised, ``x/255 > 0.5``,
for the binary families) with ``--time BUDGET``, pinned to one core with one thread, two candidates
at a time (one per core; the machine otherwise idle), and is then scored on the test set by
``unsup eval`` (exact NLL for autoregressive models; for VAEs the importance-sampled estimate with
``K = 1000`` on the first 2,000 test images, the protocol of the peer comparison). The candidate
with the lowest test NLL should be the default at that budget; the current default is marked.

    python benchmarks/defaults.py made --budget 5m
    python benchmarks/defaults.py vae --budget 30m --only 256x2 512x2

Writes ``benchmarks/results/defaults-FAMILY-BUDGET.json`` (command, commit, threads first) and keeps
the run directories under ``runs/defaults/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned import ROOT, provenance, run_on_both_cores  # noqa: E402

BINARY = ["--data", "fashion-mnist", "--represent", "binary"]
# family -> (data arguments, `unsup eval` arguments, {candidate: model options}, the default's name)
SWEEPS: dict[str, tuple[list[str], list[str], dict[str, list[str]], str]] = {
    "made": (BINARY, [], {
        "512x2": ["--hidden", "512", "512"],
        "2000": ["--hidden", "2000"],
        "8000": ["--hidden", "8000"],
        "2000x2": ["--hidden", "2000", "2000"],
    }, "8000"),
    "vae": (BINARY, ["--examples", "2000", "--importance-samples", "1000"], {
        "256x2": ["--hidden", "256", "256", "--z-dim", "32"],
        "512x2": ["--hidden", "512", "512", "--z-dim", "32"],
        "conv": ["--arch", "conv", "--z-dim", "32"],
    }, "256x2"),
}


def run_dir(family: str, name: str, budget: str, seed: int) -> Path:
    return ROOT / "runs" / "defaults" / f"{family}-{name}-{budget}-s{seed}"


def one(family: str, name: str, budget: str, seed: int) -> None:
    """Train and score one candidate (in the process the pinned launcher started)."""
    data, eval_args, candidates, _ = SWEEPS[family]
    out = run_dir(family, name, budget, seed)
    train = ["unsup", "train", family, *data, *candidates[name], "--time", budget, "--seed", str(seed),
             "--out", str(out), "--no-progress", "--samples", "0", "--no-test", "--eval-time", "1m"]
    t0, r0 = time.perf_counter(), os.times()
    subprocess.run(train, cwd=ROOT, check=True)
    r1 = os.times()
    train_seconds = {"wall": time.perf_counter() - t0,
                     "cpu": (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)}
    score = subprocess.run(["unsup", "eval", str(out), "--json", *eval_args], cwd=ROOT, check=True,
                           capture_output=True, text=True)
    summary = json.loads((out / "train.json").read_text())
    (out / "sweep.json").write_text(json.dumps({
        "candidate": name, "options": candidates[name], "budget": budget, "seed": seed,
        "train_command": " ".join(train), "train_seconds": train_seconds,
        "steps": summary["steps"], "test": json.loads(score.stdout)}, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", choices=sorted(SWEEPS))
    p.add_argument("--budget", default="5m", help="--time of each run (default: 5m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", help="candidates to run (default: all)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one candidate, already pinned
    args = p.parse_args()
    data, _, candidates, default = SWEEPS[args.family]
    if args.one:
        one(args.family, args.one, args.budget, args.seed)
        return
    names = args.only or list(candidates)
    header = provenance("benchmarks/defaults.py", sys.argv[1:])
    run_on_both_cores([[sys.executable, "benchmarks/defaults.py", args.family, "--budget", args.budget,
                        "--seed", str(args.seed), "--one", n] for n in names])
    rows = {n: json.loads((run_dir(args.family, n, args.budget, args.seed) / "sweep.json").read_text())
            for n in names}
    best = min(rows, key=lambda n: rows[n]["test"]["nll_nats"])
    result = {**header, "threads": 1, "family": args.family, "budget": args.budget, "seed": args.seed,
              "data": data, "default": default, "best": best, "candidates": rows}
    path = ROOT / "benchmarks" / "results" / f"defaults-{args.family}-{args.budget}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for n, r in rows.items():
        t = r["test"]
        print(f"{n:>10}: {t['nats_per_dim']:.4f} nats/dim ({t['nll_nats']:.2f} nats), "
              f"{r['steps']} steps, {r['train_seconds']['cpu']:.0f} CPU s"
              + ("  <- default" if n == default else "") + ("  <- best" if n == best else ""))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
