"""Render the measured tables of docs/results.md from benchmarks/results/*.json.

    python benchmarks/report.py            # prints the tables (markdown)

The figures are never typed by hand: each row comes from a JSON file that a benchmark script
wrote, and names the command that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def recipes_table() -> str:
    rows = ["| recipe | model | data | test bits/dim | test nats/dim | NLL nats/example | "
            "test examples | steps | train s | figures |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if "bpd" not in r:
            continue
        name = path.stem
        figs = sorted(Path("docs/figures").glob(f"{name}-*.png"))
        fig_links = " ".join(f"[{f.stem.removeprefix(name + '-')}](figures/{f.name})" for f in figs)
        data = r["data"] + ("" if r["representation"] == "native" else f" ({r['representation']})")
        rows.append(
            f"| {name} | {r['model']} | {data} | {r['bpd']:.4f} | {r['nats_per_dim']:.4f} | "
            f"{r['nll_nats']:.3f} | {r['n']} | {r['train']['steps']} | "
            f"{r['train']['train_seconds']:.0f} | {fig_links} |")
    cmds = ["", "Commands (each row; `python benchmarks/recipes.py NAME` runs it and refreshes the row):",
            ""]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if "bpd" in r and "command" in r:
            cmds.append(f"- `{path.stem}`: `{r['command']}`")
    return "\n".join(rows + cmds)


def throughput_table() -> str:
    path = RESULTS / "throughput.json"
    if not path.exists():
        return "(not measured yet: python benchmarks/throughput.py --json benchmarks/results/throughput.json)"
    r = json.loads(path.read_text())
    rows = ["| loop | images/s, whole run | images/s after warm-up |", "|---|---|---|"]
    steady = "unsup_train_steady_img_per_s" in r
    rows.append(f"| `unsup train` | {r['unsup_train_img_per_s']:.1f} | "
                + (f"{r['unsup_train_steady_img_per_s']:.1f} |" if steady else "- |"))
    rows.append(f"| plain PyTorch loop | {r['plain_loop_img_per_s']:.1f} | "
                + (f"{r['plain_loop_steady_img_per_s']:.1f} |" if steady else "- |"))
    rows.append(f"| overhead | {r['overhead_percent']:.1f} % | "
                + (f"{r['steady_overhead_percent']:.1f} % |" if steady else "- |"))
    rows += ["", f"Medians of {r['rounds']} alternating rounds of {r['steps']} steps, batch "
             f"{r['batch_size']}, {r['threads']} threads"
             + (f"; warm-up = the first {r['warmup_steps']} steps." if steady else ".")]
    return "\n".join(rows)


if __name__ == "__main__":
    print("## Likelihood recipes\n")
    print(recipes_table())
    print("\n## Framework overhead\n")
    print(throughput_table())
