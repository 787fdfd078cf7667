"""Sampling speed against likelihood: flows (one pass) vs autoregressive models (one pass per pixel).

For each trained run directory, loads the best checkpoint, draws ``--n`` samples with the
model's default sampler (the cached one where the model has it) after one warm-up draw of two
samples, ``--repeats`` times, and reports the median CPU seconds of a draw (this process's CPU
time, so run it pinned to an otherwise idle core with one thread) and images per CPU second beside
the run's test bits/dim (from its test.json): the trade-off of the flows lecture, measured on the
same data.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/sampling_speed.py runs/bench/realnvp-fashion \\
        runs/bench/glow-fashion runs/bench/pixelcnn++-fashion --n 16 \\
        --json benchmarks/results/sampling_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from pinned import provenance  # benchmarks/ is on sys.path

from unsup.train import load_run


def measure(run: Path, n: int, seed: int, repeats: int) -> dict:
    model, meta = load_run(run, "best", device="cpu")
    model.eval()
    torch.manual_seed(seed)
    model.sample(2)  # warm-up: first-call allocations
    times = []
    for _ in range(repeats):
        torch.manual_seed(seed)
        t0 = time.process_time()
        x = model.sample(n)
        times.append(time.process_time() - t0)
    seconds = statistics.median(times)
    test = json.loads((run / "test.json").read_text()) if (run / "test.json").exists() else {}
    return {"run": str(run), "model": meta["model"], "data": meta["data"]["name"],
            "representation": meta["data"]["representation"], "shape": list(x.shape[1:]),
            "n": n, "cpu_seconds": round(seconds, 3), "cpu_seconds_repeats": [round(t, 3) for t in times],
            "images_per_cpu_second": round(n / seconds, 3),
            "test_bpd": test.get("bpd"), "exact_likelihood": test.get("exact"),
            "parameters": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="trained run directories")
    p.add_argument("--n", type=int, default=16, help="samples per run")
    p.add_argument("--repeats", type=int, default=3, help="draws per run; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = p.parse_args()
    rows = []
    for run in args.runs:
        r = measure(run, args.n, args.seed, args.repeats)
        rows.append(r)
        bpd = "-" if r["test_bpd"] is None else f"{r['test_bpd']:.4f}"
        print(f"{r['model']:>14} {r['data']}: {r['images_per_cpu_second']:10.3f} images/CPU-s "
              f"({r['n']} in {r['cpu_seconds']:.2f} CPU-s, median of {args.repeats}), "
              f"test {bpd} bits/dim", flush=True)
    if args.json:
        doc = {**provenance("benchmarks/sampling_speed.py", sys.argv[1:]), "rows": rows}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
