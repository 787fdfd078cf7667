"""Outlier detection with models trained on Fashion-MNIST (issue #21): `unsup ood` on one run, its
result in benchmarks/results/ood-NAME.json and its histograms in docs/figures/ood-NAME-SCORE.png.

    python benchmarks/recipes.py ood-bg-gated-fashion-mu0.1 ood-bg-gated-fashion-mu0.3   # backgrounds
    python benchmarks/ood.py gated runs/bench/codec-gated-fashion \\
        --background runs/bench/ood-bg-gated-fashion-mu0.1 runs/bench/ood-bg-gated-fashion-mu0.3
    python benchmarks/ood.py vae runs/bench/vae-fashion-8bit --importance-samples 100 \\
        --background runs/bench/ood-bg-vae-fashion-mu0.1 runs/bench/ood-bg-vae-fashion-mu0.3

The outlier sets are those of the issue: cifar10-jpeg made grey 28x28 (the project's copy, in the
shared/ folder beside the repository, given by path relative to the repository as the recipes do),
digits enlarged to 28x28, shapes, noise and constant images; `--outliers` replaces them. The
command runs in the repository with one thread (pin it with `taskset -c N`); the result records
the command, the commit and the thread count. The background recipes are in benchmarks/recipes.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pinned import git_commit  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
CIFAR = os.path.relpath(ROOT.parent / "shared" / "data" / "cifar10-jpeg", ROOT)
OUTLIERS = [f"cifar10-jpeg={CIFAR}", "digits", "shapes", "noise", "constant"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the result's name: benchmarks/results/ood-NAME.json")
    p.add_argument("run", help="the in-distribution run (relative to the repository)")
    p.add_argument("--background", nargs="+", default=[], metavar="RUN", help="candidate background runs")
    p.add_argument("--outliers", nargs="+", default=OUTLIERS, metavar="SET")
    p.add_argument("--examples", type=int, default=2000, help="examples per set (default: 2000)")
    p.add_argument("--importance-samples", type=int, default=None, metavar="K")
    p.add_argument("--codec", default="png,jpegxl", help="codecs of input complexity (default: png,jpegxl)")
    args = p.parse_args()

    out = Path("runs") / "ood" / args.name
    options = ["--outliers", *args.outliers, "--examples", str(args.examples), "--codec", args.codec]
    if args.background:
        options += ["--background", *args.background]
    if args.importance_samples is not None:
        options += ["--importance-samples", str(args.importance_samples)]
    argv = ["ood", args.run, *options, "--seed", "0", "--out", str(out), "--json"]
    t0 = time.time()
    done = subprocess.run([sys.executable, "-m", "unsup.cli", *argv], cwd=ROOT, check=True,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = {"command": " ".join(["OMP_NUM_THREADS=1", "unsup", *argv]), "git_commit": git_commit(),
              "threads": 1, "wall_seconds": round(time.time() - t0, 1),
              **json.loads(done.stdout.strip().splitlines()[-1])}
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    path = ROOT / "benchmarks" / "results" / f"ood-{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for picture in sorted((ROOT / out).glob("ood-*.png")):
        score = picture.name.removeprefix("ood-")
        shutil.copy(picture, ROOT / "docs" / "figures" / f"ood-{args.name}-{score}")

    from unsup.ood.report import format_sets, format_table

    print(f"{result['model']}: {result['wall_seconds']} s; wrote {path.relative_to(ROOT)}")
    print(format_sets(result))
    for metric in ("auroc", "aupr", "fpr95"):
        print(format_table(result, metric))


if __name__ == "__main__":
    main()
