"""Render the measured tables of docs/results.md from benchmarks/results/*.json.

    python benchmarks/report.py            # prints the tables (markdown)
    python benchmarks/report.py --check    # exit 1, listing them, if table lines are not in the document
    python benchmarks/report.py --update   # replace the document's stale rows by the report's

The figures are never typed by hand: each row comes from a JSON file that a benchmark script
wrote, and names the command that produced it. Where a table shows a test bits/dim or NLL, each
row says what kind of figure it is (exact, bound or estimate) and the code version (git commit)
it was measured at, both read from the JSON. ``--check`` keeps docs/results.md from drifting from
the JSONs: every table line printed here must be a line of the document
(tests/test_results_tables.py runs it).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "docs" / "figures"
DOCUMENT = ROOT / "docs" / "results.md"
NOT_RECORDED = "not recorded"  # a field the JSON lacks: shown as such, never filled in by guess


ISSUE_3 = ("arch-", "pixelcnn++-", "wavenet-speech", "-bible", "pixelcnn-colored-",
           "pixelcnn-cifar10-jpeg-")
ISSUE_4 = ("realnvp-", "glow-", "nice-", "maf-", "iaf-", "cdf-flow-", "ar-flow-", "flow++-")
ISSUE_5 = ("vae-", "iwae-", "vqvae-", "pixelvae-", "hvae-", "gumbel-vae-")
ISSUE_20 = ("ddpm-", "flow-matching-", "ncsn-", "diffusion-")
ISSUE_21 = ("ood-",)  # the outlier detectors' background models (section 13)
GROUPS = {
    "Likelihood recipes (issue #2)":
        lambda name: (not any(k in name for k in ISSUE_3 + ISSUE_4)
                      and not name.startswith(ISSUE_5 + ISSUE_20 + ISSUE_21)),
    "Architecture comparison (issue #3)": lambda name: name.startswith("arch-"),
    "PixelCNN++, colour, speech and text (issue #3)":
        lambda name: any(k in name for k in ISSUE_3) and not name.startswith("arch-"),
    "Flows (issue #4)": lambda name: name.startswith(ISSUE_4),
    "Latent-variable models (issue #5)": lambda name: name.startswith(ISSUE_5),
    "Diffusion (issue #20)": lambda name: name.startswith(ISSUE_20[:3]),
    "Outlier detection: the background models (issue #21)": lambda name: name.startswith(ISSUE_21),
}


FIGURE_KINDS = ("samples", "density", "latents")  # what recipes.py copies per run


def commit(r: dict) -> str:
    """The code version a result was measured at: the first 7 characters of the JSON's
    ``git_commit``, or "not recorded" for results written before the scripts recorded it (it is
    never guessed from the git history: a result file may outlive the commit it was made at)."""
    return r["git_commit"][:7] if r.get("git_commit") else NOT_RECORDED


@functools.cache
def _inexact_kind(model: str) -> str:
    """What an inexact test bits/dim of ``model`` is ("bound" or "estimate"): the model class's
    ``inexact_kind``, which unsup's evaluation writes as "likelihood" (``unsup/train/trainer.py``).
    Imports unsup, and so torch, only when a result predating that key needs it."""
    from unsup.models import MODELS, names

    names()  # imports every model module, so that each class has registered
    return MODELS.get(model).inexact_kind


def likelihood_kind(result: dict, model: str) -> str:
    """exact / bound / estimate: what the bits/dim of ``result`` (a test.json, or one entry of its
    "importance") is, for a run of ``model``.

    The JSON's "likelihood" when it has one; for older results, its "exact" flag (True for an exact
    likelihood, e.g. an autoregressive model's), an inexact one being the kind the model class
    declares: an upper bound for VAEs, DDPM and flows on discrete data (the dequantised bits/dim
    bounds the codelength), an estimate for flow matching. Never a label the JSON does not give:
    "not recorded" if it has neither key."""
    if result.get("likelihood"):
        return result["likelihood"]
    if "exact" not in result:
        return NOT_RECORDED
    return "exact" if result["exact"] else _inexact_kind(model)


def _figure_links(name: str) -> str:
    """Markdown links to the figures recipes.py copied for run ``name`` (docs/figures/NAME-KIND.*)."""
    figs = sorted(f for f in FIGURES.glob(f"{name}-*")
                  if f.suffix in (".png", ".wav", ".txt")
                  and f.stem.removeprefix(name + "-") in FIGURE_KINDS)
    return " ".join(
        f"[{f.stem.removeprefix(name + '-')}{'' if f.suffix == '.png' else ' ' + f.suffix[1:]}]"
        f"(figures/{f.name})" for f in figs)


def recipes_table(include=GROUPS["Likelihood recipes (issue #2)"]) -> str:
    """One row per recipe result (``benchmarks/recipes.py``) whose name ``include`` accepts, then
    the command of each. "kind" says what the test bits/dim is (:func:`likelihood_kind`);
    "threads" and "commit" are "not recorded" where the JSON predates them."""
    rows = ["| recipe | model | data | test bits/dim | kind | test nats/dim | NLL nats/example | "
            "test examples | steps | train s | threads | commit | figures |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cmds = ["", "Commands (each row; `python benchmarks/recipes.py NAME` runs it and refreshes the row):",
            ""]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        name = path.stem
        if "bpd" not in r or not include(name):
            continue
        data = r["data"] + ("" if r["representation"] == "native" else f" ({r['representation']})")
        rows.append(
            f"| {name} | {r['model']} | {data} | {r['bpd']:.4f} | {likelihood_kind(r, r['model'])} | "
            f"{r['nats_per_dim']:.4f} | {r['nll_nats']:.3f} | {r['n']} | {r['train']['steps']} | "
            f"{r['train']['train_seconds']:.0f} | {r.get('threads', NOT_RECORDED)} | {commit(r)} | "
            f"{_figure_links(name)} |")
        if "command" in r:
            cmds.append(f"- `{name}`: `{r['command']}`")
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
                f"bound K={k.split('-')[0][1:]}, first {k.split('-N')[1]}" for k in keys) + " | commit |",
            "|---|---|---|---|---|---|" + "---|" * len(keys) + "---|"]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if not isinstance(r, dict) or not set(keys) & set(r.get("importance", {})):  # e.g. DDPM's bound
            continue
        reports = [e for e in r["importance"].values() if "latent" in e]
        lat = max(reports, key=lambda e: e["latent"]["examples"])["latent"] if reports else {}
        kl = f"{lat['kl']:.2f}" if lat else "-"
        recon = f"{lat['recon']:.2f}" if lat else "-"
        units = f"{lat['active_units']}/{lat['latent_dims']}" if lat else "-"
        rows.append(f"| {path.stem} | {r['model']} | {r['train']['steps']} | {kl} | {recon} | {units} | "
                    + " | ".join(_se(r, k) for k in keys) + f" | {commit(r)} |")
    return "\n".join(rows + ["", "Each \"bound K=…\" is the K-sample importance-weighted bound on -log p(x) "
                                  "in nats (K = 1: the ELBO), an upper bound on the NLL in expectation; its "
                                  "± is the estimator's Monte-Carlo standard error only, not the bound's gap "
                                  "to the NLL. KL (nats), reconstruction term -E_q log p(x|z) (nats) and "
                                  "active units: on the first 2,000 test examples."])


def vq_table() -> str:
    """Each VQ-VAE beside its prior over codes (``vqvae-prior-*``): the image bound adds the
    prior's code NLL to the decoder's reconstruction NLL. Commits: the VQ-VAE's, then the prior's."""
    rows = ["| recipe | data | steps | test recon nats/dim | test MSE ([0,1] pixels) | perplexity | "
            "codes used | prior bits/code | image bits/dim bound | commits (VQ-VAE / prior) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("vqvae-*.json")):
        r = json.loads(path.read_text())
        if r["model"] != "vqvae":
            continue
        prior = RESULTS / path.name.replace("vqvae-", "vqvae-prior-")
        p = json.loads(prior.read_text()) if prior.exists() else {}
        rows.append(f"| {path.stem} | {r['data']} | {r['train']['steps']} | {r['recon']:.4f} | "
                    f"{r['mse']:.5f} | {r['perplexity']:.1f} | {r['usage']:.3f} | "
                    f"{p.get('bpd', float('nan')):.4f} | {p.get('image_bpd_bound', float('nan')):.4f} | "
                    f"{commit(r)} / {commit(p) if p else '-'} |")
    return "\n".join(rows)


def _rep(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _acc(probe: dict, features: str = "run") -> str:
    f = probe["features"][features]
    return f"{100 * f['linear']['accuracy']:.1f} | {100 * f['knn']['accuracy']:.1f}"


def representation_table(data: str) -> str:
    """Issues #6 and #7: linear and kNN probe accuracy (10 % of the labels) of every method on ``data``
    (``fashion`` or ``cifar``), with the data-only baselines of the supervised run's probe."""
    rows = ["| features | model | trained steps (budget) | linear % | kNN % |", "|---|---|---|---|---|"]
    sup = _rep(f"rep-supervised-{data}")
    if sup and "probe" in sup:
        for base in ("pixels", "pca", "kmeans", "random-encoder"):
            dim = sup["probe"]["10%"]["features"][base]["dim"]
            rows.append(f"| {base} ({dim}) | - | - | {_acc(sup['probe']['10%'], base)} |")
    for path in sorted(RESULTS.glob(f"rep-*-{data}.json")):
        r = json.loads(path.read_text())
        ablation = path.stem.startswith(("rep-dae", "rep-ae-", "rep-moco-q"))
        if "probe" not in r or ablation:
            continue
        budget = r["command"].split("--time ")[1].split()[0]
        dim = r["probe"]["10%"]["features"]["run"]["dim"]
        rows.append(f"| {path.stem} ({dim}) | {r['model']} | {r['train']['steps']} ({budget}) | "
                    f"{_acc(r['probe']['10%'])} |")
    return "\n".join(rows)


