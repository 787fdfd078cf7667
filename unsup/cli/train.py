"""``unsup train MODEL``: train a model on a dataset, then report its test figures and draw it."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from unsup.cli.options import (
    HelpFormatter,
    add_data_options,
    add_dataclass_options,
    data_args,
    given,
    parse_duration,
)
from unsup.cli.pictures import write_pictures
from unsup.cli.report import describe, evaluate_report, original_data_report
from unsup.data import DataArgs, TensorDataset
from unsup.errors import ConfigError
from unsup.models import MODELS, create
from unsup.models import names as model_names
from unsup.train import LAST, TrainConfig, Trainer, distributed, load_run, load_state, select_device
from unsup.train.lock import run_lock
from unsup.train.runs import original_view
from unsup.train.trainer import seed_everything

EPILOG = """examples:
  unsup train made --data digits --represent binary --steps 2000 --out runs/made
  unsup train pixelcnn --preset course --data fashion-mnist --represent binary --time 10m --out runs/pcnn
  unsup train histogram --data toy-2d-image --epochs 20 --out runs/hist
  unsup train pixelcnn --help      (lists the model's own options and presets)

Runs write last.safetensors (resume point), best.safetensors (the checkpoint the model's rule
selects at the validations of --eval-every: the lowest validation loss; for self-supervised
representation methods the highest kNN accuracy of a labelled validation slice, logged as
knn_accuracy, or the last checkpoint when the data are unlabelled), metrics.csv,
tb/ (TensorBoard: tensorboard --logdir DIR/tb), samples.png and test.json.
Interrupted (Ctrl-C saves a checkpoint first)? `unsup train MODEL --out DIR --resume` continues
exactly where it stopped, with the run's own settings."""

# Training options a resumed run takes from the command line; every other one is the run's own
# (exact resume), and a different value given for it is reported as ignored.
RESUME_MAY_CHANGE = {"steps", "epochs", "time", "device", "progress", "tensorboard", "prefetch",
                     "keep_last", "log_every", "on_divergence", "rollback_lr_factor", "max_rollbacks"}
EVAL_SHARE = 0.8  # of --eval-time for the final validation and test; the rest for the samples


def add_parser(sub: Any, model: str | None) -> None:
    t = sub.add_parser("train", help="train a model on a dataset", epilog=EPILOG,
                       formatter_class=HelpFormatter, description="Train MODEL on a dataset, then "
                       "report its test bits/dim and save a sample grid.")
    t.add_argument("model", metavar="MODEL", help=f"one of: {', '.join(model_names())}")
    add_data_options(t)
    o = t.add_argument_group("run")
    o.add_argument("--out", required=True, metavar="DIR", help="run directory")
    o.add_argument("--preset", default=None, help="named model configuration (e.g. paper)")
    o.add_argument("--resume", action="store_true", help="continue the run in --out")
    o.add_argument("--eval-time", default="auto", metavar="DURATION",
                   type=lambda v: v if v in ("auto", "full") else parse_duration(v),
                   help="time for the end of the run: final validation, test and sample grid "
                   "(auto: as long as --time, when --time is given; full: whole splits). When it "
                   "runs out, the figures are those of a uniform random subset, said so with their "
                   "standard error, and the grid has fewer rows; `unsup eval DIR` scores the whole "
                   "split. So a --time T command ends in about 2T plus start-up")
    o.add_argument("--samples", type=int, default=64, help="samples to draw at the end (0: none)")
    o.add_argument("--no-test", action="store_true",
                   help="skip the test-set evaluation at the end (`unsup eval DIR` does it later; "
                   "the samples are still drawn)")
    training = t.add_argument_group("training (the loop's options, unsup.train.TrainConfig)")
    add_dataclass_options(training, TrainConfig, "train")
    if model is not None:
        entry = MODELS.entry(model)
        presets = entry.meta["presets"]
        group = t.add_argument_group(f"{model} options (defaults: the CPU configuration"
                                     + (f"; presets: {', '.join(presets)}" if presets else "") + ")")
        add_dataclass_options(group, entry.obj.Config, "model",
                              {a for action in t._actions for a in action.option_strings})


def cmd_train(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    MODELS.entry(args.model)  # an unknown name is an error (with suggestions) before anything else
    out = Path(args.out)
    cfg = TrainConfig(**given(args, "train"))
    cfg.validate()  # before the (possibly slow) data loading
    if args.samples < 0:
        raise ConfigError(f"--samples must be >= 0 (0: none), got {args.samples}")
    main = distributed.is_main_process()  # under torchrun rank 0 prints and writes; all evaluate
    # the whole command holds the run directory: a second run into it is refused at once
    with run_lock(out) if main else contextlib.nullcontext(out):
        if (out / LAST).exists() and not args.resume:
            raise ConfigError(f"{out} already holds a run; add --resume to continue it or choose "
                              f"another --out")
        if args.resume and not (out / LAST).exists():
            raise ConfigError(f"--resume: {out} holds no {LAST} to continue from (a run interrupted "
                              f"before its first checkpoint has nothing to resume: start it again "
                              f"without --resume)")
        return _train(args, cfg, out, main, t_start)


def _resumed(args: argparse.Namespace, cfg: TrainConfig, out: Path
             ) -> tuple[TrainConfig, dict[str, Any], DataArgs, str | None, list[str]]:
    """The run's own training config, model options, data and preset for ``--resume``, with the
    budget and run-time options (:data:`RESUME_MAY_CHANGE`) given on the command line, and the
    given options that differ from the run's (ignored, so that the run resumes exactly)."""
    state = load_state(out / LAST)
    meta, stored = state.get("meta") or {}, state.get("train_config") or {}
    if meta.get("model") != args.model:
        raise ConfigError(f"--resume: {out} holds a {meta.get('model')} run, not {args.model}; "
                          f"resume it with `unsup train {meta.get('model')} --out {out} --resume`")
    ignored: list[str] = []

    def compare(flag: str, value: Any, kept: Any) -> None:
        if value != kept and not (isinstance(value, (list, tuple)) and list(value) == kept):
            ignored.append(f"--{flag.replace('_', '-')} {value} (the run has {kept})")

    train_given, merged = given(args, "train"), dataclasses.asdict(cfg)
    for name, kept in stored.items():
        if name not in merged or name == "final_eval_time":  # set from --eval-time below
            continue
        if name not in RESUME_MAY_CHANGE and name in train_given:
            compare(name, train_given[name], kept)
        if name not in RESUME_MAY_CHANGE or name not in train_given:
            merged[name] = kept
    model_config = dict(meta.get("model_config") or {})
    for name, value in given(args, "model").items():
        compare(name, value, model_config.get(name))
    if args.preset is not None and args.preset != meta.get("preset"):
        ignored.append(f"--preset {args.preset} (the run has {meta.get('preset')})")
    data = DataArgs.from_dict(meta["data"])
    new = data_args(args, data.seed)
    for flag, key in (("data", "name"), ("represent", "representation"),
                      ("val_fraction", "val_fraction"), ("data_opt", "options")):
        if key in given(args, "data"):
            compare(flag, getattr(new, key), getattr(data, key))
    data.root = new.root if "root" in given(args, "data") else data.root  # where the files are now
    data.download = data.download or new.download
    return TrainConfig(**merged), model_config, data, meta.get("preset"), ignored


def _train(args: argparse.Namespace, cfg: TrainConfig, out: Path, main: bool, t_start: float) -> int:
    options, preset, data = given(args, "model"), args.preset, data_args(args, cfg.seed)
    if args.resume:
        cfg, options, data, stored_preset, ignored = _resumed(args, cfg, out)
        preset = None  # the stored config already holds the preset's values
        if ignored and main:
            print(f"unsup: warning: --resume continues the run exactly as it was set up; ignored: "
                  f"{'; '.join(ignored)} (train into a new --out to change them)", file=sys.stderr)
    # every split the run will use is read (and checked) before the first step
    train, val = data.load("train"), data.load("val")
    test = None if args.no_test else data.load("test")
    eval_time = cfg.time if args.eval_time == "auto" else None if args.eval_time == "full" else args.eval_time
    if eval_time is not None:  # validation and test share EVAL_SHARE of it by their sizes
        cfg.final_eval_time = EVAL_SHARE * eval_time * len(val) / (len(val) + len(test or ()))
    if cfg.batch_size > len(train) and main:
        print(f"unsup: warning: --batch-size {cfg.batch_size} is larger than the training set "
              f"({len(train)} examples): every step uses the whole set", file=sys.stderr)
    seed_everything(cfg.seed)  # initialisation is part of what --seed repeats
    model = create(args.model, data=train, preset=preset, **options)
    meta = {"model": args.model, "preset": stored_preset if args.resume else args.preset,
            "model_config": dataclasses.asdict(model.config), "spec": train.spec.to_dict(),
            "data": data.to_dict()}
    if main:
        print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
              f"{train.name} {train.spec.shape} levels={train.spec.levels}: {len(train)} train / "
              f"{len(val)} val" + (f" / {len(test)} test" if test is not None else "")
              + f"; device {select_device(cfg.device)}", file=sys.stderr)
    trainer = Trainer(model, train, val, cfg, out=out, meta=meta)
    if main and trainer.dist.enabled:
        print(f"data-parallel: {trainer.dist.world_size} processes, {trainer.device.type}; "
              f"global batch {trainer.batches.batch_size}", file=sys.stderr)
    summary = trainer.fit(resume=args.resume)
    t_eval = time.perf_counter() - summary["final_validation_seconds"]  # the end-of-run evaluation
    timing = {"training": summary["step_seconds"], "validation": summary["validation_seconds"]}
    if main:
        print(f"trained {summary['steps']} steps ({summary['examples_per_second']:.0f} examples/s); "
              f"{model.checkpoint_selection(val).describe(summary['best_val'])}", file=sys.stderr)
    result = _test(args, out, meta, test, trainer.device, cfg, timing, main, eval_time, t_eval)
    timing["total"] = time.perf_counter() - t_start
    if main:
        (out / "train.json").write_text(json.dumps({**summary, "seconds": timing}, indent=2) + "\n")
        print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items())
              + (f" (--time {cfg.time:g} s is the training budget)" if cfg.time else ""),
              file=sys.stderr)
        if result is not None:
            print(describe(result))
    return 0


