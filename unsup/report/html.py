"""Render runs as one self-contained HTML page (``unsup report``).

The page is a Jinja2 template (``templates/report.html.j2``, autoescaped: run names, options and
JSON strings are text, never markup) filled with plain dicts of strings made here; its pictures are
data URIs (:mod:`unsup.report.figures`) and its style is inline, so the file opens from disk with no
network. Per run: what was trained on what, the curves, every evaluation, the pictures. For several
runs first a comparison table, best value of each column marked (directions in
:mod:`unsup.report.metrics`), and the trade-off charts.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from unsup.report import figures as fig
from unsup.report.collect import Run
from unsup.report.metrics import (
    QUALITY,
    Figure,
    best_runs,
    column,
    format_value,
    likelihood_figures,
    likelihood_kind,
    order,
    run_figures,
)
from unsup.version import __version__


def render(runs: list[Run], title: str | None = None) -> str:
    """The page for ``runs`` as a string."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("unsup.report", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    figures = [run_figures(r.files) for r in runs]
    context = {
        "title": title or default_title(runs),
        "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "runs": [run_context(r, f, f"run-{i + 1}")
                 for i, (r, f) in enumerate(zip(runs, figures, strict=True))],
        "comparison": comparison(runs, figures) if len(runs) > 1 else None,
    }
    return env.get_template("report.html.j2").render(**context)


def default_title(runs: list[Run]) -> str:
    """The runs' names, or for more than three their number and the directory they share."""
    if len(runs) <= 3:
        return "unsup report: " + ", ".join(r.name for r in runs)
    common = Path(os.path.commonpath([r.path.resolve() for r in runs]))
    return f"unsup report: {len(runs)} runs in {common}"


