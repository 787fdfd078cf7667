"""Sparse coding (or PSD) of natural image patches: train for a time budget, draw the atoms.

    OMP_NUM_THREADS=1 python benchmarks/sparse_coding.py --time 180 --lam 0.5 --whiten zca \
        --out docs/figures/sparse-coding-atoms.png

Trains ``sparse-coding`` (``--model psd`` for predictive sparse decomposition) on
``natural-patches`` with Adam, seeded, then prints the mean objective ``1/2 ||x - D z||^2 + lam
||z||_1`` of the test patches (codes inferred with the model's inference), their reconstruction
MSE per value and the mean sparsity (fraction of non-zero code entries), and writes the atoms
picture (each atom stretched to its own range) and the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from pinned import provenance  # benchmarks/ is on sys.path

import unsup.data as udata
from unsup.models import create
from unsup.models.representation.sparse_coding import energy
from unsup.plots import save_atoms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sparse-coding", choices=["sparse-coding", "psd"])
    p.add_argument("--time", type=float, default=180.0, help="training budget in seconds")
    p.add_argument("--size", type=int, default=8, help="patch size")
    p.add_argument("--whiten", default="zca", choices=["none", "zca"])
    p.add_argument("--atoms", type=int, default=128)
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/figures/sparse-coding-atoms.png")
    p.add_argument("--json", default="benchmarks/results/sparse-coding-patches.json")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    opts = {"size": args.size, "whiten": args.whiten}
    train = udata.load("natural-patches", "train", seed=args.seed, **opts)
    test = udata.load("natural-patches", "test", seed=args.seed, **opts)
    model = create(args.model, train, atoms=args.atoms, lam=args.lam)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.time:
        batch = train.batch(torch.randint(len(train), (args.batch_size,), generator=g))
        out = model.loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step}: " + ", ".join(f"{k} {float(v):.4g}" for k, v in out.items()), flush=True)
    model.loss(train.batch(torch.arange(2)))  # renormalises the columns after the last step
    with torch.no_grad():
        x = test.x - test.x.mean(1, keepdim=True)
        D = model.dictionary
        if args.model == "psd":
            z = model.infer(x, model.predict(x))  # the codes PSD's dictionary was trained with
        else:
            z = model.infer(x)
        result = {
            "model": args.model, "data": {"name": "natural-patches", **opts}, "atoms": args.atoms,
            "lam": args.lam, "steps": step, "seconds": round(time.perf_counter() - t0, 1),
            "test_objective": float(energy(x, D, z, args.lam).mean()),
            "test_mse": float((x - z @ D.T).pow(2).mean()),
            "test_sparsity": float((z != 0).float().mean()),
            "test_variance": float(x.pow(2).mean()),
        }
    save_atoms(D, args.out, args.size)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    result = {**provenance("benchmarks/sparse_coding.py", sys.argv[1:]), **result}
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k}: {v}")
    print(f"wrote {args.out} and {args.json}")


if __name__ == "__main__":
    main()
