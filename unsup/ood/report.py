"""Every score of :mod:`unsup.ood` on the in-distribution test inputs and each outlier set: the
metrics as one JSON-able dict, a table for people, and a histogram per score.

The in-distribution inputs are the run's test split (the negatives of every metric); the run's
validation split gives the typicality test its entropy ``H^`` and the noise-rate rule its
held-out examples. No score and no choice ever looks at an outlier before it is scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsup.ood.complexity import CODECS, code_lengths_bits, complexity_score
from unsup.ood.likelihood import choose_background, likelihood_ratio_score, nll_bits_per_dim, smoothed
from unsup.ood.metrics import ood_metrics
from unsup.ood.sets import OutlierSet
from unsup.ood.typicality import typicality_scores

INLIER = "in-distribution"
HIGHER = "higher = more outlying"
FORMULAS = {
    "likelihood": "-log2 p(x) / D",
    "likelihood-ratio": "-(log2 p(x) - log2 p_background(x)) / D",
    "complexity": "(-log2 p(x) - L(x)) / D, L(x) the codec's bits",
    "typicality": "|mean over a batch of M of -log2 p(x) / D - H^|",
}


@dataclass
class Background:
    """A candidate background model: its run, its mutation rate, the model."""

    run: str
    rate: float | None
    model: torch.nn.Module
    info: dict[str, Any] = field(default_factory=dict)


def direction(score: str) -> str:
    """What ``score`` is and which way it points."""
    return f"{FORMULAS[score.split(':')[0]]}, bits/dim; {HIGHER}"


def ood_report(model: torch.nn.Module, test_x: torch.Tensor, val_x: torch.Tensor,
               outliers: Sequence[OutlierSet], *, representation: str = "native",
               backgrounds: Sequence[Background] = (), codecs: Sequence[str] = ("png",),
               typicality_batch: int = 10, batch_size: int = 256, seed: int = 0,
               show_progress: bool = True) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Score in-distribution test inputs and every outlier set by every score.

    Args:
        model: the in-distribution likelihood model.
        test_x: in-distribution test inputs (the negatives).
        val_x: held-out in-distribution inputs (``H^``, the noise-rate rule).
        outliers: the outlier sets, already in the run's form.
        representation: the run's representation (to requantise the smoothed images).
        backgrounds: candidate background models (none: no likelihood ratio); with several, the
            noise-rate rule of :mod:`unsup.ood.likelihood` picks one.
        codecs: codecs of the input-complexity score (none: no such score).
        typicality_batch: ``M``, inputs per batch of the typicality test.
        batch_size: examples per forward pass.
        seed: seed of the typicality batches.
        show_progress: progress bars.

    Returns:
        The result (``metrics[score][set]``, ``directions``, ``sets``, ``entropy_bpd``, the
        background choice, the codecs) and the raw scores ``scores[score][set]`` (for histograms).
    """
    spec = model.spec
    sets = {INLIER: test_x, **{o.name: o.x for o in outliers}}

    def nll(m: torch.nn.Module, x: torch.Tensor, what: str) -> np.ndarray:
        return nll_bits_per_dim(m, x, batch_size, desc=what if show_progress else None)

    nlls = {name: nll(model, x, f"NLL {name}") for name, x in sets.items()}
    nll_val = nll(model, val_x, "NLL validation")
    scores: dict[str, dict[str, np.ndarray]] = {"likelihood": nlls}
    result: dict[str, Any] = {"sets": {}, "entropy_bpd": float(np.mean(nll_val[np.isfinite(nll_val)])),
                              "validation_examples": len(val_x), "typicality_batch": typicality_batch}

    if backgrounds:
        result["background"], chosen = _choose(model, backgrounds, val_x, nll_val, representation, nll)
        bg = {name: nll(chosen.model, x, f"background NLL {name}") for name, x in sets.items()}
        scores["likelihood-ratio"] = {k: likelihood_ratio_score(nlls[k], bg[k]) for k in sets}
        for name in sets:
            result["sets"].setdefault(name, {})["background_bpd"] = _mean(bg[name])

    for codec in codecs:
        lengths = {name: code_lengths_bits(x, spec.levels, codec, desc=f"{codec} {name}" if show_progress
                                           else None) for name, x in sets.items()}
        scores[f"complexity:{codec}"] = {k: complexity_score(nlls[k], lengths[k], spec.dims) for k in sets}
        for name in sets:
            result["sets"].setdefault(name, {})[f"{codec}_bpd"] = _mean(lengths[name] / spec.dims)
    result["codecs"] = {c: CODECS[c][0] for c in codecs}

    scores["typicality"] = {k: typicality_scores(v, result["entropy_bpd"], typicality_batch, seed)
                            for k, v in nlls.items()}
    for name, x in sets.items():
        conversion = next((o.conversion for o in outliers if o.name == name), "the run's test split")
        result["sets"].setdefault(name, {}).update(n=len(x), nll_bpd=_mean(nlls[name]), conversion=conversion)
    result["metrics"] = {score: {name: ood_metrics(per_set[INLIER], per_set[name])
                                 for name in per_set if name != INLIER}
                         for score, per_set in scores.items()}
    result["directions"] = {score: direction(score) for score in scores}
    return result, scores


