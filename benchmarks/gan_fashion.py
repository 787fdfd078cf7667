"""Implicit models on Fashion-MNIST at a CPU budget, scored by the shipped classifier (issue #19).

    python benchmarks/gan_fashion.py            # train every variant (two at a time), then score
    python benchmarks/gan_fashion.py --score    # only score the finished runs

Each variant is one ``unsup train MODEL`` command in :data:`RECIPES` (5 minutes of training on one
core, one thread, seed 0, batch 64 -- 256 for the GMMN, whose loss needs the larger sample),
followed by ``unsup eval RUN --sample-quality 1000``: KID, FD,
precision, recall, density and coverage in the Fashion-MNIST classifier's features, each beside
its floor (1,000 real training against 1,000 real test images), and for the conditional GAN the
share of its samples the classifier puts in the class they were drawn for. The BiGAN's encoder is
also judged by ``unsup probe RUN --probes linear`` beside the untrained encoder and the pixels.
One seed per variant: the table describes these runs and ranks nothing.

Writes ``benchmarks/results/gan-fashion.json`` and copies each run's ``samples.png`` to
``docs/figures/gan-fashion-VARIANT.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pinned import git_commit, run_on_both_cores  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "gan-fashion"
BUDGET = ["--time", "5m", "--eval-every", "500", "--eval-batches", "10", "--samples", "64",
          "--seed", "0", "--no-progress", "--batch-size", "64"]
RECIPES = {  # name: (model, options)
    "dcgan": ("gan", ["--preset", "dcgan", "--lr", "2e-4"]),
    "wgan-gp": ("gan", ["--preset", "wgan-gp", "--lr", "1e-4"]),
    "sngan": ("gan", ["--preset", "sngan", "--lr", "2e-4"]),
    "cgan": ("gan", ["--preset", "dcgan", "--conditional", "--lr", "2e-4"]),
    "bigan": ("bigan", ["--lr", "2e-4"]),
    "gmmn": ("gmmn", ["--lr", "1e-3", "--batch-size", "256"]),
    "ebm": ("ebm", ["--lr", "1e-4"]),
}
QUALITY_N = 1000


def command(name: str) -> list[str]:
    model, options = RECIPES[name]
    return ["unsup", "train", model, "--data", "fashion-mnist", *BUDGET, *options,
            "--out", f"runs/gan-fashion/{name}"]


def train(names: list[str]) -> None:
    run_on_both_cores([[sys.executable, "-m", "unsup.cli", *command(name)[1:]] for name in names])
    for name in names:  # which code trained it, for the JSON
        (RUNS / name / "commit").write_text(git_commit() + "\n")


def score(names: list[str], keep_probe: bool = False) -> None:
    """Score the runs ``names`` and merge them into the JSON (other entries are kept)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    commit = git_commit()
    path = ROOT / "benchmarks" / "results" / "gan-fashion.json"
    previous = json.loads(path.read_text())["results"] if path.exists() else {}
    results = dict(previous)
    for name in names:
        run = RUNS / name
        evaluation = ["unsup", "eval", f"runs/gan-fashion/{name}", "--sample-quality", str(QUALITY_N),
                      "--json"]
        out = subprocess.run([sys.executable, "-m", "unsup.cli", *evaluation[1:]], cwd=ROOT, env=env,
                             check=True, capture_output=True, text=True).stdout
        train_info = json.loads((run / "train.json").read_text())
        results[name] = {"train_command": "OMP_NUM_THREADS=1 " + " ".join(command(name)),
                         "train_commit": (run / "commit").read_text().strip(), "eval_commit": commit,
                         "eval_command": " ".join(evaluation),
                         "steps": train_info.get("steps"), "seconds": train_info.get("seconds"),
                         "eval": json.loads(out)}
        if RECIPES[name][0] == "bigan" and keep_probe and "probe" in previous.get(name, {}):
            results[name]["probe_command"] = previous[name]["probe_command"]
            results[name]["probe"] = previous[name]["probe"]
        elif RECIPES[name][0] == "bigan":
            probe = ["unsup", "probe", f"runs/gan-fashion/{name}", "--probes", "linear", "--no-tsne",
                     "--json"]
            out = subprocess.run([sys.executable, "-m", "unsup.cli", *probe[1:]], cwd=ROOT, env=env,
                                 check=True, capture_output=True, text=True).stdout
            results[name]["probe_command"] = " ".join(probe)
            results[name]["probe"] = json.loads(out)
        shutil.copy(run / "samples.png", ROOT / "docs" / "figures" / f"gan-fashion-{name}.png")
    doc = {"command": "python benchmarks/gan_fashion.py", "commit": commit,
           "threads": {"train": 1, "eval": 2}, "results": {k: results[k] for k in RECIPES if k in results}}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--score", action="store_true", help="only score the finished runs")
    ap.add_argument("--keep-probe", action="store_true",
                    help="keep the BiGAN probe of the JSON instead of probing again (it depends on "
                    "the run alone)")
    ap.add_argument("names", nargs="*", default=list(RECIPES))
    args = ap.parse_args()
    if not args.score:
        train(args.names)
    score(args.names, args.keep_probe)


if __name__ == "__main__":
    main()
