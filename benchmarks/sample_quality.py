"""The sample-quality yardstick's floors, and likelihood models scored on it (issue #19).

    python benchmarks/sample_quality.py           # floors, then train and score the models
    python benchmarks/sample_quality.py --floors  # only the floors
    python benchmarks/sample_quality.py --score   # floors, and score the runs already trained

Floors: for each dataset with a shipped classifier, the metrics between N real training and N
real test images (N = 300, 1,000 and 5,000 where the test split has them), in that classifier's
features: what a generator indistinguishable from the data would score at that N.

Models: likelihood models of the earlier sections, each trained by the command in
:data:`RECIPES` (5 minutes on one core, one thread, seed 0), then scored by
``unsup eval RUN --sample-quality 1000`` like the implicit models (``gan_fashion.py``), so the
families can be compared on samples. One seed each: descriptions, not rankings.

Writes ``benchmarks/results/sample-quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from pinned import git_commit, run_on_both_cores  # benchmarks/ is on sys.path
from recipes import CIFAR_DIR

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ["--time", "5m", "--eval-every", "500", "--samples", "64", "--seed", "0", "--no-progress"]
RECIPES = {
    "glow": ["glow", "--data", "fashion-mnist", *BUDGET],
    "vae": ["vae", "--data", "fashion-mnist", "--arch", "conv", *BUDGET],
}
FLOORS = {"digits": [], "fashion-mnist": [], "cifar10-jpeg": CIFAR_DIR}
QUALITY_N = 1000


def floors() -> dict:
    from unsup import metrics
    from unsup.data import DataArgs
    from unsup.quality import features, load_classifier

    out = {}
    for name, extra in FLOORS.items():
        data_dir = str(ROOT / extra[1]) if extra else None
        args = DataArgs(name, root=data_dir)
        train, test = args.load("train"), args.load("test")
        clf, meta = load_classifier(name)
        for n in (300, 1000, 5000):  # digits' test split has 359 images
            if n > len(test):
                continue
            g = torch.Generator().manual_seed(0)
            real_test = test.x[torch.randperm(len(test), generator=g)[:n]]
            real_train = train.x[torch.randperm(len(train), generator=g)[:n]]
            f_test, _ = features(clf, real_test, test.spec)
            f_train, _ = features(clf, real_train, test.spec)
            out[f"{name}/{n}"] = {"classifier_test_accuracy": meta["test_accuracy"],
                                  **metrics.sample_quality(f_test, f_train, subsets=100,
                                                           subset_size=min(1000, n // 2), seed=0)}
        print(name, json.dumps({k: v for k, v in out.items() if k.startswith(name)}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floors", action="store_true", help="only the floors (the models' scores in "
                    "the JSON are kept)")
    ap.add_argument("--score", action="store_true", help="score the trained runs without training")
    args = ap.parse_args()
    path = ROOT / "benchmarks" / "results" / "sample-quality.json"
    kept = {}
    if args.floors and path.exists():  # each model keeps the commit that scored it
        old = json.loads(path.read_text())
        kept = old["models"]
    doc = {"command": "python benchmarks/sample_quality.py", "commit": git_commit(),
           "threads": {"train": 1, "eval": 2}, "floors": floors(), "models": kept}
    if not args.floors:
        if not args.score:
            run_on_both_cores([[sys.executable, "-m", "unsup.cli", "train", *RECIPES[name], "--out",
                                f"runs/sample-quality/{name}"] for name in RECIPES])
            for name in RECIPES:
                (ROOT / "runs" / "sample-quality" / name / "commit").write_text(doc["commit"] + "\n")
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        for name in RECIPES:
            # the test NLL on 200 examples beside (the VAE's importance-sampled NLL of the whole
            # split takes half an hour); the sample quality does not depend on it
            evaluation = ["unsup", "eval", f"runs/sample-quality/{name}", "--sample-quality",
                          str(QUALITY_N), "--examples", "200", "--json"]
            out = subprocess.run([sys.executable, "-m", "unsup.cli", *evaluation[1:]], cwd=ROOT, env=env,
                                 check=True, capture_output=True, text=True).stdout
            info = json.loads((ROOT / "runs" / "sample-quality" / name / "train.json").read_text())
            train = " ".join(["OMP_NUM_THREADS=1 unsup train", *RECIPES[name], "--out",
                              f"runs/sample-quality/{name}"])
            trained_at = (ROOT / "runs" / "sample-quality" / name / "commit").read_text().strip()
            doc["models"][name] = {"train_commit": trained_at, "eval_commit": doc["commit"],
                                   "train_command": train,
                                   "eval_command": " ".join(evaluation), "steps": info["steps"],
                                   "eval": json.loads(out)}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