def _mean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def _choose(model, backgrounds, val_x, nll_val, representation, nll):
    """The noise-rate rule over the candidates: (the report of the choice, the chosen one)."""
    if len(backgrounds) == 1:
        b = backgrounds[0]
        return {"run": b.run, "mutate": b.rate, **b.info, "rule": "one candidate given"}, b
    corrupt = smoothed(val_x, model.spec, representation)
    nll_corrupt = nll(model, corrupt, "NLL smoothed validation")
    pairs = [(nll(b.model, val_x, f"background {i} NLL validation"),
              nll(b.model, corrupt, f"background {i} NLL smoothed validation"))
             for i, b in enumerate(backgrounds)]
    best, aurocs = choose_background(nll_val, nll_corrupt, pairs)
    b = backgrounds[best]
    return {"run": b.run, "mutate": b.rate, **b.info,
            "rule": "the candidate whose likelihood ratio best separates validation images from "
                    "their 3x3-box-smoothed copies (AUROC); in-distribution data only",
            "candidates": [{"run": c.run, "mutate": c.rate, "selection_auroc": a}
                           for c, a in zip(backgrounds, aurocs, strict=True)]}, b


def format_table(result: dict[str, Any], metric: str = "auroc") -> str:
    """One row per score, one column per outlier set: ``metric`` (auroc, aupr or fpr95)."""
    metrics = result["metrics"]
    names = list(next(iter(metrics.values())))
    width = max(len(s) for s in metrics) + 2
    cols = [max(len(n), 6) + 2 for n in names]
    lines = [f"{metric.upper()} (outliers positive; every score higher = more outlying)",
             "score".ljust(width) + "".join(n.rjust(c) for n, c in zip(names, cols, strict=True))]
    for score, per_set in metrics.items():
        lines.append(score.ljust(width) + "".join(f"{per_set[n][metric]:.3f}".rjust(c)
                                                  for n, c in zip(names, cols, strict=True)))
    return "\n".join(lines)


def format_sets(result: dict[str, Any]) -> str:
    """Each set's size, mean NLL and codec bits/dim, and how it was converted."""
    lines = []
    for name, s in result["sets"].items():
        extra = "".join(f", {k.removesuffix('_bpd')} {v:.3f}" for k, v in s.items()
                        if k.endswith("_bpd") and k != "nll_bpd")
        lines.append(f"  {name}: {s['n']} examples, NLL {s['nll_bpd']:.3f} bits/dim{extra} "
                     f"({s['conversion']})")
    return "\n".join(lines)


def save_histograms(scores: dict[str, dict[str, np.ndarray]], out_dir: str | Path, prefix: str = "ood",
                    title: str = "") -> list[Path]:
    """One PNG per score, ``OUT_DIR/PREFIX-SCORE.png``: a histogram per set on shared bins (values
    beyond the 0.5-99.5 % quantiles of all sets together are drawn in the edge bins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for score, per_set in scores.items():
        pooled = np.concatenate([v[np.isfinite(v)] for v in per_set.values()])
        lo, hi = np.quantile(pooled, [0.005, 0.995]) if len(pooled) else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 61)
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (name, v) in enumerate(per_set.items()):
            v = np.clip(np.nan_to_num(v, nan=hi, posinf=hi, neginf=lo), lo, hi)
            ax.hist(v, bins=bins, density=True, histtype="stepfilled" if i == 0 else "step",
                    alpha=0.35 if i == 0 else 1.0, linewidth=1.5, label=f"{name} ({len(v)})")
        unit = "batches of M" if score == "typicality" else "examples"
        ax.set_xlabel(f"{score}, bits/dim ({HIGHER})")
        ax.set_ylabel(f"density over {unit}")
        ax.set_title(f"{title} {score} = {FORMULAS[score.split(':')[0]]}".strip(), fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{prefix}-{score.replace(':', '-')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
