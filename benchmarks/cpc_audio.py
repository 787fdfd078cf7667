"""CPC on speech: the contrastive task's accuracy per prediction step, for runs trained with
negatives from all clips, the same speaker or the same clip, each judged with every kind of
negatives on the test split; and speaker identification from the clip's averaged context
``c_t`` (what ``encode`` gives, the recipes' probes) and from its averaged latents ``z_t``.

    python benchmarks/recipes.py cpc-audio-all cpc-audio-speaker cpc-audio-clip
    OMP_NUM_THREADS=1 python benchmarks/cpc_audio.py runs/bench/cpc-audio-all \\
        runs/bench/cpc-audio-speaker runs/bench/cpc-audio-clip

For each run and each pool of negatives: ``acc_k`` for k = 1..K on every test clip (batches of
the run's size, drawn in a fixed order that mixes the speakers; validation's fixed negatives), so
the diagonal is the run's own ``test.json`` (up to the batches' order) and the rest shows how well
a model copes with negatives it never trained against. Writes
benchmarks/results/cpc-audio-steps.json and docs/figures/cpc-audio-steps.png (accuracy against
k, each run under its own negatives, the run with mixed negatives also under same-speaker and
same-clip ones). The speaker probes are :mod:`unsup.probe`'s linear and kNN probes on 10 % and
100 % of the training labels (seed 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import unsup.data as udata
from unsup import probe
from unsup.models.representation.cpc_audio import NEGATIVES
from unsup.plots import save_chart
from unsup.train.runs import load_run

ROOT = Path(__file__).resolve().parent.parent


@torch.no_grad()
def step_accuracy(model, ds: udata.TensorDataset, negatives: str, batch_size: int) -> list[float]:
    """``acc_k`` for k = 1..K over all of ``ds``, the pool of negatives set to ``negatives``."""
    model.config.negatives = negatives
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))  # speakers mixed
    K = model.config.steps_ahead
    hits, n = torch.zeros(K), 0
    for index in order.split(batch_size):
        if len(index) < 2:
            continue
        out = model.loss(ds.batch(index))
        hits += torch.stack([out[f"acc_{k}"] for k in range(1, K + 1)]).cpu() * len(index)
        n += len(index)
    return (hits / n).tolist()


def speaker_probes(model, splits: dict[str, udata.TensorDataset]) -> dict[str, dict]:
    """``{features: {labels: probe_features(...)}}`` for ``features`` = context and latent."""
    y = {k: ds.y.numpy() for k, ds in splits.items()}
    out: dict[str, dict] = {}
    for features in ("context", "latent"):
        model.config.features = features
        f = {k: probe.encoder_features(model, ds.x, 256) for k, ds in splits.items()}
        out[features] = {}
        for labels, fraction in (("10%", 0.1), ("100%", 1.0)):
            labelled = probe.stratified_subset(y["train"], fraction, 0)
            out[features][labels] = probe.probe_features(f, y, labelled, 0, ("linear", "knn"))
            r = out[features][labels]
            print(f"  speaker ID from mean {features}, {labels} labels: linear "
                  f"{100 * r['linear']['accuracy']:.1f}%, kNN {100 * r['knn']['accuracy']:.1f}%", flush=True)
    model.config.features = "context"
    return out


def chart(results: dict[str, dict], negatives: int) -> dict:
    """Accuracy against k: each run under its own negatives; the run with mixed negatives also
    under same-speaker and same-clip negatives (what it loses when the voice gives nothing away)."""
    series = {}
    for name, r in results.items():
        trained = r["trained_with"]
        judges = NEGATIVES if trained == "all" else (trained,)
        for judge in judges:
            acc = r["acc_k"][judge]
            series[f"{name}, judged with {judge} negatives"] = (list(range(1, len(acc) + 1)), acc)
    return {"title": f"CPC on speech: how often the true future wins among {negatives + 1} (test clips)",
            "xlabel": "prediction step k (10 ms frames)", "ylabel": "accuracy", "series": series}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="cpc-audio run directories")
    p.add_argument("--batch-size", type=int, default=16, help="clips per batch: the recipes' (16)")
    p.add_argument("--out", default=str(ROOT / "docs" / "figures" / "cpc-audio-steps.png"))
    args = p.parse_args()
    results = {}
    for run in args.runs:
        model, meta = load_run(run, "best")
        trained = model.config.negatives
        data = meta["data"]
        splits = {split: udata.load(data["name"], split, data["representation"], seed=data["seed"],
                                    val_fraction=data["val_fraction"], **data["options"])
                  for split in ("train", "val", "test")}
        test = splits["test"]
        batch = args.batch_size
        torch.manual_seed(0)
        accs = {mode: step_accuracy(model, test, mode, batch) for mode in NEGATIVES}
        model.config.negatives = trained
        results[Path(run).name] = {"trained_with": trained, "batch_size": batch, "test_clips": len(test),
                                   "num_negatives": model.config.num_negatives, "acc_k": accs,
                                   "mean": {m: sum(a) / len(a) for m, a in accs.items()}}
        results[Path(run).name]["speaker_id"] = speaker_probes(model, splits)
        print(f"{Path(run).name} (trained with {trained} negatives): mean accuracy " + ", ".join(
            f"{m} {100 * v:.1f}%" for m, v in results[Path(run).name]["mean"].items()), flush=True)
    save_chart(chart(results, model.config.num_negatives), args.out)
    out = ROOT / "benchmarks" / "results" / "cpc-audio-steps.json"
    out.write_text(json.dumps({"command": "python benchmarks/cpc_audio.py " + " ".join(args.runs),
                               "runs": results}, indent=2) + "\n")
    print(f"wrote {out} and {args.out}")


if __name__ == "__main__":
    main()