def ablation_table(names: list[tuple[str, str]], label: str) -> str:
    rows = [f"| {label} | recipe | steps | pretext test loss | linear % | kNN % |",
            "|---|---|---|---|---|---|"]
    for value, name in names:
        r = _rep(name)
        if r is None or "probe" not in r:
            continue
        rows.append(f"| {value} | {name} | {r['train']['steps']} | {r['loss']:.4f} | "
                    f"{_acc(r['probe']['10%'])} |")
    return "\n".join(rows)


def ae_vs_pca_table() -> str:
    """MLP autoencoders against PCA at the same code size: test reconstruction error
    (`benchmarks/representation.py ae-vs-pca`) and probes of the codes (10 % of the labels)."""
    path = RESULTS / "ae-vs-pca.json"
    if not path.exists():
        return "(not measured yet: python benchmarks/representation.py ae-vs-pca ...)"
    r = json.loads(path.read_text())
    rows = ["| code | recipe | steps | test MSE per pixel | linear % | kNN % |", "|---|---|---|---|---|---|"]
    plain = _rep("rep-ae-plain32-fashion")
    for key, v in r.items():
        if key.startswith("pca"):
            probes = _acc(plain["probe"]["10%"], "pca") if plain and "probe" in plain else "- | -"
            rows.append(f"| PCA, {key[3:]} components | - | - | {v['test_mse']:.5f} | {probes} |")
    for name, v in r["runs"].items():
        run = _rep(name)
        probes = _acc(run["probe"]["10%"]) if run and "probe" in run else "- | -"
        arch = f"MLP {[*v['hidden'], v['code_dim']]}, {v['activation']}"
        rows.append(f"| {arch} | {name} | {run['train']['steps'] if run else '-'} | {v['test_mse']:.5f} | "
                    f"{probes} |")
    return "\n".join(rows)


