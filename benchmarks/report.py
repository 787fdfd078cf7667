"""Render the measured tables of docs/results.md from benchmarks/results/*.json.

    python benchmarks/report.py            # prints the tables (markdown)

The figures are never typed by hand: each row comes from a JSON file that a benchmark script
wrote, and names the command that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


ISSUE_3 = ("arch-", "pixelcnn++-", "wavenet-speech", "-bible", "pixelcnn-colored-",
           "pixelcnn-cifar10-jpeg-")
ISSUE_4 = ("realnvp-", "glow-", "nice-", "maf-", "iaf-", "cdf-flow-", "ar-flow-", "flow++-")
ISSUE_5 = ("vae-", "iwae-", "vqvae-", "pixelvae-", "hvae-", "gumbel-vae-")
GROUPS = {
    "Likelihood recipes (issue #2)":
        lambda name: not any(k in name for k in ISSUE_3 + ISSUE_4) and not name.startswith(ISSUE_5),
    "Architecture comparison (issue #3)": lambda name: name.startswith("arch-"),
    "PixelCNN++, colour, speech and text (issue #3)":
        lambda name: any(k in name for k in ISSUE_3) and not name.startswith("arch-"),
    "Flows (issue #4)": lambda name: name.startswith(ISSUE_4),
    "Latent-variable models (issue #5)": lambda name: name.startswith(ISSUE_5),
}


FIGURE_KINDS = ("samples", "density", "latents")  # what recipes.py copies per run


def recipes_table(include=GROUPS["Likelihood recipes (issue #2)"]) -> str:
    rows = ["| recipe | model | data | test bits/dim | test nats/dim | NLL nats/example | "
            "test examples | steps | train s | threads | figures |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        name = path.stem
        if "bpd" not in r or not include(name):
            continue
        figs = sorted(f for f in Path("docs/figures").glob(f"{name}-*")
                      if f.suffix in (".png", ".wav", ".txt")
                      and f.stem.removeprefix(name + "-") in FIGURE_KINDS)
        fig_links = " ".join(
            f"[{f.stem.removeprefix(name + '-')}{'' if f.suffix == '.png' else ' ' + f.suffix[1:]}]"
            f"(figures/{f.name})" for f in figs)
        data = r["data"] + ("" if r["representation"] == "native" else f" ({r['representation']})")
        rows.append(
            f"| {name} | {r['model']} | {data} | {r['bpd']:.4f} | {r['nats_per_dim']:.4f} | "
            f"{r['nll_nats']:.3f} | {r['n']} | {r['train']['steps']} | "
            f"{r['train']['train_seconds']:.0f} | {r.get('threads', 2)} | {fig_links} |")
    cmds = ["", "Commands (each row; `python benchmarks/recipes.py NAME` runs it and refreshes the row):",
            ""]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if "bpd" in r and "command" in r and include(path.stem):
            cmds.append(f"- `{path.stem}`: `{r['command']}`")
    return "\n".join(rows + cmds)


def _se(r: dict, key: str) -> str:
    e = r.get("importance", {}).get(key)
    if e is None:
        return "-"
    if e.get("importance_samples") == 1:  # one sample per example: its error is not estimable
        return f"{e['nll_nats']:.2f}"
    return f"{e['nll_nats']:.2f} ± {e['nll_se']:.3f}"


def importance_table() -> str:
    """The VAE family's test NLL estimates: `unsup eval --importance-samples K --examples N` (labels
    KK-NN in the result's "importance"), and what the latents carry on the first N examples."""
    keys = ["K1-N2000", "K10-N2000", "K100-N2000", "K5000-N2000", "K5000-N100"]
    rows = ["| recipe | model | steps | KL nats | recon nats | active units | " + " | ".join(
                f"NLL K={k.split('-')[0][1:]}, first {k.split('-N')[1]}" for k in keys) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(keys)]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if "importance" not in r:
            continue
        reports = [e for e in r["importance"].values() if "latent" in e]
        lat = max(reports, key=lambda e: e["latent"]["examples"])["latent"] if reports else {}
        kl = f"{lat['kl']:.2f}" if lat else "-"
        recon = f"{lat['recon']:.2f}" if lat else "-"
        units = f"{lat['active_units']}/{lat['latent_dims']}" if lat else "-"
        rows.append(f"| {path.stem} | {r['model']} | {r['train']['steps']} | {kl} | {recon} | {units} | "
                    + " | ".join(_se(r, k) for k in keys) + " |")
    return "\n".join(rows + ["", "KL (nats), reconstruction term -E_q log p(x|z) (nats) and active "
                                  "units: on the first 2,000 test examples."])


def vq_table() -> str:
    rows = ["| recipe | data | steps | test recon nats/dim | test MSE ([0,1] pixels) | perplexity | "
            "codes used | prior bits/code | image bits/dim bound |", "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("vqvae-*.json")):
        r = json.loads(path.read_text())
        if r["model"] != "vqvae":
            continue
        prior = RESULTS / path.name.replace("vqvae-", "vqvae-prior-")
        p = json.loads(prior.read_text()) if prior.exists() else {}
        rows.append(f"| {path.stem} | {r['data']} | {r['train']['steps']} | {r['recon']:.4f} | "
                    f"{r['mse']:.5f} | {r['perplexity']:.1f} | {r['usage']:.3f} | "
                    f"{p.get('bpd', float('nan')):.4f} | {p.get('image_bpd_bound', float('nan')):.4f} |")
    return "\n".join(rows)


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
    for title, include in GROUPS.items():
        print(f"## {title}\n")
        print(recipes_table(include) + "\n")
    print("## Importance-sampled NLL of the VAE family (issue #5)\n")
    print(importance_table() + "\n")
    print("## VQ-VAE (issue #5)\n")
    print(vq_table() + "\n")
    print("\n## Framework overhead\n")
    print(throughput_table())
