"""Semantic hashing on Fashion-MNIST: precision@k of the hashing autoencoder's codes against PCA,
random-projection (LSH) and k-means (product-quantisation) codes of the same length, 3 seeds.

    python benchmarks/hashing.py             # train 2 lengths x 3 seeds, evaluate, write the JSON
    python benchmarks/hashing.py --evaluate  # only evaluate the runs already in runs/hashing/

Each run is one ``unsup train hashing-autoencoder`` command (16 or 32 bits, 3 minutes of wall-clock
training on one pinned core with one thread, seeds 0, 1 and 2), two at a time on the two cores.
Each test image is a query against the run's training split (the database); a retrieved image is
relevant when it has the query's class; chance is 0.1 (ten balanced classes). Ties at the k-th
distance are counted in expectation (:func:`unsup.hashing.precision_at_k`). The baselines are fitted
on the same training split, on pixel intensities in [0, 1], with the run's seed:

- ``pca``: the signs of the top ``bits`` principal components (deterministic);
- ``random-projection``: the signs of ``bits`` Gaussian projections (LSH), drawn from the seed;
- ``k-means``: ``bits / 8`` horizontal bands of the image, each coded by the index of its nearest
  of 256 k-means centroids (:class:`unsup.hashing.ProductQuantizer`), ranked by the distance
  between the codes' centroids rather than a Hamming distance.

Every figure is the mean over the 3 seeds with its 95 % t-interval. Writes
``benchmarks/results/hashing.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pinned import Job, interval, provenance, run_jobs  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/hashing")
RESULT = ROOT / "benchmarks" / "results" / "hashing.json"
SEEDS = (0, 1, 2)
BITS = (16, 32)
K = 100
METHODS = ("autoencoder", "pca", "random-projection", "k-means")


def command(bits: int, seed: int) -> list[str]:
    return ["unsup", "train", "hashing-autoencoder", "--data", "fashion-mnist", "--represent", "native",
            "--bits", str(bits), "--time", "3m", "--no-progress", "--seed", str(seed),
            "--out", str(RUNS / f"b{bits}-s{seed}")]


def evaluate(run: Path, seed: int) -> list[dict]:
    """precision@K of every method's codes for the run's data split and length."""
    import torch

    import unsup.data as udata
    from unsup.hashing import (
        ProductQuantizer,
        pca_codes,
        precision_at_k,
        precision_at_k_by_distance,
        random_projection_codes,
    )
    from unsup.train.runs import load_run

    torch.manual_seed(seed)
    model, meta = load_run(ROOT / run, "best")
    d = meta["data"]
    kw = {"representation": d["representation"], "root": d.get("root"), "val_fraction": d["val_fraction"],
          "seed": d["seed"], **(d.get("options") or {})}
    train, test = udata.load(d["name"], "train", **kw), udata.load(d["name"], "test", **kw)
    bits = model.config.bits

    def pixels(ds):
        return ds.x.float().flatten(1) / (ds.spec.levels - 1)

    xtr, xte = pixels(train), pixels(test)
    rows = []
    for method in METHODS:
        start = time.process_time()
        with torch.no_grad():
            if method == "k-means":
                pq = ProductQuantizer(xtr, bits, seed=seed)
                db, q = pq.codes(xtr), pq.codes(xte)
                prec = torch.cat([precision_at_k_by_distance(pq.distances(q[s:s + 512], db),
                                                             test.labels[s:s + 512], train.labels, K)
                                  for s in range(0, len(q), 512)]).mean().item()
            else:
                if method == "autoencoder":
                    db, q = (torch.cat([model.codes(x[i:i + 1024]) for i in range(0, len(x), 1024)])
                             for x in (train.x, test.x))
                elif method == "pca":
                    db, q = pca_codes(xtr, xtr, bits), pca_codes(xtr, xte, bits)
                else:
                    db, q = (random_projection_codes(xtr, x, bits, seed) for x in (xtr, xte))
                prec = precision_at_k(q, test.labels, db, train.labels, K)
        rows.append({"run": str(run), "bits": bits, "seed": seed, "method": method, "precision": prec,
                     "distinct_train_codes": len(torch.unique(db, dim=0)), "steps": meta.get("step"),
                     "queries": len(q), "database": len(db),
                     "cpu_seconds": round(time.process_time() - start, 1)})
        print(f"{run}: {method:<18} precision@{K} {prec:.4f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluate", action="store_true", help="only evaluate the runs already trained")
    args = ap.parse_args()
    doc = provenance("benchmarks/hashing.py", sys.argv[1:])
    doc.update(threads={"train": 1, "evaluate": doc["threads"]}, k=K, seeds=list(SEEDS),
               train_commands={f"b{b}-s{s}": " ".join(["OMP_NUM_THREADS=1 taskset -c CORE", *command(b, s)])
                               for b in BITS for s in SEEDS})
    if not args.evaluate:
        jobs = [Job(f"train b{b}-s{s}", command(b, s), record=None) for s in SEEDS for b in BITS]
        run_jobs(jobs)
        if any(j.error for j in jobs):
            sys.exit("training failed: " + "; ".join(f"{j.name}: {j.error}" for j in jobs if j.error))
    rows = [r for b in BITS for s in SEEDS for r in evaluate(RUNS / f"b{b}-s{s}", s)]
    summary = {f"{b} {m}": interval([r["precision"] for r in rows if (r["bits"], r["method"]) == (b, m)])
               for b in BITS for m in METHODS}
    doc.update(summary=summary, rows=rows)
    RESULT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {RESULT}")
    print(table(doc))


def table(doc: dict) -> str:
    lines = ["| bits | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for b in BITS:
        cells = []
        for m in METHODS:
            s = doc["summary"][f"{b} {m}"]
            cells.append(f"{s['mean']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