def finetune_table() -> str:
    rows = ["| recipe | labels | linear probe % | fine-tuned from the run % | same network from scratch % |",
            "|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("rep-*.json")):
        r = json.loads(path.read_text())
        for p in r.get("probe", {}).values():
            if "finetune" in p:
                rows.append(f"| {path.stem} | {p['labels']} ({p['labelled']}) | "
                            f"{100 * p['features']['run']['linear']['accuracy']:.1f} | "
                            f"{100 * p['finetune']['run']['accuracy']:.1f} | "
                            f"{100 * p['finetune']['scratch']['accuracy']:.1f} |")
    return "\n".join(rows)


def speaker_table() -> str:
    """Issue #7: CPC on speech. Speaker identification (linear / kNN probes on 10 % and 100 % of the
    labels) from the features of runs trained with each kind of negatives, and from the baselines
    (MFCC statistics, raw samples, PCA, k-means, the untrained network) of the mixed run's probe."""
    rows = ["| features | negatives | steps | test task accuracy (k = 1 / 12 / mean) % | "
            "10 % labels: linear / kNN % | 100 %: linear / kNN % |", "|---|---|---|---|---|---|"]
    base = _rep("cpc-audio-all")
    if base and "probe" in base:
        for name in ("mfcc", "raw", "pca", "kmeans", "random-encoder"):
            if name in base["probe"]["10%"]["features"]:
                dim = base["probe"]["10%"]["features"][name]["dim"]
                accs = [_acc(base["probe"][p], name).replace("|", "/") for p in ("10%", "100%")]
                rows.append(f"| {name} ({dim}) | - | - | - | {accs[0]} | {accs[1]} |")
    for mode in ("all", "speaker", "clip"):
        r = _rep(f"cpc-audio-{mode}")
        if r is None or "probe" not in r:
            continue
        dim = r["probe"]["10%"]["features"]["run"]["dim"]
        K = max(int(k.split("_")[1]) for k in r if k.startswith("acc_"))
        rows.append(f"| cpc-audio-{mode} ({dim}) | {mode} | {r['train']['steps']} | "
                    f"{100 * r['acc_1']:.1f} / {100 * r[f'acc_{K}']:.1f} / {100 * r['accuracy']:.1f} | "
                    + " | ".join(_acc(r["probe"][p]).replace("|", "/") for p in ("10%", "100%")) + " |")
    return "\n".join(rows)


def _ci(v: dict, digits: int = 2, scale: float = 1.0) -> str:
    lo, hi = (c * scale for c in v["ci95"])
    return f"{v['mean'] * scale:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def gan_modes_table() -> str:
    """2-D mode collapse (benchmarks/gan_modes.py): mean and 95 % interval over 3 seeds."""
    r = _load("gan-modes")
    if r is None:
        return "(not run)"
    rows = ["| data | variant | modes recovered | high-quality samples % | KL to uniform (nats) | CPU s |",
            "|---|---|---|---|---|---|"]
    for key, v in r["summary"].items():
        data, variant = key.split("/")
        rows.append(f"| {data} | {variant} | {_ci(v['modes_recovered'], 1)} | "
                    f"{_ci(v['high_quality'], 1, 100)} | {_ci(v['kl_to_uniform'], 3)} | "
                    f"{v['cpu_seconds']['mean']:.0f} |")
    return "\n".join(rows) + f"\n\n`{r['command']}` at {r['commit'][:7]}, {r['threads']} thread per run."


def gan_stacked_table() -> str:
    r = _load("gan-stacked")
    if r is None:
        return "(not run)"
    f = r["floor_real_test_stacks"]
    rows = ["| variant | modes covered (of 1,000) | KL to uniform (nats) | CPU s |", "|---|---|---|---|",
            f"| real test stacks (the floor) | {f['modes_covered']} | {f['kl_to_uniform']:.3f} | |"]
    for variant, v in r["summary"].items():
        rows.append(f"| {variant} | {_ci(v['modes_covered'], 1)} | {_ci(v['kl_to_uniform'], 3)} | "
                    f"{v['cpu_seconds']['mean']:.0f} |")
    return "\n".join(rows) + f"\n\n`{r['command']}` at {r['commit'][:7]}, {r['threads']} thread per run."


def gan_1d_table() -> str:
    r = _load("gan-1d")
    if r is None:
        return "(not run)"
    g = r["start"]["mean_abs_grad_at_initial_samples"]
    rows = ["| start | generator loss | W1 to the test set, 3 seeds |", "|---|---|---|"]
    for key, v in r["w1_to_test"].items():
        start, loss = key.split("/")
        rows.append(f"| {start} | {loss} | {_ci(v, 3)} |")
    return (f"The mean gradient magnitude |dL_G/dx| at the initial samples (same D): "
            f"minimax {g['minimax']:.2g}, "
            f"non-saturating {g['non-saturating']:.2g}.\n\n" + "\n".join(rows)
            + f"\n\n`{r['command']}` at {r['commit'][:7]}, {r['threads']} thread.")


def _quality_cells(s: dict) -> str:
    """KID ± s.d., FD, precision, recall, density, coverage as table cells."""
    return (f"{s['kid']:.4f} ± {s['kid_sd']:.4f} | {s['fd']:.1f} | {s['precision']:.3f} | "
            f"{s['recall']:.3f} | {s['density']:.3f} | {s['coverage']:.3f}")


def gan_fashion_table() -> str:
    r = _load("gan-fashion")
    if r is None:
        return "(not run)"
    rows = ["| model | steps | KID | FD | precision | recall | density | coverage | class accuracy |",
            "|---|---|---|---|---|---|---|---|---|"]
    floor = None
    for name, v in r["results"].items():
        q = v["eval"]["sample_quality"]
        floor = q
        acc = q["samples"].get("class_accuracy")
        accuracy = f"{100 * acc:.1f} %" if acc is not None else ""
        rows.append(f"| {name} | {v['steps']} | {_quality_cells(q['samples'])} | {accuracy} |")
    if floor is not None:
        rows.insert(2, f"| floor: 1,000 real train vs test | | {_quality_cells(floor['floor'])} | |")
    return "\n".join(rows) + f"\n\n`{r['command']}` at {r['commit'][:7]}."


def gan_cycle_table() -> str:
    r = _load("gan-cycle")
    if r is None:
        return "(not run)"
    c, k, real = r["cycle_error"], r["class_kept"], r["classifier_on_real"]
    rows = ["| direction | cycle error (mean \\|x - back\\| in [-1, 1]) | class kept (classifier on the "
            "translations) | classifier on the real source images |", "|---|---|---|---|",
            f"| fashion-mnist → coloured → back | {c['a_to_b_to_a']:.3f} | {100 * k['a_to_b']:.1f} % | "
            f"{100 * real['a']:.1f} % |",
            f"| coloured → fashion-mnist → back | {c['b_to_a_to_b']:.3f} | {100 * k['b_to_a']:.1f} % | "
            f"{100 * real['b']:.1f} % |"]
    return ("\n".join(rows) + f"\n\n{r['steps']} steps; `{r['train_command']}`, then `{r['command']}` "
            f"at {r['commit'][:7]}, on the {r['test_examples']:,} test images.")


def sample_quality_tables() -> str:
    r = _load("sample-quality")
    if r is None:
        return "(not run)"
    head = "| KID | FD | precision | recall | density | coverage |"
    rows = [f"| dataset | N {head}", "|---|---|---|---|---|---|---|---|"]
    for key, v in r["floors"].items():
        data, n = key.split("/")
        rows.append(f"| {data} | {int(n):,} | {_quality_cells(v)} |")
    out = "\n".join(rows) + f"\n\n`{r['command']}` at {r['commit'][:7]}.\n\n"
    rows = [f"| model | steps {head}", "|---|---|---|---|---|---|---|---|"]
    for name, v in r["models"].items():
        q = v["eval"]["sample_quality"]
        rows.append(f"| {name} (`{v['train_command']}`) | {v['steps']} | {_quality_cells(q['samples'])} |")
    return out + "\n".join(rows)


def _budget(command: str) -> str:
    words = command.split()
    for flag in ("--time", "--steps"):
        if flag in words:
            value = words[words.index(flag) + 1]
            return value.replace("m", " min") if flag == "--time" else f"{value} steps"
    return "?"


def diffusion_bound_table() -> str:
    """DDPM's bound and flow matching's estimate beside the flows and PixelCNN++ (8-bit
    Fashion-MNIST, every term counted)."""
    evals = {"ddpm-fashion": "bound100-N1000", "ddpm-fashion-eps": "bound100-N1000",
             "ddpm-fashion-learned": "bound100-N1000", "flow-matching-fashion": "ode-N200"}
    rows = ["| recipe | budget (one core) | steps | test bits/dim | what it is | test images | commit |",
            "|---|---|---|---|---|---|---|"]
    for name in ("ddpm-fashion", "ddpm-fashion-eps", "ddpm-fashion-learned", "flow-matching-fashion",
                 "glow-fashion", "realnvp-fashion", "flow++-fashion", "pixelcnn++-fashion"):
        r = _load(name)
        if r is None:
            rows.append(f"| {name} | (not run) | | | | | |")
            continue
        m = r.get("importance", {}).get(evals.get(name, ""), r)
        kind = likelihood_kind(m, r["model"])
        se = f" ± {m['nll_se'] / (784 * 0.6931471805599453):.4f}" if m.get("nll_se") else ""
        what = {"bound": "upper bound"}.get(kind, kind)
        rows.append(f"| `{name}` | {_budget(r['command'])} | {r['train']['steps']:,} | "
                    f"{m['bpd']:.4f}{se} | {what} | {m['n']:,} | {commit(r)} |")
    return "\n".join(rows) + "\n\n(± is the Monte-Carlo standard error of the estimate, in bits/dim.)"


def diffusion_terms_table() -> str:
    """Where the DDPM bound's bits/dim come from, eps against v prediction (same budget)."""
    runs = [(label, _load(name)) for label, name in (("ε", "diffusion-terms-eps"), ("v", "diffusion-terms"),
                                                     ("v, learned variances", "diffusion-terms-learned"))]
    runs = [(label, r) for label, r in runs if r is not None]
    if not runs:
        return "(not run)"
    rows = ["| terms | " + " | ".join(f"bits/dim, {label}" for label, _ in runs) + " |",
            "|---" * (len(runs) + 1) + "|"]
    for group in runs[0][1]["bits_per_dim"]:
        rows.append(f"| {group} | " + " | ".join(f"{r['bits_per_dim'][group]:.3f}" for _, r in runs) + " |")
    rows.append("| total | " + " | ".join(f"{r['total']:.3f}" for _, r in runs) + " |")
    notes = "; ".join(f"`{r['command']}` at {r['git_commit'][:7]}, {r['threads']} thread, {r['n']} test "
                      f"images, {r['per_group']} steps per group" for _, r in runs)
    return "\n".join(rows) + f"\n\n{notes}."


def diffusion_samplers_table() -> str:
    rows = ["| model | sampler | steps | NFE | samples | KID | FD | precision | recall | CPU s / image |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    notes, floor = [], None
    kinds = {"-eps": " (ε)", "-learned": " (v, learned variances)"}
    for name in ("diffusion-samplers-ddpm", "diffusion-samplers-ddpm-1000", "diffusion-samplers-ddpm-learned",
                 "diffusion-samplers-ddpm-eps", "diffusion-samplers-ddpm-1000-eps",
                 "diffusion-samplers-flow-matching"):
        r = _load(name)
        if r is None:
            continue
        model = r["model"]
        if model == "ddpm":
            model += next((label for end, label in kinds.items() if name.endswith(end)), " (v)")
        for row in r["rows"]:
            q = row["samples"]
            floor = row["floor"]
            rows.append(f"| {model} | {row['sampler']} | {row['steps']} | {row['nfe']} | {row['n']} | "
                        f"{q['kid']:.4f} ± {q['kid_sd']:.4f} | {q['fd']:.1f} | {q['precision']:.3f} | "
                        f"{q['recall']:.3f} | {row['cpu_seconds_per_image']:.3f} |")
        notes.append(f"`{r['command']}` at {r['git_commit'][:7]}, {r['threads']} thread, {r['n']} samples")
    if floor is not None:
        rows.append(f"| floor (real train vs test) | | | | 300 | {floor['kid']:.4f} ± "
                    f"{floor['kid_sd']:.4f} | {floor['fd']:.1f} | {floor['precision']:.3f} | "
                    f"{floor['recall']:.3f} | |")
    return "\n".join(rows) + "\n\n" + "; ".join(notes) + "."


def diffusion_guidance_table(name: str = "diffusion-guidance") -> str:
    r = _load(name)
    if r is None:
        return "(not run)"
    rows = ["| guidance w | KID | FD | class accuracy |", "|---|---|---|---|"]
    for row in r["rows"]:
        q = row["samples"]
        rows.append(f"| {row['guidance']:g} | {q['kid']:.4f} ± {q['kid_sd']:.4f} | {q['fd']:.1f} | "
                    f"{q['class_accuracy']:.3f} |")
    f = r["rows"][0]["floor"]
    rows.append(f"| floor (real train vs test) | {f['kid']:.4f} ± {f['kid_sd']:.4f} | {f['fd']:.1f} | "
                f"{r['classifier_test_accuracy']:.3f} (the classifier's test accuracy) |")
    return "\n".join(rows) + (f"\n\n`{r['command']}` at {r['git_commit'][:7]}, {r['threads']} thread, "
                              f"{r['n']} samples per weight.")


def diffusion_speed_table() -> str:
    r = _load("diffusion-speed")
    if r is None:
        return "(not run)"
    rows = ["| model, sampler | parameters | images per CPU second |", "|---|---|---|"]
    for row in r["rows"]:
        rows.append(f"| {row['label']} | {row['parameters']:,} | {row['images_per_cpu_second']:.2f} |")
    return "\n".join(rows) + (f"\n\n`{r['command']}` at {r['git_commit'][:7]}, {r['threads']} thread, "
                              f"{r['rows'][0]['n']} images a draw, median of the rounds.")


def diffusion_reflow_table() -> str:
    r = _load("diffusion-reflow")
    if r is None:
        return "(not run)"
    steps = sorted({row["steps"] for row in r["rows"] if "steps" in row})
    rows = ["| run | " + " | ".join(f"MMD² x 1e3, {k} Euler step{'s' * (k > 1)}" for k in steps)
            + " | straightness |", "|---" * (len(steps) + 2) + "|"]
    for run in dict.fromkeys(row["run"] for row in r["rows"]):
        mine = [row for row in r["rows"] if row["run"] == run]
        cells = [_ci(next(m["mmd2"] for m in mine if m.get("steps") == k), 2, 1e3) for k in steps]
        straight = _ci(next(m["straightness"] for m in mine if "straightness" in m), 3)
        rows.append(f"| `{Path(run).name}` | " + " | ".join(cells) + f" | {straight} |")
    return "\n".join(rows) + (f"\n\nMean [95 % interval] over seeds {r['seeds']}, {r['n']} samples "
                              f"against as many test points. `{r['command']}` at {r['git_commit'][:7]}, "
                              f"{r['threads']} thread{'s' * (r['threads'] > 1)}.")


def latent_diffusion_table(suffix: str = "") -> str:
    """The pixel DDPM's first 2,000 steps (its step-2,000 checkpoint) against a VAE and a DDPM on
    its codes in as much time, both sampled by DDIM with 50 steps; ``suffix`` "-eps" for the
    eps-prediction pair."""
    pixel, latent = _load(f"diffusion-samplers-ddpm-step2000{suffix}"), _load(f"ddpm-fashion-latent{suffix}")
    vae, raw = _load("vae-fashion-8bit"), _load(f"diffusion-samplers-ddpm-step2000-raw{suffix}")
    if latent is None or pixel is None or vae is None or raw is None:
        return "(not run)"
    q = latent["importance"]["quality-N300"]["sample_quality"]
    pix = _load(f"ddpm-fashion{suffix}")
    cells = [(r["rows"][0]["samples"], f"pixel DDPM, U-Net (`ddpm-fashion{suffix}` at step 2,000, "
              f"{weights}) | 2,000 steps, {pixel['train_minutes']:.0f} min | "
              f"{pix['train']['examples_per_second']:.0f}")
             for r, weights in ((pixel, "EMA 0.999"), (raw, "trained weights"))]
    p = pixel["rows"][0]
    cells += [(q["samples"], f"latent DDPM (`vae-fashion-8bit` + `ddpm-fashion-latent{suffix}`) | "
              f"{_budget(vae['command'])} ({vae['train']['steps']:,} steps) + {_budget(latent['command'])} "
              f"({latent['train']['steps']:,} steps) | {vae['train']['examples_per_second']:.0f} + "
              f"{latent['train']['examples_per_second']:.0f}")]
    rows = ["| model | training (one core) | images / s in training | KID (DDIM, 50 steps) | FD | "
            "precision | recall |", "|---|---|---|---|---|---|---|"]
    for s, head in cells:
        rows.append(f"| {head} | {s['kid']:.4f} ± {s['kid_sd']:.4f} | {s['fd']:.1f} | {s['precision']:.3f} | "
                    f"{s['recall']:.3f} |")
    return "\n".join(rows) + (f"\n\n{p['n']} samples each; floor (real train vs test) KID "
                              f"{q['floor']['kid']:.4f}. Pixel: `{pixel['command']}` and "
                              f"`{raw['command']}`.")


def compression_table(name: str) -> str:
    """`unsup compress` beside the model's NLL and the usual codecs on the same images (#21)."""
    r = _load(name)
    if r is None:
        return "(not run)"
    u = r["unsup"]
    rows = ["| codec | bits/dim | encode (images / CPU s) |", "|---|---|---|",
            f"| `unsup compress` ({r['model']}) | {u['bits_per_dim']:.4f} | "
            f"{u['encode_images_per_cpu_second']:.1f} (decode {u['decode_images_per_cpu_second']:.1f}) |",
            f"| its NLL (no real code) | {u['nll_bits_per_dim']:.4f} | |"]
    for codec, b in r["baselines"].items():
        cells = (f"{b['error']} | |" if "error" in b else
                 f"{b['bits_per_dim']:.4f} | {r['n'] / b['encode_cpu_seconds']:.0f} |")
        rows.append(f"| {codec} | {cells}")
    return "\n".join(rows) + (
        f"\n\n{r['n']} test images ({r['data']}, {r['levels']} levels). Overhead over the NLL: "
        f"{100 * u['overhead']:.2f} % = coder {u['coder_excess_bits_per_dim']:.5f} + container "
        f"{u['container_bits_per_dim']:.5f} bits/dim. `{r['command']}` at {r['git_commit'][:7]}, "
        f"{r['threads']} thread{'s' * (r['threads'] > 1)}.")


def text_codec_table(name: str) -> str:
    """`unsup compress` on the bible test split beside the general-purpose compressors (#21)."""
    r = _load(name)
    if r is None:
        return "(not run)"
    u = r["unsup"]
    rows = ["| codec | bits/char | encode (KB / CPU s) |", "|---|---|---|",
            f"| `unsup compress` ({Path(r['run']).name}) | {u['bits_per_char']:.4f} | "
            f"{u['encode_kb_per_cpu_second']:.1f} (decode {u['decode_kb_per_cpu_second']:.1f}) |",
            f"| its NLL (no real code) | {u['nll_bits_per_char']:.4f} | |"]
    for codec, b in r["compressors"].items():
        cells = (f"{b['error']} | |" if "error" in b else
                 f"{b['bits_per_char']:.4f} | {b['encode_kb_per_cpu_second']:.0f} |")
        rows.append(f"| {codec} | {cells}")
    return "\n".join(rows) + (
        f"\n\n{r['chars']:,} characters, {u['windows']:,} windows. Overhead over the NLL: "
        f"{100 * u['overhead']:.2f} % = coder {u['coder_excess_bits_per_char']:.5f} + container "
        f"{u['container_bits_per_char']:.5f} bits/char. CPU seconds of the `unsup` processes, "
        f"{u['startup_cpu_seconds']:.1f} s of which start Python. `{r['command']}` at "
        f"{r['git_commit'][:7]}, {r['threads']} thread{'s' * (r['threads'] > 1)}.")


def bitsback_table(name: str) -> str:
    """Bits-back coding of a VAE: its real rate as images accumulate, beside its negative ELBO
    and its importance-sampled NLL (#21)."""
    r = _load(name)
    if r is None:
        return "(not run)"
    rows = ["| images | file (bits/dim) | payload | net of initial bits | negative ELBO | initial bits "
            "per dim | encode / decode (images / CPU s) |", "|---|---|---|---|---|---|---|"]
    for c in r["counts"]:
        rows.append(f"| {c['n']:,} | {c['file']:.4f} | {c['total']:.4f} | {c['net']:.4f} | "
                    f"{c['neg_elbo']:.4f} | {c['initial']:.4f} | {c['encode_images_per_cpu_second']:.0f} / "
                    f"{c['decode_images_per_cpu_second']:.0f} |")
    w = r["iwae"]
    return "\n".join(rows) + (
        f"\n\n{r['model']} ({r['data']}, {r['levels']} levels, latent levels {r['latent_levels']}); "
        f"initial bits {r['counts'][0]['initial_bits']}. On the first {w['n']:,} images: importance-sampled "
        f"NLL ({w['importance_samples']} samples, an upper bound) {w['nll']:.4f} ± {w['nll_se']:.4f}, "
        f"net rate {w['same_images']['net']:.4f}, negative ELBO {w['same_images']['neg_elbo']:.4f} bits/dim. "
        f"`{r['command']}` at {r['git_commit'][:7]}, {r['threads']} thread{'s' * (r['threads'] > 1)}.")


def fast_sampling_table() -> str:
    """Cached against naive sampling, CPU seconds on one pinned core (section 2)."""
    rows = ["| model | what is sampled | naive, CPU-s | cached, CPU-s | speed-up | same samples | commit |",
            "|---|---|---|---|---|---|---|"]
    what = {"gated_pixelcnn": "16 binary 28×28 images", "pixelcnn": "16 binary 28×28 images",
            "transformer": "4 sequences of 784 binary tokens"}
    for name in ("gated_pixelcnn", "pixelcnn", "transformer"):
        r = _load(f"fast_sampling_{name}")
        if r is None or "clock" not in r:
            continue  # not yet measured in CPU seconds
        naive = r.get("naive_rounds_seconds", [r["naive_seconds"]])
        rows.append(f"| {r.get('model', name)} | {what[name]} | {r['naive_seconds']:.1f} (median of "
                    f"{len(naive)}) | {r['fast_seconds']:.2f} (median of {len(r['fast_rounds_seconds'])}) | "
                    f"{r['speedup']:.0f}× | {'yes' if r['same_samples'] else 'NO'} | {commit(r)} |")
    w = _load("fast_sampling_wavenet")
    if w is not None and "clock" in w:
        for name, c in w["configs"].items():
            naive = (f"{c['naive_seconds']:.0f} (extrapolated from {c['naive_measured_steps']} steps)"
                     if c["naive_extrapolated"] else f"{c['naive_seconds']:.0f}")
            rows.append(f"| wavenet {name} (receptive field {c['receptive_field']}) | 1 s of 16 kHz audio | "
                        f"{naive} | {c['fast_seconds']:.2f} (median of {len(c['fast_rounds_seconds'])}) | "
                        f"{c['speedup']:.1f}× | {'yes' if c['same_samples'] else 'NO'} | {commit(w)} |")
    if len(rows) == 2:
        return "(not measured in CPU seconds yet: benchmarks/fast_sampling*.py on a pinned core)"
    return "\n".join(rows)


def script_table(script: str, name: str) -> str:
    """The table a seeded benchmark script prints from its own JSON (``script.table(doc)``)."""
    import importlib

    doc = _load(name)
    if doc is None:
        argument = f" {name.removeprefix('seeded-')}" if script == "seeded" else ""
        return f"(not measured yet: python benchmarks/{script}.py{argument})"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module(script).table(doc)


def sections() -> list[tuple[str, str]]:
    """Every table the report prints, as (title, markdown), in order."""
    out = [(title, recipes_table(include)) for title, include in GROUPS.items()]
    out += [("Importance-sampled NLL of the VAE family (issue #5)", importance_table()),
            ("VQ-VAE (issue #5)", vq_table())]
    out += [(f"Representation learning on {data} (issue #6)", representation_table(data))
            for data in ("fashion", "cifar")]
    out += [("Denoising: masking-noise level (issue #6)",
             ablation_table([("0", "rep-dae0-fashion"), ("0.1", "rep-dae0.1-fashion"),
                             ("0.25", "rep-denoising-autoencoder-fashion"), ("0.5", "rep-dae0.5-fashion")],
                            "noise level")),
            ("Denoising an overcomplete MLP code (1024 units; issue #6)",
             ablation_table([("0", "rep-dae-wide0-fashion"), ("0.25", "rep-dae-wide0.25-fashion")],
                            "noise level")),
            ("MoCo: number of negatives (issue #7)",
             ablation_table([(str(k), f"rep-moco-q{k}-fashion") for k in (256, 1024, 4096, 16384)],
                            "queue K")),
            ("CPC on speech: speaker identification (issue #7)", speaker_table()),
            ("Autoencoders against PCA (issue #6)", ae_vs_pca_table()),
            ("Label efficiency: fine-tuning (issue #6)", finetune_table()),
            ("Mode collapse on 2-D Gaussians (issue #19)", gan_modes_table()),
            ("Stacked digits, 1,000 modes (issue #19)", gan_stacked_table()),
            ("The 1-D GAN (issue #19)", gan_1d_table()),
            ("Implicit models on Fashion-MNIST (issue #19)", gan_fashion_table()),
            ("CycleGAN (issue #19)", gan_cycle_table()),
            ("Sample-quality floors and likelihood models (issue #19)", sample_quality_tables()),
            ("Diffusion: bounds beside the flows (issue #20)", diffusion_bound_table()),
            ("Diffusion: the bound's terms, eps against v (issue #20)", diffusion_terms_table()),
            ("Diffusion: samplers, quality against cost (issue #20)", diffusion_samplers_table()),
            ("Diffusion: classifier-free guidance (issue #20)", diffusion_guidance_table()),
            ("Diffusion: classifier-free guidance, eps-prediction (issue #20)",
             diffusion_guidance_table("diffusion-guidance-eps")),
            ("Diffusion: reflow (issue #20)", diffusion_reflow_table()),
            ("Diffusion: latent against pixel space (issue #20)", latent_diffusion_table()),
            ("Diffusion: latent against pixel space, eps-prediction (issue #20)",
             latent_diffusion_table("-eps")),
            ("Diffusion: sampling speed beside the other families (issue #20)", diffusion_speed_table())]
    out += [(f"Lossless compression: {name} (issue #21)", compression_table(name))
            for name in ("compression-gated-fashion", "compression-pixelcnn-fashion-binary",
                         "compression-gated-fashion-10000", "compression-pixelcnn-fashion-binary-10000")]
    out += [("Lossless compression: the bible test split (issue #21)",
             text_codec_table("text-codec-bytenet-bible-long"))]
    out += [(f"Bits-back coding: {name} (issue #21)", bitsback_table(name))
            for name in ("bitsback-vae-fashion-binary", "bitsback-hvae-fashion-binary",
                         "bitsback-hvae-bitswap-fashion-binary", "bitsback-vae-fashion-8bit")]
    out += [("Cached against naive sampling, CPU seconds (issues #3, #23)", fast_sampling_table())]
    out += [(title, script_table(script, name)) for title, script, name in (
        ("FVSBN, NADE and MADE's orderings (issue #23)", "autoregressive_lines", "autoregressive-lines"),
        ("Transfer of a self-supervised representation (issue #23)", "transfer", "transfer"),
        ("Denoising: noise types, three probes (issue #23)", "denoising_noise", "denoising-noise"),
        ("Rotation: number of angles, 3 seeds (issues #6, #23)", "seeded", "seeded-rotation-angles"),
        ("Plain against Gated PixelCNN, and PixelSNAIL, 3 seeds (issues #3, #23)", "seeded",
         "seeded-pixel-models"),
        ("MADE, the LSTM and the WaveNet-style stack at the pixel models' settings, 3 seeds (issues #3, #23)",
         "seeded", "seeded-architectures"),
        ("Sparse against dense attention, 3 seeds (issue #23)", "seeded", "seeded-sparse-attention"),
        ("Glow's initialisations ablated, 3 seeds (issue #23)", "seeded", "seeded-flow-init"),
        ("The IAF posterior against the VAE's, 3 seeds (issue #23)", "seeded", "seeded-vae-posterior"),
        ("The histogram, MADE and PixelCNN against the true density, 3 seeds (issues #2, #23)", "seeded",
         "seeded-toy-2d-image"),
        ("The codes of generative models as representations, 3 seeds (issue #23)", "seeded",
         "seeded-generative-codes"),
        ("The context encoder: L2 against L2 + adversarial, 3 seeds (issues #6, #23)", "seeded",
         "seeded-context-adversarial"),
        ("CIFAR-10 (JPEG copy): the ranked methods, 3 seeds (issues #6, #7, #23)", "seeded",
         "seeded-cifar-methods"),
        ("CPC on speech: where the negatives come from, 3 seeds (issues #7, #23)", "seeded",
         "seeded-cpc-negatives"),
        ("Label efficiency: fine-tuned on 1 % of the labels against scratch, 3 seeds (issues #6, #7, #23)",
         "seeded", "seeded-label-efficiency"),
        ("A one-layer MAF is a Gaussian autoregressive model (issue #23)", "ar_flow_equivalence",
         "ar-flow-equivalence"))]
    return out


def report() -> str:
    """The whole report: each table under a heading naming it."""
    return "\n".join(f"## {title}\n\n{table}\n" for title, table in sections())


def missing_lines(report_text: str, document: str) -> list[str]:
    """The table lines of ``report_text`` (those starting with "|") that are not, verbatim, a line
    of ``document``: a stale or missing row, or a table whose columns changed."""
    lines = set(document.splitlines())
    return [line for line in report_text.splitlines() if line.startswith("|") and line not in lines]


def _table_header(lines: list[str], i: int) -> str:
    """The first line of the markdown table that line ``i`` belongs to."""
    while i > 0 and lines[i - 1].startswith("|"):
        i -= 1
    return lines[i]


def _first_cell(line: str) -> str:
    return line.split("|")[1].strip()


def update_rows(report_text: str, document: str) -> tuple[str, list[str]]:
    """``document`` with each stale row replaced by the report's row for the same thing, and the
    report's rows it could not place. A row of the report matches the one document row under an
    identical table header, with the same first cell (the recipe or case) and as many columns;
    rows with no such match (a new recipe, a changed header) are returned for pasting by hand."""
    report_lines, lines = report_text.splitlines(), document.splitlines()
    present, unplaced = set(lines), []
    for i, row in enumerate(report_lines):
        if not row.startswith("|") or row in present or row.startswith("|---"):
            continue
        header = _table_header(report_lines, i)
        matches = [k for k, line in enumerate(lines)
                   if line.startswith("|") and line.count("|") == row.count("|")
                   and _first_cell(line) == _first_cell(row) and _table_header(lines, k) == header]
        if len(matches) == 1:
            lines[matches[0]] = row
        else:
            unplaced.append(row)
    return "\n".join(lines) + ("\n" if document.endswith("\n") else ""), unplaced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help=f"print the table lines missing from {DOCUMENT.relative_to(ROOT)} and exit 1 "
                             "if there are any (0 when the document has them all)")
    parser.add_argument("--update", action="store_true",
                        help=f"rewrite the stale rows of {DOCUMENT.relative_to(ROOT)} in place (each matched "
                             "by its table's header and its first cell); prints the rows it cannot place")
    args = parser.parse_args(argv)
    text = report()
    if not (args.check or args.update):
        print(text)
        return 0
    if args.update:
        updated, left = update_rows(text, DOCUMENT.read_text())
        DOCUMENT.write_text(updated)
        what = "row(s) have no unique stale row to replace in {}: paste them by hand"
    else:
        left = missing_lines(text, DOCUMENT.read_text())
        what = "table line(s) printed by benchmarks/report.py are not in {}: paste the report's tables there"
    for line in left:
        print(line)
    if left:
        print(f"{len(left)} " + what.format(DOCUMENT.relative_to(ROOT)), file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
