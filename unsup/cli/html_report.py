"""``unsup report RUN...``: one self-contained HTML page on trained runs (:mod:`unsup.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unsup.cli.options import HelpFormatter
from unsup.errors import ConfigError
from unsup.report import collect_run, short_names, write_report

DESCRIPTION = """Write one HTML page about one or more run directories: for each run the model, its
configuration and data, the training budget and time, training and validation curves, every
figure its evaluations left (test bits/dim, exact or a bound; the importance-sampled NLL with its
standard error; sample quality beside its floor; probe accuracies; compression; outlier AUROC;
sampling time) and its pictures. Several runs also get a comparison table, a column per figure
with the best value marked, and trade-off charts (bits/dim or KID against sampling time).

The page is one file: pictures are embedded, nothing is fetched, it opens from disk and can be
mailed. Every file of a run is optional; the page shows what is there."""

EPILOG = """examples:
  unsup report runs/digits -o digits.html
  unsup report runs/made runs/pixelcnn runs/vae -o report.html --title "8x8 digits"

It reads DIR/best.safetensors (metadata only), metrics.csv, train.json and test.json (unsup train),
eval.json (unsup eval, with --sample-quality N for sample quality and sampling time), probe.json
(unsup probe), ood.json (unsup ood) and compress.json (unsup compress --json > DIR/compress.json),
and the PNG files in DIR."""


def add_parser(sub: Any) -> None:
    r = sub.add_parser("report", help="one HTML page on trained runs, compared",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `unsup train --out`")
    r.add_argument("-o", "--out", default="report.html", metavar="FILE",
                   help="the HTML file to write (default: report.html)")
    r.add_argument("--title", default=None, help="the page's title (default: the runs' names)")


def cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give the HTML file to write, "
                          f"e.g. {out / 'report.html'}")
    runs = [collect_run(path, name) for path, name in zip(args.runs, short_names(args.runs), strict=True)]
    write_report(runs, out, args.title)
    print(f"wrote {out} ({len(runs)} run{'s' if len(runs) != 1 else ''}); open it in a browser")
    return 0
