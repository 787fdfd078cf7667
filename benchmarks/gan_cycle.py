"""CycleGAN between Fashion-MNIST and its coloured variant (issue #19).

    python benchmarks/gan_cycle.py            # train (5 minutes, one core), then measure
    python benchmarks/gan_cycle.py --score    # only measure the finished run

Domain A is ``fashion-mnist`` (256 grey levels), domain B ``colored-fashion-mnist`` (a random
colour per image, 4 levels per channel), unpaired (``unsup.data.unpaired``). On the whole test
split, both ways:

* the cycle reconstruction error, mean |F(G(a)) - a| and |G(F(b)) - b| in [-1, 1] units;
* the class kept: the shipped Fashion-MNIST classifier's accuracy on the translations against the
  source's label (a coloured image is read as grey by its brightest channel, which the colouring
  keeps: every colour has a channel at 1), beside its accuracy on the real images of each domain.

Writes ``benchmarks/results/gan-cycle.json`` and ``docs/figures/gan-cycle.png`` (rows: A, G(A),
F(G(A)); B, F(B), G(F(B))).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from pinned import git_commit  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUN = "runs/gan-cycle"
DATA = "unpaired-fashion-mnist+colored-fashion-mnist"
TRAIN = ["unsup", "train", "cyclegan", "--data", DATA, "--time", "5m", "--eval-every", "500",
         "--eval-batches", "10", "--batch-size", "32", "--lr", "2e-4", "--seed", "0", "--no-progress",
         "--out", RUN]


def grey(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Images of ``levels`` (1 or 3 channels) as 256-level grey (the brightest channel)."""
    v = x.float().amax(1, keepdim=True) / (levels - 1)
    return torch.round(v * 255).long()


def accuracy(clf, spec, x: torch.Tensor, levels: int, y: torch.Tensor) -> float:
    from unsup.quality import features

    logits = features(clf, grey(x, levels), spec)[1]
    return float((logits.argmax(1) == y).double().mean())


def score() -> None:
    from unsup.data import load
    from unsup.plots import save_rows
    from unsup.quality import load_classifier
    from unsup.train import load_run

    torch.set_num_threads(2)
    model, meta = load_run(ROOT / RUN, "best")
    test = load(DATA, "test")
    batch = test.batch(torch.arange(len(test)))
    a, b, ya, yb = batch["x"], batch["x_b"], batch["y"], batch["y_b"]
    la, lb = model.spec.levels, model.spec_b.levels
    with torch.no_grad():
        to_b = torch.cat([model.translate(a[i:i + 500], "b") for i in range(0, len(a), 500)])
        to_a = torch.cat([model.translate(b[i:i + 500], "a") for i in range(0, len(b), 500)])
        back_a = torch.cat([model.translate(to_b[i:i + 500], "a") for i in range(0, len(a), 500)])
        back_b = torch.cat([model.translate(to_a[i:i + 500], "b") for i in range(0, len(b), 500)])

    def unit(x, levels):
        return x.float() / (levels - 1) * 2 - 1

    clf, clf_meta = load_classifier("fashion-mnist")
    spec = load("fashion-mnist", "test").spec
    result = {
        "cycle_error": {"a_to_b_to_a": float((unit(back_a, la) - unit(a, la)).abs().mean()),
                        "b_to_a_to_b": float((unit(back_b, lb) - unit(b, lb)).abs().mean())},
        "class_kept": {"a_to_b": accuracy(clf, spec, to_b, lb, ya),
                       "b_to_a": accuracy(clf, spec, to_a, la, yb)},
        "classifier_on_real": {"a": accuracy(clf, spec, a, la, ya), "b": accuracy(clf, spec, b, lb, yb)},
        "classifier_test_accuracy": clf_meta["test_accuracy"], "test_examples": len(test)}
    from unsup.models.implicit.cyclegan import as_rgb

    rows = [as_rgb(a[:16], la), as_rgb(to_b[:16], lb), as_rgb(back_a[:16], la),
            as_rgb(b[:16], lb), as_rgb(to_a[:16], la), as_rgb(back_b[:16], lb)]
    save_rows(rows, ROOT / "docs" / "figures" / "gan-cycle.png", ncol=16)
    commit = git_commit()
    train_info = json.loads((ROOT / RUN / "train.json").read_text())
    doc = {"command": "python benchmarks/gan_cycle.py",
           "train_command": "OMP_NUM_THREADS=1 " + " ".join(TRAIN),
           "commit": commit, "threads": {"train": 1, "score": 2}, "steps": train_info["steps"],
           "seconds": train_info["seconds"], **result}
    path = ROOT / "benchmarks" / "results" / "gan-cycle.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--score", action="store_true", help="only measure the finished run")
    args = ap.parse_args()
    if not args.score:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(["taskset", "-c", os.environ.get("CORE", "0"), sys.executable, "-m", "unsup.cli",
                        *TRAIN[1:]], cwd=ROOT, env=env, check=True)
    score()


if __name__ == "__main__":
    main()
