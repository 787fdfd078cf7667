"""Transfer of a self-supervised representation to a dataset it was not trained on (issue #23).

    python benchmarks/transfer.py                   # train 2 sources x 3 seeds, probe, write JSON
    python benchmarks/transfer.py --collect         # only read the probes into the JSON
    python benchmarks/transfer.py --cifar PATH      # where cifar10-jpeg.tar.gz is

Two 28x28 greyscale image datasets with 10 classes each: Fashion-MNIST, and CIFAR-10 (the JPEG
copy in ``../shared``) read as ``image-folder:ARCHIVE`` with ``size=28, channels=1`` (its official
train/test split). SimCLR (the default backbone, batch 64, as in results.md section 6) trains
without labels on each for 4 minutes of one pinned core and thread, seeds 0, 1 and 2. Every run
is then judged on **both** datasets, its own and the other one (``unsup probe --data``):

- a linear probe of the frozen features with 10 % of the target's training labels;
- with 1 % of the target's labels, the whole encoder fine-tuned for 500 steps from the run's
  weights against the same network trained from scratch on the same labels and steps (the
  scratch network is the probe's own; its seed is the run's).

The probe and fine-tuning seed is the run's seed, so each (source, target) cell has 3 values;
every figure is a mean with its 95 % t-interval, and a ranking is stated only where intervals do
not overlap. Writes ``benchmarks/results/transfer.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pinned import (  # benchmarks/: on sys.path
    Job,
    interval,
    percent,
    provenance,
    train_here,
    trained_at,
    write_result,
)

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/transfer")
RESULT = ROOT / "benchmarks" / "results" / "transfer.json"
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
SEEDS = (0, 1, 2)
TRAIN = ["simclr", "--represent", "native", "--batch-size", "64", "--eval-every", "250",
         "--eval-batches", "5", "--samples", "0", "--time", "4m", "--no-progress"]
GREY28 = ["--data-opt", "size=28", "--data-opt", "channels=1"]
PROBES = {"linear10": ["--labels", "10%", "--probes", "linear"],
          "finetune1": ["--labels", "1%", "--probes", "linear", "--finetune-steps", "500"]}


def data(name: str, cifar: Path) -> list[str]:
    return ["--data", "fashion-mnist"] if name == "fashion" else ["--data", f"image-folder:{cifar}", *GREY28]


def train_command(source: str, seed: int, cifar: Path) -> list[str]:
    return ["unsup", "train", *TRAIN[:1], *data(source, cifar), *TRAIN[1:], "--seed", str(seed),
            "--out", str(RUNS / f"{source}-s{seed}")]


def probe_command(source: str, seed: int, target: str, probe: str, cifar: Path) -> list[str]:
    run = RUNS / f"{source}-s{seed}"
    return ["unsup", "probe", str(run), *data(target, cifar), *PROBES[probe], "--no-baselines",
            "--no-tsne", "--seed", str(seed), "--out", str(run / f"probe-{target}-{probe}"), "--json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="only read the probes' JSON")
    ap.add_argument("--cifar", type=Path, default=SHARED_CIFAR, help="cifar10-jpeg.tar.gz")
    args = ap.parse_args()
    cifar = args.cifar.resolve()
    doc = provenance("benchmarks/transfer.py", sys.argv[1:])
    doc["threads"] = {"train": 1, "probe": 1}
    sources = ("fashion", "cifar-grey")
    if not args.collect:
        if not cifar.exists():
            sys.exit(f"no {cifar}: give the CIFAR-10 JPEG archive with --cifar PATH")
        from unsup.data.args import DataArgs

        # decode the 60,000 JPEGs once, before two jobs would each do it
        DataArgs(name=f"image-folder:{cifar}", options={"size": "28", "channels": "1"}).load("train")
        jobs = [Job(f"{src}-s{s}", train_command(src, s, cifar),
                    record=ROOT / RUNS / f"{src}-s{s}" / "job.json") for s in SEEDS for src in sources]
        jobs += [Job(f"{src}-s{s}-{tgt}-{p}", probe_command(src, s, tgt, p, cifar), after=(f"{src}-s{s}",),
                     stdout=ROOT / RUNS / f"{src}-s{s}" / f"probe-{tgt}-{p}.json")
                 for s in SEEDS for src in sources for tgt in sources for p in PROBES]
        train_here(ROOT / RUNS, doc["git_commit"], jobs)
    doc["trained_git_commit"] = trained_at(ROOT / RUNS)
    cells = {}
    for src in sources:
        for tgt in sources:
            seeds = {}
            for s in SEEDS:
                run = RUNS / f"{src}-s{s}"
                linear = json.loads((ROOT / run / f"probe-{tgt}-linear10.json").read_text())
                tuned = json.loads((ROOT / run / f"probe-{tgt}-finetune1.json").read_text())
                train = json.loads((ROOT / run / "train.json").read_text())
                seeds[str(s)] = {
                    "commands": [" ".join(["OMP_NUM_THREADS=1 taskset -c CORE", *c]) for c in
                                 (train_command(src, s, cifar), probe_command(src, s, tgt, "linear10", cifar),
                                  probe_command(src, s, tgt, "finetune1", cifar))],
                    "steps": train["steps"], "step_kept": linear["step"],
                    "linear_10pct": linear["features"]["run"]["linear"]["accuracy"],
                    "linear_1pct": tuned["features"]["run"]["linear"]["accuracy"],
                    "finetuned_1pct": tuned["finetune"]["run"]["accuracy"],
                    "scratch_1pct": tuned["finetune"]["scratch"]["accuracy"],
                    "labelled_1pct": tuned["labelled"], "labelled_10pct": linear["labelled"]}
            cells[f"{src}->{tgt}"] = {"source": src, "target": tgt, "seeds": seeds, **{
                k: interval([v[k] for v in seeds.values()])
                for k in ("linear_10pct", "linear_1pct", "finetuned_1pct", "scratch_1pct")},
                "finetune_gain_1pct": interval([v["finetuned_1pct"] - v["scratch_1pct"]
                                                for v in seeds.values()])}
    doc["cells"] = cells
    write_result(RESULT, doc, table)


def table(doc: dict) -> str:
    lines = ["| pretrained on | judged on | linear probe, 10 % labels | fine-tuned, 1 % labels | "
             "same network from scratch, 1 % | fine-tuned minus scratch |", "|---|---|---|---|---|---|"]
    for c in doc["cells"].values():
        lines.append(f"| {c['source']} | {c['target']} | {percent(c['linear_10pct'])} | "
                     f"{percent(c['finetuned_1pct'])} | {percent(c['scratch_1pct'])} | "
                     f"{percent(c['finetune_gain_1pct'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
