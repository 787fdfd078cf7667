"""Classifier-free guidance: sample quality against class accuracy as the guidance weight grows
(issue #20).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/diffusion_guidance.py \\
        runs/bench/ddpm-digits-conditional --json benchmarks/results/diffusion-guidance.json

For each weight ``w`` (0: unconditional, 1: conditional, > 1: guided), draws ``--n`` samples from
seed 0 with every class in turn (the model's default sampler, DDIM with 50 steps), and scores them
with the shipped classifier: KID and FD against the test split, and the share the classifier
assigns to the class each sample was drawn for. Rows go to ``--json`` with the command, commit
and threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from pinned import git_commit  # benchmarks/ is on sys.path

from unsup.data import DataArgs
from unsup.quality import draw_samples, score_samples
from unsup.train import load_run

WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a conditional diffusion run trained with label dropout")
    p.add_argument("--n", type=int, default=300, help="samples per weight")
    p.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    model, meta = load_run(args.run, "best", device="cpu")
    data = DataArgs.from_dict(meta["data"])
    rows = []
    for w in args.weights:
        fake, asked = draw_samples(model, args.n, 100, args.seed, False, {"guidance": w})
        q = score_samples(fake, data, args.seed, asked)
        rows.append({"guidance": w, "samples": q["samples"], "floor": q["floor"]})
        s = q["samples"]
        print(f"w = {w:4.1f}: KID {s['kid']:.4f} ± {s['kid_sd']:.4f}, FD {s['fd']:.1f}, "
              f"class accuracy {s['class_accuracy']:.3f}", flush=True)
    out = {"run": str(args.run), "model": meta["model"], "data": data.name, "n": args.n,
           "command": " ".join(["python", "benchmarks/diffusion_guidance.py", *sys.argv[1:]]),
           "git_commit": git_commit(), "threads": torch.get_num_threads(),
           "classifier_test_accuracy": q["classifier"]["test_accuracy"], "features": q["features"],
           "rows": rows}
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
