"""Mode collapse on 1,000 modes: GAN variants on stacked digits (issue #19).

    python benchmarks/gan_stacked.py            # every case, two at a time, one per core
    python benchmarks/gan_stacked.py --report   # aggregate runs/gan-stacked/*.json only

``stacked-digits`` puts three random 8x8 digits into the three channels of an image: 1,000 class
combinations (Metz et al. 2017; VEEGAN; PacGAN). Each variant trains ``unsup.create("gan", ...)``
on 60,000 training stacks for :data:`STEPS` optimiser steps at batch 64, one thread on one core,
for 3 seeds. Then 10,000 samples are drawn and the shipped digits classifier (98.3 % test
accuracy) labels each channel; the combinations seen are the modes covered, and
``kl_to_uniform`` is KL(p || uniform over 1,000) of their histogram, in nats. The floor is the
same count on 10,000 real test stacks (what a perfect generator would score, classifier errors
included).

Writes ``benchmarks/results/gan-stacked.json`` and ``docs/figures/gan-stacked.png`` (seed 0's
samples).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pinned import git_commit, interval, run_on_both_cores  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "gan-stacked"
STEPS = 6000
SEEDS = (0, 1, 2)
N_SAMPLES = 10000
VARIANTS = {  # variant: (preset, options, --lr)
    "dcgan": ("dcgan", {}, 2e-4),
    "wgan-gp": ("wgan-gp", {}, 1e-4),
    "sngan": ("sngan", {}, 2e-4),
    "instance-noise": ("instance-noise", {}, 2e-4),
}


def count_modes(x) -> dict:
    """Label each channel with the digits classifier: modes covered and KL to uniform."""
    import torch

    from unsup.data import load
    from unsup.quality import features, load_classifier

    clf, meta = load_classifier("digits")
    spec = load("digits", "test").spec
    digits = [features(clf, x[:, c:c + 1], spec)[1].argmax(1) for c in range(3)]
    modes = 100 * digits[0] + 10 * digits[1] + digits[2]
    counts = torch.bincount(modes, minlength=1000).double()
    p = counts / counts.sum()
    kl = float((p[p > 0] * (p[p > 0] * 1000).log()).sum())
    return {"modes_covered": int((counts > 0).sum()), "kl_to_uniform": kl,
            "classifier_accuracy": meta["test_accuracy"]}


def one(variant: str, seed: int) -> None:
    import torch

    import unsup
    from unsup.data import load
    from unsup.plots import save_samples
    from unsup.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    preset, options, lr = VARIANTS[variant]
    train = load("stacked-digits", "train", n=60000, seed=seed)
    val = load("stacked-digits", "val", n=2000, seed=seed)
    torch.manual_seed(seed)
    model = unsup.create("gan", train, preset=preset, **options)
    cfg = TrainConfig(steps=STEPS, lr=lr, batch_size=64, seed=seed, eval_every=0, progress=False,
                      tensorboard=False)
    t0 = time.process_time()
    Trainer(model, train, val, cfg).fit()
    cpu = time.process_time() - t0
    torch.manual_seed(1000 + seed)
    x = torch.cat([model.sample(1000) for _ in range(N_SAMPLES // 1000)])
    out = RUNS / f"{variant}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    save_samples(x[:64], model.spec, out / "samples.png")
    result = {"variant": variant, "seed": seed, "preset": preset, "options": options, "lr": lr,
              "steps": STEPS, "batch_size": 64, "cpu_seconds": cpu, **count_modes(x)}
    (out / "result.json").write_text(json.dumps(result, indent=1))


def report() -> None:
    from unsup.data import load

    commit = git_commit()
    cases = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/result.json"))]
    table = {}
    for variant in VARIANTS:
        rows = [c for c in cases if c["variant"] == variant]
        if rows:
            table[variant] = {k: interval([r[k] for r in rows])
                              for k in ("modes_covered", "kl_to_uniform", "cpu_seconds")}
    floor = count_modes(load("stacked-digits", "test", n=N_SAMPLES).x)
    doc = {"command": "python benchmarks/gan_stacked.py", "commit": commit, "threads": 1,
           "steps": STEPS, "batch_size": 64, "samples": N_SAMPLES, "floor_real_test_stacks": floor,
           "variants": {k: {"preset": p, "options": o, "lr": lr} for k, (p, o, lr) in VARIANTS.items()},
           "summary": table, "cases": cases}
    path = ROOT / "benchmarks" / "results" / "gan-stacked.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    figure()


def figure() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(3.2 * len(VARIANTS), 3.6))
    for ax, variant in zip(axes, VARIANTS, strict=True):
        path = RUNS / f"{variant}-0"
        if (path / "samples.png").exists():
            r = json.loads((path / "result.json").read_text())
            ax.imshow(plt.imread(path / "samples.png"))
            ax.set_title(f"{variant}: {r['modes_covered']} modes", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"stacked digits, seed 0, {STEPS} steps (benchmarks/gan_stacked.py)", fontsize=10)
    fig.tight_layout()
    out = ROOT / "docs" / "figures" / "gan-stacked.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="store_true", help="only aggregate the finished cases")
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]))
        return
    if not args.report:
        run_on_both_cores([[sys.executable, __file__, "--one", v, str(s)] for s in SEEDS for v in VARIANTS])
    report()


if __name__ == "__main__":
    main()
