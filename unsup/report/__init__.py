"""Reports on trained runs: one self-contained HTML page for one or more run directories.

:func:`collect_run` reads what a run directory holds (:mod:`unsup.report.collect`), the figures and
which way each is better live in :mod:`unsup.report.metrics`, and :func:`write_report` draws the page
(:mod:`unsup.report.html`, charts in :mod:`unsup.report.figures`). ``unsup report RUN... -o FILE`` is
the command over them.
"""

from unsup.report.collect import Run, collect_run, short_names
from unsup.report.html import render, write_report

__all__ = ["Run", "collect_run", "render", "short_names", "write_report"]
