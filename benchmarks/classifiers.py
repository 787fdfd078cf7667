"""Train and export the classifiers that ship with unsup for sample quality (issue #19).

    python benchmarks/classifiers.py train     # the recipes below, two at a time on the 2 cores
    python benchmarks/classifiers.py export    # runs/classifiers/NAME -> unsup/quality/NAME.safetensors

Each classifier is the ``supervised`` model (the representation methods' conv backbone and a
linear layer) trained with the command in :data:`RECIPES` on one core. ``export`` keeps its best
weights and config (no optimiser state), measures its accuracy on the whole test split, writes
``unsup/quality/NAME.safetensors`` (a checksummed unsup checkpoint) and prints the SHA-256 to pin
in :data:`unsup.quality.CLASSIFIERS`; ``benchmarks/results/classifiers.json`` keeps the figures,
commands and commit. The CIFAR-10 classifier is trained on the JPEG copy beside the repository
(``recipes.CIFAR_DIR``); no MNIST is on this machine, so none ships for it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from recipes import CIFAR_DIR  # benchmarks/recipes.py: the script's directory is on sys.path

from unsup.data import DataArgs
from unsup.data.download import sha256sum
from unsup.train import evaluate, load_run, save_state

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--time", "5m", "--eval-every", "250", "--samples", "0", "--seed", "0", "--no-progress"]
RECIPES = {
    "fashion-mnist": ["--data", "fashion-mnist", *COMMON],
    "cifar10-jpeg": ["--data", "cifar10-jpeg", *CIFAR_DIR, *COMMON],
    "digits": ["--data", "digits", "--time", "1m", *COMMON[2:]],
}


def train(names: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(["taskset", "-c", str(i % 2), sys.executable, "-m", "unsup.cli", "train",
                               "supervised", *RECIPES[name], "--out", f"runs/classifiers/{name}"],
                              cwd=ROOT, env=env) for i, name in enumerate(names)]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"a classifier run failed ({p.args})")


def export(names: list[str]) -> None:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    results = {}
    for name in names:
        model, meta = load_run(ROOT / "runs" / "classifiers" / name, "best")
        test = DataArgs.from_dict(meta["data"]).load("test")
        error = evaluate(model, test, 256)["error"]
        command = " ".join(["OMP_NUM_THREADS=1", "unsup", "train", "supervised", *RECIPES[name],
                            "--out", f"runs/classifiers/{name}"])
        info = {"model": meta["model"], "model_config": meta["model_config"], "spec": meta["spec"],
                "data": meta["data"], "step": meta["step"], "test_accuracy": 1 - error,
                "command": command, "commit": commit}
        path = ROOT / "unsup" / "quality" / f"{name}.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_state(path, {"model": {k: v.contiguous() for k, v in model.state_dict().items()},
                          "meta": info})
        sha = sha256sum(path)
        results[name] = {**info, "file": path.name, "sha256": sha, "bytes": path.stat().st_size}
        print(f'"{name}": ("{path.name}", "{sha}"),  # test accuracy {100 * (1 - error):.2f} %')
    out = ROOT / "benchmarks" / "results" / "classifiers.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**old, **results}, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("train", "export"))
    p.add_argument("names", nargs="*", default=list(RECIPES), help="classifiers (default: all)")
    args = p.parse_args()
    torch.set_num_threads(1)
    (train if args.step == "train" else export)(args.names)


if __name__ == "__main__":
    main()
