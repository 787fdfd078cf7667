"""Every figure a report shows, where it comes from in a run's JSON files, and which way is better.

This module is the one place that knows the figures' meaning; the collector only reads files and
the page only draws what is returned here. A run's figures (:func:`run_figures`) are keyed by a
column name (:class:`Column`), the same for every run, so that runs compare column by column:

- likelihood: test bits/dim, ``-log2 p(x) / D`` (lower is better), with its kind as the JSON states
  it: *exact* (``"exact": true``), an *upper bound* (the model's ``log_prob`` is a lower bound on
  ``log p``: VAEs, diffusion bounds, dequantised flows) or an *estimate* (neither, e.g. flow
  matching's ODE likelihood). An importance-sampled NLL (``unsup eval --importance-samples K``)
  comes with its Monte-Carlo standard error;
- sample quality (``unsup eval --sample-quality N``), measured in the features of a classifier
  shipped for the dataset, each beside its *floor* (N real training against N real test examples,
  what a perfect model would get at this N): FD and KID, distances (lower is better; KID is
  reported as mean ± s.d. over subsets), precision, recall, density and coverage (higher is
  better), the classifier score (an Inception-score analogue, higher is better) and the sampling
  time per sample (lower is better);
- representations (``unsup probe``): test accuracy of each probe on frozen features (higher);
- compression (``unsup compress``): real bits/dim of the coded split (lower), and the coder's
  overhead over the model's NLL (lower);
- outlier detection (``unsup ood``): AUROC of each score against each outlier set (higher; 0.5
  is chance).

Training figures (steps, seconds) have no better direction: they are the cost, not the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

LOWER, HIGHER = "lower", "higher"


@dataclass(frozen=True)
class Column:
    """One comparable figure: its key, its label, which way is better (``None``: neither), the
    decimals it is shown with and a sentence for the page's tooltip."""

    key: str
    label: str
    better: str | None
    digits: int = 4
    help: str = ""


@dataclass(frozen=True)
class Figure:
    """A run's value of a column, with its spread (``se`` with ``spread`` "s.e." or "s.d."), the
    floor it is to be read beside, and a short note (the likelihood's kind, the subset it is on)."""

    value: float
    se: float | None = None
    spread: str = ""
    floor: float | None = None
    note: str = ""


QUALITY = (("fd", "FD", LOWER, 3, "Fréchet distance of samples to real test examples in the "
            "classifier's features"),
           ("kid", "KID", LOWER, 4, "kernel inception-style distance, mean ± s.d. over subsets"),
           ("precision", "precision", HIGHER, 3, "share of samples inside the real examples' manifold"),
           ("recall", "recall", HIGHER, 3, "share of real examples inside the samples' manifold"),
           ("density", "density", HIGHER, 3, "how many real neighbourhoods hold a sample, on average"),
           ("coverage", "coverage", HIGHER, 3, "share of real examples with a sample nearby"),
           ("classifier_score", "classifier score", HIGHER, 3,
            "exp E KL(p(y|x) || p(y)) of the shipped classifier, an Inception-score analogue"))

# The columns of fixed name, in the order of the comparison table; probe and OOD columns follow.
COLUMNS = {c.key: c for c in [
    Column("bpd", "bits/dim", LOWER, 4, "test bits/dim, -log2 p(x) / D; the kind (exact, bound, "
           "estimate) is noted beside it"),
    Column("nll", "NLL (nats)", LOWER, 3, "test negative log-likelihood per example, ± its standard "
           "error when importance-sampled"),
    Column("image_bpd", "image bits/dim ≤", LOWER, 4, "bound on the images of a prior over VQ-VAE codes"),
    *[Column(f"quality:{k}", label, better, digits, text) for k, label, better, digits, text in QUALITY],
    Column("sample_seconds", "CPU s / sample", LOWER, 4, "CPU seconds of drawing one sample (all the "
           "process's threads; wall-clock seconds in files older than the CPU figure), from "
           "unsup eval --sample-quality"),
    Column("compress_bpd", "coded bits/dim", LOWER, 4, "real bits/dim of the file unsup compress wrote"),
    Column("compress_overhead", "coder overhead", LOWER, 4, "coded size over the model's NLL, minus 1"),
    Column("steps", "steps", None, 0, "training steps reached"),
    Column("train_seconds", "train s", None, 0, "seconds of training (train.json)"),
]}

# Trade-offs drawn when at least two runs have both figures: (x column, y column).
TRADE_OFFS = [("sample_seconds", "bpd"), ("sample_seconds", "quality:kid"),
              ("sample_seconds", "quality:fd"), ("steps", "quality:kid"), ("train_seconds", "bpd")]


def column(key: str) -> Column:
    """The column of ``key``, also for the keys made per probe (``probe:P``) and per outlier score
    and set (``auroc:SCORE:SET``)."""
    if key in COLUMNS:
        return COLUMNS[key]
    kind, _, rest = key.partition(":")
    if kind == "probe":
        return Column(key, f"{rest} probe acc.", HIGHER, 3, f"test accuracy of the {rest} probe on the "
                      "run's frozen features")
    if kind == "auroc":
        score, _, outliers = rest.partition(":")
        return Column(key, f"AUROC {score} vs {outliers}", HIGHER, 3, f"area under the ROC curve of "
                      f"the {score} score separating test examples from {outliers} (0.5: chance)")
    raise KeyError(f"no column {key!r}")


def order(keys: set[str]) -> list[str]:
    """``keys`` in the order of the comparison table: fixed columns first, then the rest sorted."""
    fixed = [k for k in COLUMNS if k in keys]
    return fixed + sorted(keys - set(fixed))


