"""``unsup ood RUN``: how well a trained likelihood model tells its own data from outliers, by plain
likelihood, likelihood ratio, input complexity and the typicality test (:mod:`unsup.ood`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from unsup.cli.options import HelpFormatter, estimator_parent, run_data_args, run_parent, set_estimator
from unsup.data import DATASETS, TensorDataset
from unsup.data.registry import resolve
from unsup.errors import ConfigError, DataError
from unsup.models.base import LikelihoodModel
from unsup.ood import Background, load_outlier_set, ood_report, save_histograms
from unsup.ood.complexity import CODECS, check_codec
from unsup.ood.report import format_sets, format_table
from unsup.ood.sets import SYNTHETIC, parse_outlier, subsample
from unsup.train import load_run, select_device
from unsup.train.runs import original_view
from unsup.train.trainer import seed_everything

DESCRIPTION = """\
Score the run's test split (in-distribution, the negatives) and each outlier set (the positives)
with every score, and report AUROC, AUPR and FPR at 95 % TPR of each. Every score is oriented so
that higher = more outlying:
  likelihood          -log2 p(x) / D (bits/dim); fails when outliers are simpler than the data
  likelihood-ratio    -(log p(x) - log p0(x)), p0 a background model of the same family trained on
                      mutated inputs (`unsup train ... --data-opt mutate=0.2`); needs --background
  complexity:CODEC    -log2 p(x) - L(x), L the bits of a real lossless codec's output (--codec)
  typicality          |mean NLL of a batch of M inputs - mean NLL of the validation split|
Outlier sets are converted to the run's form: RGB to grey (or grey to RGB), resized bilinearly to
its H x W and requantised to its levels and representation. Writes OUT/ood.json and one histogram
per score, OUT/ood-SCORE.png."""

EPILOG = """\
examples:
  unsup train gated-pixelcnn --data fashion-mnist --time 12m --out runs/fashion
  unsup train gated-pixelcnn --data fashion-mnist --data-opt mutate=0.1 --time 6m --out runs/bg
  unsup ood runs/fashion --background runs/bg --outliers mnist digits shapes noise constant \\
      cifar10-jpeg=PATH/TO/cifar10-jpeg --examples 2000
  unsup ood runs/vae --importance-samples 100 --outliers digits noise --json
With several --background runs (one per mutation rate) the one whose likelihood ratio best separates
validation images from their smoothed copies is used: the noise rate is chosen on
in-distribution data only."""


def add_parser(sub: Any) -> None:
    o = sub.add_parser("ood", parents=[run_parent(), estimator_parent()],
                       help="outlier detection with a likelihood model (likelihood, likelihood "
                       "ratio, input complexity, typicality)",
                       formatter_class=HelpFormatter, description=DESCRIPTION, epilog=EPILOG)
    o.add_argument("run", metavar="RUN",
                   help="a run of a likelihood model (autoregressive, flow, VAE family)")
    o.add_argument("--outliers", nargs="+", default=list(SYNTHETIC), metavar="SET",
                   help="outlier sets: noise, constant, or any dataset (`unsup list`), as NAME or "
                   "NAME=DIR where DIR holds its files (default: noise constant)")
    o.add_argument("--background", nargs="+", default=None, metavar="RUN",
                   help="background run(s) of the same family on the same data trained with "
                   "--data-opt mutate=RATE; enables the likelihood-ratio score")
    o.add_argument("--examples", type=int, default=2000, metavar="N",
                   help="at most N test, N validation and N examples of each outlier set, seeded "
                   "subsets (default: 2000)")
    o.add_argument("--codec", default="png", metavar="LIST",
                   help=f"codecs of the input-complexity score, comma-separated: {', '.join(CODECS)} "
                   "(jpegxl needs imagecodecs), or none (default: png)")
    o.add_argument("--typicality-batch", type=int, default=10, metavar="M",
                   help="inputs per batch of the typicality test (default: 10)")
    o.add_argument("--importance-samples", type=int, default=None, metavar="K",
                   help="latent-variable models: importance samples of each log p(x) estimate "
                   "(default: the model's eval_samples)")
    o.add_argument("--split", choices=("val", "test"), default="test",
                   help="which split of each outlier dataset (default: test)")
    o.add_argument("--batch-size", type=int, default=128, help="examples per forward pass")
    o.add_argument("--out", default=None, metavar="DIR", help="where ood.json and the histograms go "
                   "(default: RUN)")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--seed", type=int, default=0,
                   help="seed of the subsets, synthetic sets, typicality batches and stochastic scores")


def _check_args(args: argparse.Namespace) -> list[str]:
    """Refuse bad options before any model is loaded; returns the codecs."""
    for flag, value in (("--examples", args.examples), ("--typicality-batch", args.typicality_batch),
                        ("--batch-size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    for item in args.outliers:
        name, _ = parse_outlier(item)
        if name not in SYNTHETIC:
            try:
                DATASETS.get(resolve(name)[0])
            except ConfigError as e:
                raise ConfigError(f"outlier set: {e} (or the synthetic sets "
                                  f"{', '.join(SYNTHETIC)})") from None
    if len({parse_outlier(i)[0] for i in args.outliers}) != len(args.outliers):
        raise ConfigError("each outlier set may be given once")
    codecs = [c for c in args.codec.split(",") if c and c != "none"]
    for c in codecs:
        if c not in CODECS:
            raise ConfigError(f"unknown codec {c!r}; expected {', '.join(CODECS)} or none")
    return codecs


def _likelihood_run(path: str, args: argparse.Namespace, device: Any, what: str):
    """A run's likelihood model (of images, for a prior over VQ-VAE codes) and its data arguments."""
    model, meta = load_run(path, args.checkpoint, device=device)
    data = run_data_args(args, meta)
    view = original_view(model, meta, device)
    if view is not None:
        model, data = view
    if not isinstance(model, LikelihoodModel):
        raise ConfigError(f"{what} {path} is a {meta['model']} run, which has no likelihood: ood needs "
                          f"log p(x) (autoregressive models, flows, the VAE family, diffusion bounds)")
    if model.num_classes is not None:
        raise ConfigError(f"{what} {path} is class-conditional: it scores log p(x | y), and outliers "
                          f"have no class; train it without --conditional")
    if args.importance_samples is not None:
        model.use_importance_samples(args.importance_samples)  # refused for exact scores
    set_estimator(args, model)
    return model, data, meta