def write_report(runs: list[Run], out: str | Path, title: str | None = None) -> Path:
    """Write the page for ``runs`` to ``out`` (parents made); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs, title), encoding="utf-8")
    return out


def task(run: Run) -> str:
    """The data a run's figures are about: dataset and representation (``fashion-mnist``,
    ``fashion-mnist · binary``)."""
    data = run.meta.get("data") or {}
    name = data.get("name") or next((f.get("data") for f in run.files.values() if f and f.get("data")), "")
    rep = data.get("representation") or next(
        (f.get("representation") for f in run.files.values() if f and f.get("representation")), "")
    return " · ".join(str(x) for x in (name, rep) if x and x != "native")


def comparison(runs: list[Run], figures: list[dict[str, Figure]]) -> dict[str, Any]:
    """The comparison table (a column per figure any run has, the best marked) and its charts."""
    keys = order(set().union(*figures))
    columns = [column(k) for k in keys]
    tasks = [task(r) for r in runs]
    rows = [{"name": r.name, "anchor": f"run-{i + 1}", "model": r.model or "", "task": t, "cells": []}
            for i, (r, t) in enumerate(zip(runs, tasks, strict=True))]
    for c in columns:
        values = [f[c.key].value if c.key in f else None for f in figures]
        # figures of different data (8-bit against binarised, one dataset against another) are not
        # comparable: the best is marked among the runs of the same data and representation only
        best = set().union(*(
            {members[j] for j in best_runs([values[i] for i in members], c.better)}
            for members in ([i for i, t in enumerate(tasks) if t == one] for one in set(tasks))))
        for i, f in enumerate(figures):
            cell = f.get(c.key)
            rows[i]["cells"].append({
                "text": format_value(cell.value, c.digits) if cell else "—",
                "spread": f"± {format_value(cell.se, c.digits)} {cell.spread}" if cell and cell.se else "",
                "best": i in best, "note": cell.note if cell else ""})
    charts = fig.trade_off_charts([r.name for r in runs], figures) + fig.comparison_curves(runs)
    return {"columns": [{"label": c.label, "help": c.help + (f" ({c.better} is better)" if c.better else ""),
                         "better": c.better or ""} for c in columns],
            "rows": rows, "mixed": len(set(tasks)) > 1,
            "charts": [{"title": c["title"], "uri": fig.chart_uri(c)} for c in charts]}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "—" if value is None else str(value)


def _pairs(d: dict[str, Any] | None) -> list[tuple[str, str]]:
    return [(k, _text(v)) for k, v in (d or {}).items()]


def run_context(run: Run, figures: dict[str, Figure], anchor: str) -> dict[str, Any]:
    """Everything the page shows of one run, as strings."""
    meta, files, ckpt = run.meta, run.files, run.checkpoint
    data = meta.get("data") or {}
    train, test = files.get("train") or {}, files.get("test") or {}
    overview = [("model", run.model), ("preset", meta.get("preset")),
                ("data", data.get("name") or test.get("data")),
                ("representation", data.get("representation") or test.get("representation")),
                ("data options", data.get("options") or None),
                ("checkpoint step", ckpt.get("step")), ("steps reached", train.get("steps"))]
    cfg = ckpt.get("train_config") or {}
    budget = ", ".join(f"{k} {cfg[k]}" for k in ("steps", "epochs", "time") if cfg.get(k))
    overview.append(("budget", budget or None))
    if "train_seconds" in train:
        overview.append(("training time", f"{train['train_seconds']:.1f} s"
                         + (f" ({train['examples_per_second']:.0f} examples/s)"
                            if "examples_per_second" in train else "")))
    if "seconds" in train and "total" in train["seconds"]:
        overview.append(("whole run", f"{train['seconds']['total']:.1f} s"))
    if sel := train.get("selected_by"):
        extreme = "highest" if sel.get("higher_is_better") else "lowest"
        overview.append(("checkpoint selected by", f"{extreme} "
                         f"validation {sel.get('metric')}: {_text(sel.get('value'))}"))
    return {
        "anchor": anchor, "name": run.name, "path": str(run.path.resolve()),
        "model": run.model or "unknown model",
        "overview": [(k, _text(v)) for k, v in overview if v not in (None, "", {})],
        "model_config": _pairs(meta.get("model_config")), "train_config": _pairs(cfg),
        "evaluations": evaluations(files), "quality": quality(files.get("eval")),
        "probe": probe_table(files.get("probe")), "ood": ood_table(files.get("ood")),
        "compress": compress_pairs(files.get("compress")),
        "curves": [{"title": c["title"], "uri": fig.chart_uri(c)} for c in fig.curve_charts(run)],
        "images": fig.embedded_images(run),
        "empty": not (figures or run.curves or run.images or meta),
    }


def evaluations(files: dict[str, dict[str, Any] | None]) -> list[dict[str, str]]:
    """A row per likelihood evaluation: the end-of-training test and the latest ``unsup eval``."""
    rows = []
    for name, source in (("test", "end of training (test.json)"), ("eval", "unsup eval (eval.json)")):
        r = files.get(name)
        if not r or "bpd" not in r:
            continue
        notes = []
        if r.get("importance_samples"):
            notes.append(f"{r['importance_samples']} importance samples")
        if "partial" in r:
            notes.append(f"a random {r['partial']['n']} of {r['partial']['of']} (--eval-time ran out)")
        if "image_bpd_bound" in r:
            notes.append(f"images ≤ {r['image_bpd_bound']:.4f} bits/dim")
        if lat := r.get("latent"):
            notes.append(f"KL {lat['kl']:.3f} nats, {lat['active_units']}/{lat['latent_dims']} active units")
        figs = likelihood_figures(r)  # the error that matters, as the comparison table shows it
        bpd, nll = figs["bpd"], figs["nll"]
        rows.append({"source": source, "split": _text(r.get("split")), "n": _text(r.get("n")),
                     "step": _text(r.get("step")),
                     "bpd": f"{bpd.value:.4f}" + (f" ± {bpd.se:.4f} {bpd.spread}" if bpd.se else ""),
                     "kind": likelihood_kind(r),
                     "nll": f"{nll.value:.3f}" + (f" ± {nll.se:.3f} {nll.spread}" if nll.se else ""),
                     "notes": "; ".join(notes)})
    return rows


def quality(ev: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sample-quality table of ``eval.json``: each figure beside its floor."""
    if not ev or "sample_quality" not in ev:
        return None
    q = ev["sample_quality"]
    s, floor = q["samples"], q.get("floor", {})
    rows = []
    for k, label, better, digits, text in QUALITY:
        if k in s:
            sd = s.get(f"{k}_sd")
            rows.append({"label": label, "better": better, "help": text,
                         "value": format_value(s[k], digits)
                         + (f" ± {format_value(sd, digits)}" if sd else ""),
                         "floor": format_value(floor.get(k), digits) if k in floor else "—"})
    info = [f"{q['n']} samples", str(q.get("features", ""))]
    if "classifier" in q:
        info.append(f"classifier test accuracy {100 * q['classifier']['test_accuracy']:.1f} %")
    if "class_accuracy" in s:
        info.append(f"samples in the class they were drawn for: {100 * s['class_accuracy']:.1f} %")
    if q.get("sampling_seconds") is not None:
        cpu = f", {q['sampling_cpu_seconds']:.2f} CPU s" if "sampling_cpu_seconds" in q else ""
        info.append(f"sampling {q['sampling_seconds']:.2f} s ({q['sampling_seconds'] / q['n']:.4f} s "
                    f"per sample{cpu})")
    return {"info": [i for i in info if i], "rows": rows}


