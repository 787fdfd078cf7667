"""Mode collapse, measured: GAN variants on a ring and a grid of 2-D Gaussians (issue #19).

    python benchmarks/gan_modes.py              # every case, two at a time, one per core
    python benchmarks/gan_modes.py --report     # aggregate runs/gan-modes/*.json only

Each case trains ``unsup.create("gan", ...)`` with a variant's preset on ``gaussian-ring`` (8 modes,
s.d. 0.01, radius 0.4) or ``gaussian-grid`` (25 modes, s.d. 0.02, spacing 0.2) for a fixed number
of optimiser steps (critic and generator steps both count), batch 256, in one process pinned to
one core with one thread, for 3 seeds. Then 2,500 samples are drawn and scored as in the
unrolled-GAN and VEEGAN papers:

* a sample is *high quality* when it lies within 3 standard deviations of a mode's centre;
* a mode is *recovered* when it holds at least 20 % of the high-quality samples a uniform share
  would give it (``0.2 x HQ / modes``);
* ``kl_to_uniform``: KL(p || uniform) of the high-quality samples' mode histogram, in nats (0 when
  the modes are equally filled; ``log k`` when one mode holds them all).

Writes ``benchmarks/results/gan-modes.json`` (per-seed figures, mean and a 95 % t-interval over
seeds, the commands, commit and threads) and ``docs/figures/gan-modes.png`` (seed 0's samples).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from pinned import git_commit, interval, run_on_both_cores  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "gan-modes"
STEPS = 20000
SEEDS = (0, 1, 2)
N_SAMPLES = 2500
# variant: (preset, options, --lr)
VARIANTS = {  # no batch norm in the discriminators of these small MLPs
    "gan": (None, {"d_norm": "none"}, 1e-3),
    # lambda 0.1: the WGAN-GP authors' setting for their 2-D toys (10 for images)
    "wgan-gp": ("wgan-gp", {"d_norm": "none", "penalty_weight": 0.1}, 1e-4),
    "sngan": ("sngan", {"d_norm": "none"}, 5e-4),
    "instance-noise": ("instance-noise", {"d_norm": "none"}, 1e-3),
}
DATASETS = ("gaussian-ring", "gaussian-grid")


def centres(data: str) -> tuple[np.ndarray, float]:
    from unsup.data.toy import RING_SD, ring_centres

    if data == "gaussian-ring":
        return ring_centres(8), RING_SD
    k = 5
    grid = np.array([[i, j] for i in range(k) for j in range(k)], dtype=float)
    return (grid + 0.5) / k, 0.1 / k


def score(x: np.ndarray, data: str) -> dict:
    c, sd = centres(data)
    d = np.linalg.norm(x[:, None] - c[None], axis=2)
    hq = d.min(1) < 3 * sd
    counts = np.bincount(d.argmin(1)[hq], minlength=len(c))
    share = hq.mean()
    recovered = int((counts >= 0.2 * hq.sum() / len(c)).sum()) if hq.any() else 0
    p = counts / max(counts.sum(), 1)
    kl = float(np.sum(p[p > 0] * np.log(p[p > 0] * len(c)))) if hq.any() else math.log(len(c))
    return {"high_quality": float(share), "modes_recovered": recovered, "modes": len(c),
            "kl_to_uniform": kl, "counts": counts.tolist()}


def one(data: str, variant: str, seed: int) -> None:
    """Train one case in this process and write its JSON (and samples) under runs/gan-modes."""
    import torch

    import unsup
    from unsup.data import load
    from unsup.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    preset, options, lr = VARIANTS[variant]
    train, val = load(data, "train", seed=seed), load(data, "val", seed=seed)
    torch.manual_seed(seed)
    model = unsup.create("gan", train, preset=preset, **options)
    cfg = TrainConfig(steps=STEPS, lr=lr, batch_size=256, seed=seed, eval_every=0, progress=False,
                      tensorboard=False)
    t0 = time.process_time()
    Trainer(model, train, val, cfg).fit()
    cpu = time.process_time() - t0
    torch.manual_seed(1000 + seed)
    x = model.sample(N_SAMPLES).numpy()
    out = RUNS / f"{data}-{variant}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", x)
    result = {"data": data, "variant": variant, "seed": seed, "preset": preset, "options": options,
              "lr": lr, "steps": STEPS, "batch_size": 256, "cpu_seconds": cpu, **score(x, data)}
    (out / "result.json").write_text(json.dumps(result, indent=1))


def report() -> None:
    commit = git_commit()
    cases = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/result.json"))]
    table = {}
    for data in DATASETS:
        for variant in VARIANTS:
            rows = [c for c in cases if c["data"] == data and c["variant"] == variant]
            if rows:
                table[f"{data}/{variant}"] = {
                    k: interval([r[k] for r in rows])
                    for k in ("modes_recovered", "high_quality", "kl_to_uniform", "cpu_seconds")}
                table[f"{data}/{variant}"]["seeds"] = [r["seed"] for r in rows]
    doc = {"command": "python benchmarks/gan_modes.py", "commit": commit, "threads": 1,
           "steps": STEPS, "batch_size": 256, "samples": N_SAMPLES, "variants": {
               k: {"preset": p, "options": o, "lr": lr} for k, (p, o, lr) in VARIANTS.items()},
           "summary": table, "cases": cases}
    path = ROOT / "benchmarks" / "results" / "gan-modes.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    figure()


def figure() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(DATASETS), len(VARIANTS) + 1, figsize=(3 * (len(VARIANTS) + 1), 6.2))
    for i, data in enumerate(DATASETS):
        c, sd = centres(data)
        axes[i, 0].scatter(c[:, 0], c[:, 1], s=30, c="k")
        axes[i, 0].set_title(f"{data}: the modes", fontsize=9)
        for j, variant in enumerate(VARIANTS, 1):
            path = RUNS / f"{data}-{variant}-0" / "samples.npy"
            if not path.exists():
                continue
            x = np.load(path)
            r = json.loads((path.parent / "result.json").read_text())
            axes[i, j].scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
            axes[i, j].scatter(c[:, 0], c[:, 1], s=8, c="r")
            axes[i, j].set_title(f"{variant}: {r['modes_recovered']}/{r['modes']} modes, "
                                 f"HQ {100 * r['high_quality']:.0f}%", fontsize=9)
        for ax in axes[i]:
            ax.set_xlim(-0.05, 1.05)
            ax.set_ylim(-0.05, 1.05)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"GAN variants, seed 0, {STEPS} steps at batch 256 (benchmarks/gan_modes.py)")
    fig.tight_layout()
    out = ROOT / "docs" / "figures" / "gan-modes.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="store_true", help="only aggregate the finished cases")
    ap.add_argument("--one", nargs=3, metavar=("DATA", "VARIANT", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    if args.one:
        one(args.one[0], args.one[1], int(args.one[2]))
        return
    if not args.report:
        run_on_both_cores([[sys.executable, __file__, "--one", d, v, str(s)]
                           for s in SEEDS for d in DATASETS for v in args.variants])
    report()


if __name__ == "__main__":
    main()
