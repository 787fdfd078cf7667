"""Reproduce the figures in docs/results.md: each recipe is one `unsup train` command.

    python benchmarks/recipes.py --list
    python benchmarks/recipes.py pixelcnn-fashion-binary      # one recipe
    python benchmarks/recipes.py --all                        # every recipe, one after another

Each recipe trains under a fixed seed and a stated CPU budget into runs/bench/NAME, then copies
its test evaluation to benchmarks/results/NAME.json and its pictures to docs/figures/NAME-*.png.
Budgets are wall-clock (`--time`) on 2 CPU cores, so a faster machine reaches further; the step
count reached is recorded with every result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DIGITS = ["--data", "digits", "--batch-size", "64", "--eval-every", "200"]
TOY = ["--batch-size", "256", "--eval-every", "200", "--samples", "5000"]

RECIPES: dict[str, list[str]] = {
    # CS294-158 HW1 PixelCNN on binarised Fashion-MNIST
    "pixelcnn-fashion-binary": ["pixelcnn", "--preset", "course", "--data", "fashion-mnist",
                                "--represent", "binary", "--batch-size", "128", "--time", "15m",
                                "--eval-every", "250", "--eval-batches", "10"],
    "made-digits-binary": ["made", *DIGITS, "--represent", "binary", "--time", "2m"],
    "made-digits-17": ["made", *DIGITS, "--time", "2m"],
    "pixelcnn-digits-binary": ["pixelcnn", *DIGITS, "--represent", "binary", "--time", "2m"],
    "pixelcnn-digits-17": ["pixelcnn", *DIGITS, "--time", "2m"],
    "histogram-toy-2d-image": ["histogram", "--data", "toy-2d-image", *TOY, "--time", "1m",
                               "--lr", "0.05"],
    "made-toy-2d-image": ["made", "--data", "toy-2d-image", *TOY, "--time", "1m"],
    "pixelcnn-toy-2d-image": ["pixelcnn", "--data", "toy-2d-image", *TOY, "--time", "1m"],
    "histogram-toy-1d-bimodal": ["histogram", "--data", "toy-1d-bimodal", *TOY, "--time", "30s",
                                 "--lr", "0.05"],
    "logistic-mixture-toy-1d-bimodal": ["logistic-mixture", "--data", "toy-1d-bimodal", *TOY,
                                        "--time", "30s", "--lr", "0.05"],
    "made-two-moons": ["made", "--data", "two-moons", "--represent", "levels:32", *TOY,
                       "--time", "1m"],
    "pixelcnn-two-moons": ["pixelcnn", "--data", "two-moons", "--represent", "levels:32", *TOY,
                           "--time", "1m"],
    "made-gaussian-grid": ["made", "--data", "gaussian-grid", "--represent", "levels:32", *TOY,
                           "--time", "1m"],
    "made-rings": ["made", "--data", "rings", "--represent", "levels:32", *TOY, "--time", "1m"],
}


def command(name: str) -> list[str]:
    return ["unsup", "train", *RECIPES[name], "--seed", "0", "--out", f"runs/bench/{name}"]


def run(name: str) -> dict:
    out = ROOT / "runs" / "bench" / name
    if out.exists():
        shutil.rmtree(out)
    cmd = command(name)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "unsup.cli", *cmd[1:]], check=True, cwd=ROOT)
    result = json.loads((out / "test.json").read_text())
    result.update(train=json.loads((out / "train.json").read_text()),
                  command=" ".join(cmd), wall_seconds=round(time.time() - t0, 1))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "docs" / "figures").mkdir(exist_ok=True)
    for png in out.glob("*.png"):
        shutil.copy(png, ROOT / "docs" / "figures" / f"{name}-{png.name}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="recipes to run")
    p.add_argument("--all", action="store_true", help="run every recipe")
    p.add_argument("--list", action="store_true", help="print the recipes and their commands")
    args = p.parse_args()
    if args.list or not (args.names or args.all):
        for name in RECIPES:
            print(f"{name}: {' '.join(command(name))}")
        return
    names = list(RECIPES) if args.all else args.names
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {', '.join(unknown)}; see --list")
    for name in names:
        r = run(name)
        print(f"{name}: test {r['bpd']:.4f} bits/dim ({r['nll_nats']:.3f} nats/example) after "
              f"{r['train']['steps']} steps", flush=True)


if __name__ == "__main__":
    main()
