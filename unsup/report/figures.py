"""The report's pictures as ``data:image/png;base64,...`` URIs, so that the page is one file.

Charts are drawn by :func:`unsup.plots.save_chart` (matplotlib, Agg backend), the same line charts
as the models' own and the benchmarks'; the run's own PNG files are embedded as they are.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any

from unsup.plots import save_chart
from unsup.report.collect import Run
from unsup.report.metrics import TRADE_OFFS, Figure, column

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIRST = ("loss", "bpd", "nll")  # the curves people look for first; the rest follow by name
SPLIT_LABELS = {"train": "training", "val": "validation"}


def data_uri(png: bytes) -> str:
    """A PNG file's bytes as a data URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def chart_uri(chart: dict[str, Any]) -> str:
    """A :func:`unsup.plots.save_chart` chart as a data URI."""
    with tempfile.TemporaryDirectory(prefix="unsup-report-") as tmp:
        path = Path(tmp) / "chart.png"
        save_chart(chart, path)
        return data_uri(path.read_bytes())


def curve_charts(run: Run) -> list[dict[str, Any]]:
    """One chart per logged metric that changes over training, training and validation together."""
    names = [m for m in FIRST if m in run.curves] + sorted(set(run.curves) - set(FIRST))
    charts = []
    for metric in names:
        splits = run.curves[metric]
        if not any(len(set(values)) > 1 for _, values in splits.values()):
            continue  # a constant (a fixed learning rate) or a single point says nothing as a curve
        charts.append({"title": f"{metric} during training", "xlabel": "step", "ylabel": metric,
                       "series": {SPLIT_LABELS.get(s, s): xy for s, xy in sorted(splits.items())},
                       "legend": True})
    return charts


def comparison_curves(runs: list[Run]) -> list[dict[str, Any]]:
    """Validation curves of several runs on one chart, for each metric two or more runs logged."""
    charts = []
    for metric in FIRST:
        series = {r.name: r.curves[metric]["val"] for r in runs  # a single point is no curve
                  if len(r.curves.get(metric, {}).get("val", ((),))[0]) >= 2}
        if len(series) >= 2:
            charts.append({"title": f"validation {metric}", "xlabel": "step", "ylabel": metric,
                           "series": series})
    return charts


def trade_off_charts(names: list[str], figures: list[dict[str, Figure]]) -> list[dict[str, Any]]:
    """Scatter charts of :data:`unsup.report.metrics.TRADE_OFFS`, one point per run, drawn when at
    least two runs have both figures."""
    charts = []
    for x, y in TRADE_OFFS:
        points = {n: ([f[x].value], [f[y].value])
                  for n, f in zip(names, figures, strict=True) if x in f and y in f}
        xs, ys = ({v[i][0] for v in points.values()} for i in (0, 1))
        if len(points) >= 2 and len(xs) > 1 and len(ys) > 1:  # runs that differ in both
            cx, cy = column(x), column(y)
            better = f" ({cy.better} is better)" if cy.better else ""
            charts.append({"title": f"{cy.label}{better} against {cx.label}", "xlabel": cx.label,
                           "ylabel": cy.label, "series": points, "legend": True})
    return charts


def embedded_images(run: Run) -> list[dict[str, str]]:
    """The run's PNG files as ``{"name", "uri"}``; a file that is not a PNG is left out."""
    out = []
    for path in run.images:
        data = path.read_bytes()
        if data.startswith(PNG_SIGNATURE):
            out.append({"name": path.name, "uri": data_uri(data)})
    return out
