"""Semantic hashing on Fashion-MNIST: precision@k of the hashing autoencoder's codes against PCA and
random-projection (LSH) codes of the same length.

    OMP_NUM_THREADS=1 unsup train hashing-autoencoder --data fashion-mnist --represent native \
        --bits 16 --time 3m --out /tmp/hash16 --no-progress
    OMP_NUM_THREADS=1 unsup train hashing-autoencoder --data fashion-mnist --represent native \
        --bits 32 --time 3m --out /tmp/hash32 --no-progress
    OMP_NUM_THREADS=1 python benchmarks/hashing.py /tmp/hash16 /tmp/hash32 --k 100

Each test image is a query against the run's training split (the database); a retrieved image is
relevant when it has the query's class. Ties at the k-th Hamming distance are counted in
expectation (:func:`unsup.hashing.precision_at_k`). The baselines are fitted on the same training
split, on pixel intensities in [0, 1]. Chance is 0.1 (ten balanced classes). Writes
benchmarks/results/hashing.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import unsup.data as udata
from unsup.hashing import pca_codes, precision_at_k, random_projection_codes
from unsup.train.runs import load_run


def pixels(ds: udata.TensorDataset) -> torch.Tensor:
    """Examples as flat floats in [0, 1], ``(N, dims)``."""
    x = ds.x.float().flatten(1)
    return x / (ds.spec.levels - 1) if ds.spec.levels is not None else x


@torch.no_grad()
def model_codes(model, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    return torch.cat([model.codes(x[i:i + batch]).cpu() for i in range(0, len(x), batch)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories of hashing-autoencoder")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="seed of the random projections")
    p.add_argument("--json", default="benchmarks/results/hashing.json")
    args = p.parse_args()

    rows = []
    for run in args.runs:
        model, meta = load_run(run, "best")
        if meta["model"] != "hashing-autoencoder":
            raise SystemExit(f"{run} holds a {meta['model']}, not a hashing-autoencoder")
        d = meta["data"]
        kw = {"representation": d["representation"], "root": d.get("root"),
              "val_fraction": d["val_fraction"], "seed": d["seed"], **(d.get("options") or {})}
        train, test = udata.load(d["name"], "train", **kw), udata.load(d["name"], "test", **kw)
        assert train.labels is not None and test.labels is not None
        bits = model.config.bits
        xtr, xte = pixels(train), pixels(test)
        codes = {
            "autoencoder": (model_codes(model, train.x), model_codes(model, test.x)),
            "pca": (pca_codes(xtr, xtr, bits), pca_codes(xtr, xte, bits)),
            "random-projection": (random_projection_codes(xtr, xtr, bits, args.seed),
                                  random_projection_codes(xtr, xte, bits, args.seed)),
        }
        for method, (db, q) in codes.items():
            prec = precision_at_k(q, test.labels, db, train.labels, args.k)
            rows.append({"run": str(run), "data": d["name"], "bits": bits, "method": method,
                         "k": args.k, "precision": round(prec, 4), "steps": meta.get("step"),
                         "distinct_train_codes": len(torch.unique(db, dim=0)),
                         "queries": len(q), "database": len(db)})
            print(f"{bits:>4} bits  {method:<18} precision@{args.k} {prec:.4f}  "
                  f"({rows[-1]['distinct_train_codes']} distinct codes)", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": "python benchmarks/hashing.py " + " ".join(args.runs)
                                           + f" --k {args.k}", "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
