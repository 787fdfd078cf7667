"""A one-layer affine autoregressive flow is a Gaussian autoregressive model, measured on a trained
MAF (issue #23: the equivalence shown as a table, not only as a test).

    python benchmarks/ar_flow_equivalence.py             # train 2 MAFs (1 minute each), measure
    python benchmarks/ar_flow_equivalence.py --collect   # only measure the trained runs

Data: ``natural-patches`` (8x8 grey patches of scikit-image photos, mean-removed, continuous, so
the flow's density is exact). ``unsup train maf --num-layers 1`` and the default MAF (5 layers)
train for 1 minute each on one pinned core and thread, seeds 0, 1 and 2. Then, in float64 on one
core, for the one-layer run of seed 0 (``MAFLayer`` and ``GaussianMADE`` of ``unsup.models.flows.maf``):

- the flow's test log-likelihood, ``log N(z; 0, I) + log |det dz/dx|`` with ``z = (x - mu(x))
  exp(-alpha(x))``, one pass of the MADE;
- the Gaussian autoregressive model ``prod_d N(x_d; mu_d(x_<d), exp(alpha_d(x_<d))^2)`` with the
  same MADE, each conditional computed on its own from an input in which every dimension not
  before ``d`` is noise, so each is a genuine ``p(x_d | x_<d)`` (D passes);
- sampling: the flow's inverse of the noise ``z = f(x)`` of the test points against ancestral
  sampling of the autoregressive model with the same ``z``, dimension by dimension (both should
  give back ``x``);
- CPU seconds (``time.process_time``, median of 3) of density and sampling for the test split:
  one pass against ``D`` sequential passes, the flow's trade-off.

The 5-layer run's test log-likelihood says what stacking Gaussian autoregressive layers buys at the
same budget. Writes ``benchmarks/results/ar-flow-equivalence.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from pinned import Job, interval, provenance, train_here, trained_at, write_result  # benchmarks/: on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/ar-flow-equivalence")
RESULT = ROOT / "benchmarks" / "results" / "ar-flow-equivalence.json"
ROWS = {"maf-1-layer": ["--num-layers", "1"], "maf-default": []}
SEEDS = (0, 1, 2)


def command(row: str, seed: int) -> list[str]:
    return ["unsup", "train", "maf", "--data", "natural-patches", *ROWS[row], "--time", "1m",
            "--eval-every", "500", "--samples", "0", "--no-progress", "--seed", str(seed),
            "--out", str(RUNS / f"{row}-s{seed}")]


def cpu_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def measure(run: Path) -> dict:
    import torch

    from unsup.models.flows.maf import MAFLayer
    from unsup.train import load_run
    from unsup.train.runs import run_data

    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    model, meta = load_run(run)
    model = model.double().eval()
    maf = [m for m in model.flow.layers if isinstance(m, MAFLayer)]
    if len(maf) != 1:
        raise SystemExit(f"{run} has {len(maf)} MAF layers; the equivalence is for one")
    made = maf[0].made
    x = run_data(meta, "test").x.double()
    n, d = x.shape
    log_2pi = math.log(2 * math.pi)

    def log_normal(v, mean, log_std):
        return -0.5 * ((v - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * log_2pi

    def autoregressive_log_prob():
        g = torch.Generator().manual_seed(0)
        pos, total = made.order - 1, torch.zeros(n, dtype=torch.double)
        for k in range(d):
            seen = pos < pos[k]  # x_<k in the ordering; everything else is noise
            mu, alpha = made(torch.where(seen, x, torch.randn(x.shape, generator=g, dtype=x.dtype) * 10))
            total += log_normal(x[:, k], mu[:, k], alpha[:, k])
        return total

    if model.spec.levels is not None:
        raise SystemExit(f"{run}: continuous data expected, got levels={model.spec.levels}")

    def flow_log_prob():  # log_prob for continuous data (no preprocessing), kept in float64
        z, logdet = model.flow(x)
        return model.log_prior(z) + logdet

    with torch.no_grad():
        flow_ll = flow_log_prob()
        ar_ll = autoregressive_log_prob()
        # The noise that generates the test points: prior draws can leave the data's range, where
        # a trained MADE's exp(alpha) overflows, for both samplers alike.
        z, _ = model.flow(x)
        flow_x = model.flow.inverse(z)
        ancestral = torch.zeros_like(z)
        for k in torch.argsort(made.order).tolist():
            mu, alpha = made(ancestral)
            ancestral[:, k] = mu[:, k] + torch.exp(alpha[:, k]) * z[:, k]
        density_s = cpu_seconds(flow_log_prob)
        sampling_s = cpu_seconds(lambda: model.flow.inverse(z))
    return {"n": n, "dims": d, "flow_log_prob_nats": float(flow_ll.mean()),
            "autoregressive_log_prob_nats": float(ar_ll.mean()),
            "max_abs_log_prob_difference": float((flow_ll - ar_ll).abs().max()),
            "max_abs_sample_difference": float((flow_x - ancestral).abs().max()),
            "max_abs_regeneration_error": float((ancestral - x).abs().max()),
            "sample_scale": float(ancestral.abs().max()),
            "density_cpu_seconds": density_s, "sampling_cpu_seconds": sampling_s,
            "dtype": "float64", "threads": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="only measure the trained runs")
    args = ap.parse_args()
    doc = provenance("benchmarks/ar_flow_equivalence.py", sys.argv[1:])
    doc["threads"] = {"train": 1, "measure": 1}
    if not args.collect:
        train_here(ROOT / RUNS, doc["git_commit"],
                   [Job(f"{r}-s{s}", command(r, s), record=ROOT / RUNS / f"{r}-s{s}" / "job.json")
                    for s in SEEDS for r in ROWS])
    doc["trained_git_commit"] = trained_at(ROOT / RUNS)
    doc["runs"] = {}
    for r in ROWS:
        seeds = {}
        for s in SEEDS:
            run = ROOT / RUNS / f"{r}-s{s}"
            test, train = (json.loads((run / f).read_text()) for f in ("test.json", "train.json"))
            seeds[str(s)] = {"command": " ".join(["OMP_NUM_THREADS=1 taskset -c CORE", *command(r, s)]),
                             "steps": train["steps"],
                             **{k: test[k] for k in ("n", "nll_nats", "exact", "likelihood") if k in test}}
        doc["runs"][r] = {"seeds": seeds, "nll_nats": interval([v["nll_nats"] for v in seeds.values()]),
                          "steps": interval([float(v["steps"]) for v in seeds.values()])}
    doc["one_layer"] = measure(ROOT / RUNS / "maf-1-layer-s0")
    write_result(RESULT, doc, table)


def table(doc: dict) -> str:
    m, runs = doc["one_layer"], doc["runs"]
    return "\n".join([
        "| quantity (test split, float64) | one-layer MAF, as a flow | the Gaussian autoregressive model, "
        "same MADE | largest difference |",
        "|---|---|---|---|",
        f"| log p(x), mean nats per patch ({m['n']} patches of {m['dims']} dims) | "
        f"{m['flow_log_prob_nats']:.4f} (one pass) | {m['autoregressive_log_prob_nats']:.4f} "
        f"({m['dims']} conditionals, one at a time) | {m['max_abs_log_prob_difference']:.1e} nats |",
        f"| x from the noise z = f(x_test) (values up to {m['sample_scale']:.2f}) | the flow's inverse | "
        f"ancestral sampling (differs from x_test by {m['max_abs_regeneration_error']:.1e}) | "
        f"{m['max_abs_sample_difference']:.1e} |",
        f"| CPU seconds for the whole split, median of 3 | density {m['density_cpu_seconds']:.3f} | "
        f"sampling {m['sampling_cpu_seconds']:.3f} ({m['dims']} passes) | ratio "
        f"{m['sampling_cpu_seconds'] / m['density_cpu_seconds']:.0f}× |",
        "",
        "| run (1 minute, one core) | steps | test NLL, nats per patch (exact), mean [95 % interval] |",
        "|---|---|---|",
        *[f"| {r} | {e['steps']['mean']:.0f} | {e['nll_nats']['mean']:.3f} [{e['nll_nats']['ci95'][0]:.3f}, "
          f"{e['nll_nats']['ci95'][1]:.3f}] |" for r, e in runs.items()],
    ])


if __name__ == "__main__":
    main()