def probe_table(probe: dict[str, Any] | None) -> dict[str, Any] | None:
    """Test accuracy of each probe on each feature set (the run's and the baselines')."""
    if not probe or "features" not in probe:
        return None
    probes = [p for p in ("linear", "knn", "mlp") if any(p in r for r in probe["features"].values())]
    rows = [{"name": name, "dim": _text(r.get("dim")),
             "cells": [f"{100 * r[p]['accuracy']:.1f} %" if p in r else "—" for p in probes]}
            for name, r in probe["features"].items()]
    info = [f"probes fitted on {probe.get('labels')} of the training labels "
            f"({probe.get('labelled')} examples)"]
    if "chance" in probe:
        info.append(f"chance {100 * probe['chance']:.1f} %")
    for name, r in probe.get("finetune", {}).items():
        info.append(f"fine-tuned ({name}): {100 * r['accuracy']:.1f} %")
    return {"probes": probes, "rows": rows, "info": info}


def ood_table(ood: dict[str, Any] | None) -> dict[str, Any] | None:
    """AUROC of each outlier score against each outlier set."""
    if not ood or "metrics" not in ood:
        return None
    sets = sorted({s for m in ood["metrics"].values() for s in m})
    rows = [{"score": score, "direction": ood.get("directions", {}).get(score, ""),
             "cells": [f"{m[s]['auroc']:.3f}" if s in m else "—" for s in sets]}
            for score, m in ood["metrics"].items()]
    info = [f"{ood.get('likelihood', '')} likelihood"]
    if "entropy_bpd" in ood:
        info.append(f"entropy estimate {ood['entropy_bpd']:.3f} bits/dim")
    return {"sets": sets, "rows": rows, "info": info}


def compress_pairs(comp: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What ``unsup compress --json`` reported, with the sizes people read first."""
    if not comp:
        return []
    labels = {"count": "examples", "bytes": "bytes", "bits_per_dim": "coded bits/dim",
              "nll_bits_per_dim": "model NLL bits/dim", "overhead": "overhead over the NLL",
              "net_bits_per_dim": "net bits/dim (bits-back)",
              "neg_elbo_bits_per_dim": "negative ELBO bits/dim"}
    out = [(label, f"{100 * comp[k]:+.2f} %" if k == "overhead" else _text(comp[k]))
           for k, label in labels.items() if k in comp]
    return out + [(k, _text(v)) for k, v in comp.items() if k not in labels]
