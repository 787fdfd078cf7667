"""The ``unsup`` command line: ``train``, ``eval``, ``sample``, ``probe``, ``words``, ``list``,
``compress``, ``decompress``, ``ood``, ``report``.

One module per command, each a thin layer over the library: it declares its parser
(``add_parser``) and runs (``cmd_*``). Data come from :class:`unsup.data.DataArgs`, models from
:func:`unsup.create` or :func:`unsup.train.load_run`, training from :class:`unsup.train.Trainer`;
what a model can do is asked of the model (:class:`unsup.models.base.Model`), never of its class.
Errors the user can fix are printed as one line (``unsup: error: ...``) with exit status 2; a run
stopped by Ctrl-C or SIGTERM exits with 130 or 143 after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from unsup import data
from unsup.cli import codec, evaluate, html_report, listing, ood, probe, sample, train, words
from unsup.cli.options import HelpFormatter
from unsup.errors import Interrupted, UnsupError
from unsup.memory import keep_freed_memory
from unsup.models import MODELS
from unsup.models import names as model_names

DESCRIPTION = """Deep unsupervised learning: train, evaluate, sample and probe models.

Start with:
  unsup train pixelcnn --data digits --represent binary --steps 500 --out runs/digits
  unsup eval runs/digits
  unsup sample runs/digits --n 64 --out samples.png
  unsup probe runs/vae --labels 10%    (models with an encoder: linear/kNN/MLP probes of the features)
  unsup compress runs/digits --split test -o test.unsupz    (lossless coding, autoregressive models)
  unsup ood runs/fashion --outliers mnist digits noise    (outlier detection with a likelihood model)
  unsup report runs/digits runs/vae -o report.html    (one HTML page: curves, figures, samples, compared)
"""

COMMANDS = {"train": (train.add_parser, train.cmd_train), "eval": (evaluate.add_parser, evaluate.cmd_eval),
            "sample": (sample.add_parser, sample.cmd_sample), "probe": (probe.add_parser, probe.cmd_probe),
            "words": (words.add_parser, words.cmd_words), "list": (listing.add_parser, listing.cmd_list),
            "compress": (codec.add_parser, codec.cmd_compress),
            "decompress": (codec.add_parser_decompress, codec.cmd_decompress),
            "ood": (ood.add_parser, ood.cmd_ood),
            "report": (html_report.add_parser, html_report.cmd_report)}


def build_parser(model: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``model``, ``train`` also has that model's own options."""
    p = argparse.ArgumentParser(prog="unsup", description=DESCRIPTION, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add, _) in COMMANDS.items():
        add(sub, model) if name == "train" else add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # reuse freed activations instead of page-faulting fresh ones (unsup.memory)
    try:
        data.names()  # register all sources
        model_names()  # and all models
        model = argv[1] if len(argv) > 1 and argv[0] == "train" and argv[1] in MODELS else None
        args = build_parser(model).parse_args(argv)
        return COMMANDS[args.command][1](args)
    except Interrupted as e:
        print(f"unsup: {e}", file=sys.stderr)
        return e.exit_code
    except UnsupError as e:
        print(f"unsup: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training: checkpoints are atomic
        print("unsup: interrupted at once; a training run continues from its last checkpoint with "
              "the same command and --resume", file=sys.stderr)
        return 130