def likelihood_kind(r: dict[str, Any]) -> str:
    """``"exact"``, ``"upper bound"`` or ``"estimate"``, as an evaluation's JSON states it (the
    ``likelihood`` field, or ``exact`` in files older than it); the rule of
    ``unsup.cli.report.describe``."""
    stated = r.get("likelihood", "exact" if r.get("exact") else "bound")
    return {"exact": "exact", "estimate": "estimate"}.get(stated, "upper bound")


def likelihood_figures(r: dict[str, Any]) -> dict[str, Figure]:
    """bits/dim and NLL of one evaluation (``test.json``, ``eval.json``)."""
    if "bpd" not in r:
        return {}
    note = likelihood_kind(r) + (f", {r['split']} split, {r['n']} examples" if "n" in r else "")
    if "importance_samples" in r and r["importance_samples"]:
        note += f", {r['importance_samples']} importance samples"
    nll_se, bpd_se, spread = r.get("nll_se"), r.get("bpd_se"), "s.e."
    if "partial" in r:
        note += f", on {r['partial']['n']} of {r['partial']['of']}"
        subset_se = r["partial"].get("nll_se")
        if subset_se is not None and r.get("nats_per_dim"):
            # a random subset's mean: its sampling error over examples is the error that matters
            # (an importance-sampled estimate's Monte-Carlo error is far smaller; said in the note)
            if nll_se is not None:
                note += f"; Monte-Carlo s.e. of the estimate {nll_se:.3g} nats"
            dims = r["nll_nats"] / r["nats_per_dim"]
            nll_se, bpd_se, spread = subset_se, subset_se / dims / math.log(2), "s.e. (subset)"
    out = {"bpd": Figure(r["bpd"], bpd_se, spread, note=note),
           "nll": Figure(r["nll_nats"], nll_se, spread, note=note)}
    if "image_bpd_bound" in r:
        out["image_bpd"] = Figure(r["image_bpd_bound"], note="upper bound")
    return out


def quality_figures(q: dict[str, Any]) -> dict[str, Figure]:
    """Sample quality beside its floor, and the sampling time per sample."""
    s, floor = q["samples"], q.get("floor", {})
    out = {}
    for k, *_ in QUALITY:
        if k in s:
            sd = s.get(f"{k}_sd")
            out[f"quality:{k}"] = Figure(s[k], sd, "s.d." if sd is not None else "", floor.get(k))
    seconds = q.get("sampling_cpu_seconds", q.get("sampling_seconds"))  # CPU time: load does not inflate it
    if seconds is not None and q.get("n"):
        kind = "CPU" if "sampling_cpu_seconds" in q else "wall-clock"
        out["sample_seconds"] = Figure(seconds / q["n"], note=f"{kind} seconds, {q['n']} samples "
                                       f"drawn {q.get('batch_size', '?')} at a time")
    return out


def run_figures(files: dict[str, dict[str, Any] | None]) -> dict[str, Figure]:
    """Every comparable figure of one run, from its parsed JSON files (``train``, ``test``,
    ``eval``, ``probe``, ``ood``, ``compress``; a missing file is ``None``).

    The likelihood is the test evaluation over more examples: ``eval.json`` when it scored the
    test split on at least as many as the end-of-training ``test.json`` (``unsup eval --examples N``
    scores the first N only), else ``test.json``.
    """
    out: dict[str, Figure] = {}
    train, test, ev = files.get("train"), files.get("test"), files.get("eval")
    if train:
        out["steps"] = Figure(float(train["steps"]))
        if "train_seconds" in train:
            out["train_seconds"] = Figure(train["train_seconds"])
    scored = test
    if ev and ev.get("split") == "test" and "bpd" in ev and (
            not test or "bpd" not in test or ev.get("n", 0) >= test.get("n", 0)):
        scored = ev
    out.update(likelihood_figures(scored or {}))
    if ev and "sample_quality" in ev:
        out.update(quality_figures(ev["sample_quality"]))
    if probe := files.get("probe"):
        for p, r in probe.get("features", {}).get("run", {}).items():
            if isinstance(r, dict) and "accuracy" in r:
                out[f"probe:{p}"] = Figure(r["accuracy"])
        if "finetune" in probe and "run" in probe["finetune"]:
            out["probe:finetune"] = Figure(probe["finetune"]["run"]["accuracy"])
    if ood := files.get("ood"):
        for score, sets in ood.get("metrics", {}).items():
            for name, m in sets.items():
                out[f"auroc:{score}:{name}"] = Figure(m["auroc"])
    if comp := files.get("compress"):
        if "bits_per_dim" in comp:
            out["compress_bpd"] = Figure(comp["bits_per_dim"])
        if "overhead" in comp:
            out["compress_overhead"] = Figure(comp["overhead"])
    return {k: f for k, f in out.items() if isinstance(f.value, (int, float)) and math.isfinite(f.value)}


def best_runs(values: list[float | None], better: str | None) -> set[int]:
    """Indices of the best value (all of them on a tie) of a column; none when the column has no
    direction, fewer than two runs have it or all have the same: then it is best of nothing."""
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if better is None or len(present) < 2 or len({v for _, v in present}) == 1:
        return set()
    target = (min if better == LOWER else max)(v for _, v in present)
    return {i for i, v in present if v == target}


def format_value(value: float | None, digits: int) -> str:
    """A figure for people: fixed decimals, thousands separated, ``—`` for a missing value."""
    if value is None:
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    return f"{value:,.{digits}f}"
