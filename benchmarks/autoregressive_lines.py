"""The fully visible sigmoid belief net, NADE and MADE's orderings and mask ensemble, side by side
(issue #23: lines of the course built but never shown).

    python benchmarks/autoregressive_lines.py           # train 5 rows x 3 seeds, evaluate, write JSON
    python benchmarks/autoregressive_lines.py --collect # only read the runs into the JSON

On binarised Fashion-MNIST (``x/255 > 0.5``), each row is one ``unsup train`` command with 2 minutes
of wall-clock training on one pinned core and one thread, seeds 0, 1 and 2, scored on the whole
test split (``--eval-time full``):

- ``fvsbn``: MADE without a hidden layer (``--preset fvsbn``), one logistic regression per pixel on
  the pixels before it in raster order (Frey 1998);
- ``nade``: NADE with its defaults (500 sigmoid hidden units shared by all conditionals);
- ``made-natural`` and ``made-random``: MADE's default network (one layer of 8,000) in raster
  order and in a random order (the default for binary data);
- ``made-8-masks``: the same network trained order- and connectivity-agnostically over 8 masks;
  its test NLL is the log of the average probability of the 8 members (``MADE.log_prob``), and
  each member is scored alone too (``MADE.log_prob_mask``): does averaging the masks help?

Every figure is a mean over the 3 seeds with its 95 % t-interval; a ranking is stated only where
the intervals do not overlap. Writes ``benchmarks/results/autoregressive-lines.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pinned import Job, interval, provenance, train_here, trained_at, write_result  # benchmarks/: on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/ar-lines")
RESULT = ROOT / "benchmarks" / "results" / "autoregressive-lines.json"
SEEDS = (0, 1, 2)
MASKS = 8
COMMON = ["--data", "fashion-mnist", "--represent", "binary", "--time", "2m", "--eval-time", "full",
          "--eval-every", "250", "--eval-batches", "10", "--samples", "64", "--no-progress"]
ROWS = {
    "fvsbn": ["made", "--preset", "fvsbn"],
    "nade": ["nade"],
    "made-natural": ["made", "--ordering", "natural"],
    "made-random": ["made", "--ordering", "random"],
    "made-8-masks": ["made", "--ordering", "random", "--num-masks", str(MASKS)],
}


def command(row: str, seed: int) -> list[str]:
    model, *options = ROWS[row]
    return ["unsup", "train", model, *COMMON, *options, "--seed", str(seed),
            "--out", str(RUNS / f"{row}-s{seed}")]


def members(run: Path) -> dict:
    """Test NLL (nats per image) of each of a mask ensemble's members alone, and of the ensemble."""
    import torch

    from unsup.train import load_run
    from unsup.train.runs import run_data

    model, meta = load_run(ROOT / run)
    x = run_data(meta, "test").x
    per_mask, ensemble = torch.zeros(MASKS, dtype=torch.float64), 0.0
    with torch.no_grad():
        for start in range(0, len(x), 500):
            batch = x[start:start + 500]
            for k in range(MASKS):
                per_mask[k] -= model.log_prob_mask(batch, None, k).double().sum()
            ensemble -= float(model.log_prob(batch).double().sum())
    per_mask /= len(x)
    return {"members_nll_nats": per_mask.tolist(), "mean_member_nll_nats": float(per_mask.mean()),
            "best_member_nll_nats": float(per_mask.min()), "ensemble_nll_nats": ensemble / len(x),
            "n": len(x)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="only read the trained runs")
    args = ap.parse_args()
    doc = provenance("benchmarks/autoregressive_lines.py", sys.argv[1:])
    doc["threads"] = {"train": 1, "evaluate": 1}
    if not args.collect:
        train_here(ROOT / RUNS, doc["git_commit"], [
            Job(f"{r}-s{s}", command(r, s), record=ROOT / RUNS / f"{r}-s{s}" / "job.json")
            for s in SEEDS for r in ROWS])
    doc["trained_git_commit"] = trained_at(ROOT / RUNS)
    rows = {}
    for r in ROWS:
        seeds = {}
        for s in SEEDS:
            run = RUNS / f"{r}-s{s}"
            test = json.loads((ROOT / run / "test.json").read_text())
            train = json.loads((ROOT / run / "train.json").read_text())
            seeds[str(s)] = {"command": " ".join(["OMP_NUM_THREADS=1 taskset -c CORE", *command(r, s)]),
                             "steps": train["steps"], "test_nll_nats": test["nll_nats"], "bpd": test["bpd"],
                             "n": test["n"], "exact": test["exact"]}
            if r == "made-8-masks":
                seeds[str(s)]["masks"] = members(run)
        rows[r] = {"seeds": seeds, "test_nll_nats": interval([v["test_nll_nats"] for v in seeds.values()]),
                   "steps": interval([float(v["steps"]) for v in seeds.values()])}
    ens = [v["masks"] for v in rows["made-8-masks"]["seeds"].values()]
    rows["made-8-masks"]["members"] = {
        "mean_member_nll_nats": interval([m["mean_member_nll_nats"] for m in ens]),
        "ensemble_nll_nats": interval([m["ensemble_nll_nats"] for m in ens]),
        "ensemble_gain_nats": interval([m["mean_member_nll_nats"] - m["ensemble_nll_nats"] for m in ens])}
    doc["rows"] = rows
    write_result(RESULT, doc, table)


def table(doc: dict) -> str:
    lines = ["| row | test NLL (nats/image), mean [95 % interval] over 3 seeds | bits/dim | steps |",
             "|---|---|---|---|"]
    for r, e in doc["rows"].items():
        t = e["test_nll_nats"]
        bpd = sum(v["bpd"] for v in e["seeds"].values()) / len(e["seeds"])
        lines.append(f"| {r} | {t['mean']:.2f} [{t['ci95'][0]:.2f}, {t['ci95'][1]:.2f}] | {bpd:.4f} | "
                     f"{e['steps']['mean']:.0f} |")
    m = doc["rows"]["made-8-masks"]["members"]
    lines.append("")
    lines.append(f"made-8-masks: members alone {m['mean_member_nll_nats']['mean']:.2f} nats "
                 f"[{m['mean_member_nll_nats']['ci95'][0]:.2f}, {m['mean_member_nll_nats']['ci95'][1]:.2f}], "
                 f"the ensemble {m['ensemble_nll_nats']['mean']:.2f}; gain "
                 f"{m['ensemble_gain_nats']['mean']:.2f} nats [{m['ensemble_gain_nats']['ci95'][0]:.2f}, "
                 f"{m['ensemble_gain_nats']['ci95'][1]:.2f}]")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
