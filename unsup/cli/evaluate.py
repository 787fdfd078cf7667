"""``unsup eval RUN``: a trained run's test NLL and bits/dim, exact or a bound, with its errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from unsup.cli.options import (
    HelpFormatter,
    estimator_parent,
    run_data_args,
    run_parent,
    sampling_options,
    sampling_parent,
    set_estimator,
)
from unsup.cli.report import describe, evaluate_report, original_data_report
from unsup.data import SPLITS
from unsup.errors import ConfigError
from unsup.quality import sample_quality_report
from unsup.train import load_run, select_device
from unsup.train.runs import original_view
from unsup.train.trainer import seed_everything


def add_parser(sub: Any) -> None:
    e = sub.add_parser("eval", parents=[run_parent(), sampling_parent(), estimator_parent()],
                       help="test NLL and bits/dim of a trained run", formatter_class=HelpFormatter,
                       epilog="writes DIR/eval.json (the latest evaluation; `unsup report DIR` shows it)\n\n"
                       "example:\n  unsup eval runs/digits --json\n"
                       "  unsup eval runs/vae --importance-samples 5000 --examples 1000")
    e.add_argument("run", metavar="DIR", help="a run directory written by `unsup train`")
    e.add_argument("--split", choices=SPLITS, default="test", help="which split to score")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--batch-size", type=int, default=64, help="examples per evaluation batch")
    e.add_argument("--importance-samples", type=int, default=None, metavar="K",
                   help="latent-variable models (vae, iwae, ...): importance samples of the "
                   "log p(x) estimate (default: the model's eval_samples; the literature uses 5000)")
    e.add_argument("--examples", type=int, default=None, metavar="N",
                   help="evaluate on the first N examples of the split only (say so when you "
                   "report the figure)")
    e.add_argument("--sample-quality", type=int, default=None, metavar="N",
                   help="also draw N samples and score them in the features of the classifier that "
                   "ships for the run's dataset: FD, KID, precision/recall, density/coverage and the "
                   "classifier score, each beside its floor (N real training against N real test "
                   "examples); N = 1000 or more for stable FDs")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of stochastic estimates (importance samples, dequantisation noise, "
                   "samples)")


def cmd_eval(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = select_device(args.device)
    seed_everything(args.seed)
    model, meta = load_run(args.run, args.checkpoint, device=device)
    if args.importance_samples is not None:
        model.use_importance_samples(args.importance_samples)  # refused for exact scores
    estimator = set_estimator(args, model)
    ds = run_data_args(args, meta).load(args.split)
    if args.examples is not None:
        if not 1 <= args.examples <= len(ds) or not hasattr(ds, "subset"):
            raise ConfigError(f"--examples must be in [1, {len(ds)}] (the {args.split} split's "
                              f"size), got {args.examples}")
        ds = ds.subset(torch.arange(args.examples), ds.split)
    result = evaluate_report(model, ds, meta, args.batch_size)
    if args.importance_samples is not None:
        result["importance_samples"] = args.importance_samples
    if estimator:
        result["estimator"] = estimator
    original, bound = original_data_report(model, meta, args.split, args.batch_size, args.data_dir, device)
    result.update(bound)
    if args.sample_quality is not None:
        if not model.samples:
            raise ConfigError(f"--sample-quality needs a model that samples; {meta['model']} does not")
        view = original_view(model, meta, device)  # a prior over codes: its decoded images
        scored, data = (model, run_data_args(args, meta)) if view is None else view
        result["sample_quality"] = sample_quality_report(scored, data, args.sample_quality,
                                                         args.batch_size, args.seed, not args.json,
                                                         sampling_options(args, scored))
    result["options"] = {k: v for k, v in vars(args).items() if k not in ("command", "func", "json")}
    # the latest evaluation stays beside the run, where `unsup report` finds it
    (Path(args.run) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result) if args.json else describe(result))
    return 0
