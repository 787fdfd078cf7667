"""Denoising autoencoders with Gaussian, masking and salt-and-pepper noise, each judged by a linear, a
k-nearest-neighbour and an MLP probe (issue #23: lines built but never shown).

    python benchmarks/denoising_noise.py            # train 4 rows x 3 seeds, probe, write JSON
    python benchmarks/denoising_noise.py --collect  # only read the probes into the JSON

The code is the overcomplete one of results.md section 6, where the noise matters: an MLP
autoencoder on Fashion-MNIST pixels in [0, 1] with a 1,024-unit ReLU code (``--arch mlp
--code-dim 1024``), so that without noise it can learn the identity. Rows (Vincent et al. 2010's
three corruptions, one level each, chosen before the runs; not tuned per noise type):

- ``none``: the plain autoencoder;
- ``gaussian``: ``x + 0.5 eps``, ``eps ~ N(0, I)`` on every pixel;
- ``masking``: 25 % of the pixels set to 0 (the section-6 default);
- ``salt-pepper``: 25 % of the pixels set to 0 or 1 by a fair coin.

Masking and salt-and-pepper weight the error on the corrupted pixels (the model's default
``corrupted_weight``); Gaussian noise touches every pixel, so its error is the plain mean.

Each run trains for 2 minutes of one pinned core and thread, seeds 0, 1 and 2, batch 64; then
``unsup probe RUN --labels 10% --probes linear,knn,mlp`` (seed = the run's) fits the three probes
on the frozen code of 10 % of the training labels and reports test accuracy. Every figure is a
mean with its 95 % t-interval; a ranking is stated only where the intervals do not overlap.
Writes ``benchmarks/results/denoising-noise.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pinned import (  # benchmarks/: on sys.path
    Job,
    interval,
    percent,
    provenance,
    train_here,
    trained_at,
    write_result,
)

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/denoising-noise")
RESULT = ROOT / "benchmarks" / "results" / "denoising-noise.json"
SEEDS = (0, 1, 2)
COMMON = ["--data", "fashion-mnist", "--represent", "native", "--arch", "mlp", "--code-dim", "1024",
          "--batch-size", "64", "--eval-every", "250", "--eval-batches", "5", "--samples", "0",
          "--time", "2m", "--no-progress"]
ROWS = {"none": ["--noise", "none"],
        "gaussian": ["--noise", "gaussian", "--noise-level", "0.5"],
        "masking": ["--noise", "masking", "--noise-level", "0.25"],
        "salt-pepper": ["--noise", "salt-pepper", "--noise-level", "0.25"]}
PROBES = ("linear", "knn", "mlp")


def train_command(row: str, seed: int) -> list[str]:
    return ["unsup", "train", "denoising-autoencoder", *COMMON, *ROWS[row], "--seed", str(seed),
            "--out", str(RUNS / f"{row}-s{seed}")]


def probe_command(row: str, seed: int) -> list[str]:
    return ["unsup", "probe", str(RUNS / f"{row}-s{seed}"), "--labels", "10%", "--probes", ",".join(PROBES),
            "--no-baselines", "--no-tsne", "--seed", str(seed), "--json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="only read the probes' JSON")
    args = ap.parse_args()
    doc = provenance("benchmarks/denoising_noise.py", sys.argv[1:])
    doc["threads"] = {"train": 1, "probe": 1}
    if not args.collect:
        jobs = [Job(f"{r}-s{s}", train_command(r, s), record=ROOT / RUNS / f"{r}-s{s}" / "job.json")
                for s in SEEDS for r in ROWS]
        jobs += [Job(f"probe {r}-s{s}", probe_command(r, s), after=(f"{r}-s{s}",),
                     stdout=ROOT / RUNS / f"{r}-s{s}" / "probe-stdout.json") for s in SEEDS for r in ROWS]
        train_here(ROOT / RUNS, doc["git_commit"], jobs)
    doc["trained_git_commit"] = trained_at(ROOT / RUNS)
    rows = {}
    for r in ROWS:
        seeds = {}
        for s in SEEDS:
            run = ROOT / RUNS / f"{r}-s{s}"
            probe = json.loads((run / "probe.json").read_text())
            train, test = (json.loads((run / f).read_text()) for f in ("train.json", "test.json"))
            seeds[str(s)] = {
                "commands": [" ".join(["OMP_NUM_THREADS=1 taskset -c CORE", *c])
                             for c in (train_command(r, s), probe_command(r, s))],
                "steps": train["steps"], "step_kept": probe["step"],
                "pretext_test_mse": test.get("mse"),  # on corrupted inputs: not comparable across rows
                **{p: probe["features"]["run"][p]["accuracy"] for p in PROBES}}
        rows[r] = {"seeds": seeds, **{p: interval([v[p] for v in seeds.values()]) for p in PROBES},
                   "mlp_minus_linear": interval([v["mlp"] - v["linear"] for v in seeds.values()]),
                   "steps": interval([float(v["steps"]) for v in seeds.values()])}
    doc["rows"] = rows
    write_result(RESULT, doc, table)


def table(doc: dict) -> str:
    lines = ["| noise | steps | linear % | kNN % | MLP % | MLP minus linear (points) |",
             "|---|---|---|---|---|---|"]
    for r, e in doc["rows"].items():
        lines.append(f"| {r} | {e['steps']['mean']:.0f} | {percent(e['linear'])} | {percent(e['knn'])} | "
                     f"{percent(e['mlp'])} | {percent(e['mlp_minus_linear'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
