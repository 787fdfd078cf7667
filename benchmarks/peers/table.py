"""Print a markdown table of every ``benchmarks/results/peers-*.json`` that ``run.py`` wrote: per
pair, each side's library and torch, training examples per CPU-second and their ratio
(unsup / peer), examples per second of the training loop's own time, the test metric of each side
(NLL in nats per image and bits/dim, or linear-probe accuracy), the CPU seconds to sample where the
pair times sampling, and the load average the run started at.

    python benchmarks/peers/table.py [FILES...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
HEADER = ("| pair | mode | peer | torch (unsup / peer) | unsup ex/CPU-s | peer ex/CPU-s | ratio | "
          "ex/loop-s (unsup / peer) | unsup metric | peer metric | sampling CPU-s (unsup / peer) | load |\n"
          "|---|---|---|---|---:|---:|---:|---|---|---|---|---|")


def _num(v, fmt: str = "{:,.0f}") -> str:
    return "–" if v is None else fmt.format(v)


def _metric(side: dict, metric: str) -> str:
    test = side.get("test") or {}
    if side.get("skipped"):
        return "skipped"
    if metric == "accuracy":
        return _num(test.get("accuracy"), "{:.3f}")
    if test.get("nll_nats") is None:
        return "–"
    se = f" ± {test['se']:.2f}" if test.get("se") is not None else ""
    return f"{test['nll_nats']:.2f}{se} nats ({test.get('bpd', float('nan')):.4f} bpd, n={test.get('n')})"


def _sampling(side: dict) -> str | None:
    if "sampling" in side:
        return f"{side['sampling']['cpu_seconds']:.1f}"
    phase = side.get("phases", {}).get("sample")
    return f"{phase['cpu_seconds']:.1f}" if phase else None


def row_for(name: str, r: dict) -> str:
    u, p = r["sides"]["unsup"], r["sides"]["peer"]
    eu, ep = u.get("examples_per_cpu_second"), p.get("examples_per_cpu_second")
    ratio = f"{eu / ep:.2f}" if eu and ep else "–"
    peer = "skipped: " + p["skipped"] if p.get("skipped") else p.get("library", "?")
    torch = f"{r['versions']['unsup'].get('torch')} / {r['versions']['peer'].get('torch')}"
    s_u, s_p = _sampling(u), _sampling(p)
    sampling = f"{s_u or '–'} / {s_p or '–'}" if s_u or s_p else "–"
    load = ", ".join(f"{v:.2f}" for v in r.get("load", []))
    loop = f"{_num(u.get('examples_per_loop_second'))} / {_num(p.get('examples_per_loop_second'))}"
    mode = r["mode"] + (f", seed {r['seed']}" if r["mode"] == "budget" else "")
    return (f"| {r['pair']} | {mode} | {peer} | {torch} | {_num(eu)} | {_num(ep)} | {ratio} | {loop} | "
            f"{_metric(u, r['metric'])} | {_metric(p, r['metric'])} | {sampling} | {load} |")


def main() -> None:
    files = [Path(a) for a in sys.argv[1:]] or sorted(RESULTS.glob("peers-*.json"))
    if not files:
        sys.exit(f"no peers-*.json in {RESULTS}: run benchmarks/peers/run.py PAIR first")
    print(HEADER)
    for f in files:
        print(row_for(f.name, json.loads(f.read_text())))


if __name__ == "__main__":
    main()