def _test(args: argparse.Namespace, out: Path, meta: dict[str, Any], test, device, cfg: TrainConfig,
          timing: dict[str, float], main: bool, eval_time: float | None, t_eval: float) -> dict[str, Any]:
    """The best weights on the test split (within what is left of ``--eval-time``; none with
    ``--no-test``), and pictures (samples and the rest, drawn with or without a test split)."""
    t0 = time.perf_counter()
    best, best_meta = load_run(out, "best", device=device)
    result = None
    if test is not None:
        limit = None if eval_time is None else max(EVAL_SHARE * eval_time - (t0 - t_eval), 0.0)
        result = evaluate_report(best, test, {**meta, "step": best_meta.get("step")}, cfg.batch_size,
                                 desc="test" if cfg.progress else None, time_limit=limit)
        original, bound = original_data_report(best, meta, "test", cfg.batch_size, device=device)
        result.update(bound)  # a prior over VQ-VAE codes: the bound on the images, decoded samples
        timing["test"] = time.perf_counter() - t0
    else:  # no test figures; the samples of a prior over codes are still its decoded images
        view = original_view(best, meta, device)
        original = None if view is None else view[0]
    if not main:  # the evaluations above are collective; the report and pictures are rank 0's
        return result
    if result is not None:
        (out / "test.json").write_text(json.dumps(result, indent=2) + "\n")
    t0 = time.perf_counter()
    pictured = best if original is None else original
    test_x = test.x if isinstance(test, TensorDataset) and original is None else None
    test_y = test.y if isinstance(test, TensorDataset) else None
    deadline = None if eval_time is None else t_eval + eval_time
    for path in write_pictures(pictured, out, args.samples, test_x, test_y, deadline):
        print(f"wrote {path}", file=sys.stderr)
    timing["pictures"] = time.perf_counter() - t0
    return result