def cmd_ood(args: argparse.Namespace) -> int:
    codecs = _check_args(args)
    device = select_device(args.device)
    seed_everything(args.seed)
    model, data, meta = _likelihood_run(args.run, args, device, "run")
    spec = model.spec
    for c in codecs:
        check_codec(c, spec)
    backgrounds = []
    for path in args.background or []:
        bg, bg_data, bg_meta = _likelihood_run(path, args, device, "background")
        if (bg.spec.shape, bg.spec.levels) != (spec.shape, spec.levels):
            raise DataError(f"background {path} models examples of shape {bg.spec.shape} with "
                            f"levels={bg.spec.levels}; the run's are {spec.shape} with levels={spec.levels}")
        info = {"model": bg_meta["model"], "data": bg_data.name, "step": bg_meta.get("step")}
        backgrounds.append(Background(path, _rate(bg_data.options.get("mutate")), bg, info))
    test, val = (subsample(_examples(data.load(split), data.name), args.examples, args.seed)
                 for split in ("test", "val"))
    outliers = [load_outlier_set(item, spec, data.representation, args.examples, split=args.split,
                                 seed=args.seed) for item in args.outliers]
    progress = not args.json or sys.stderr.isatty()
    result, scores = ood_report(model, test, val, outliers, representation=data.representation,
                                backgrounds=backgrounds, codecs=codecs,
                                typicality_batch=args.typicality_batch, batch_size=args.batch_size,
                                seed=args.seed, show_progress=progress)
    result = {"run": str(args.run), "model": meta["model"], "step": meta.get("step"), "data": data.name,
              "representation": data.representation, "likelihood": "exact" if model.exact_likelihood
              else model.inexact_kind, "importance_samples": args.importance_samples,
              "estimator": set_estimator(args, model),
              "examples": args.examples, "seed": args.seed, **result}
    out = Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ood.json").write_text(json.dumps(result, indent=2) + "\n")
    figures = save_histograms(scores, out, "ood", title=f"{meta['model']} on {data.name}:")
    print(f"wrote {out / 'ood.json'} and {len(figures)} histograms ({out}/ood-*.png)", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{meta['model']} on {data.name} ({result['likelihood']} likelihood), {len(test)} test examples "
          f"against each outlier set; typicality on batches of {args.typicality_batch}, H^ = "
          f"{result['entropy_bpd']:.3f} bits/dim from {len(val)} validation examples")
    print(format_sets(result))
    if "background" in result:
        b = result["background"]
        print(f"  background: {b['run']} (mutate={b['mutate']}; {b['rule']})")
    for c, label in result["codecs"].items():
        print(f"  complexity:{c} uses {label}")
    print(format_table(result))
    return 0


def _examples(ds: Any, name: str) -> Any:
    if not isinstance(ds, TensorDataset):
        raise ConfigError(f"ood scores examples held in memory; {name} is a {ds.spec.kind} stream")
    return ds.x


def _rate(value: Any) -> float | None:
    return None if value is None else float(value)
