"""The ``unsup`` command line: train, eval, sample, list.

Each command is a thin layer over the library: data from :func:`unsup.data.load`, models from
:func:`unsup.create`, training from :class:`unsup.train.Trainer`. Errors the user can fix are printed
as one line (``unsup: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import re
import sys
import time
import typing
from pathlib import Path
from typing import Any

import torch

from unsup import data as udata
from unsup.errors import ConfigError, Interrupted, UnsupError
from unsup.models import MODELS, LikelihoodModel
from unsup.models import names as model_names
from unsup.models.base import nats_to_bits_per_dim
from unsup.train import LAST, TrainConfig, Trainer, distributed, evaluate, load_run, select_device
from unsup.train.lock import run_lock
from unsup.train.runs import run_data
from unsup.train.trainer import seed_everything

DESCRIPTION = """Deep unsupervised learning: train, evaluate and sample likelihood models.

Start with:
  unsup train pixelcnn --data digits --represent binary --steps 500 --out runs/digits
  unsup eval runs/digits
  unsup sample runs/digits --n 64 --out samples.png
  unsup probe runs/vae --labels 10%    (VAE family: linear/kNN/MLP probes of the features)
"""

TRAIN_EPILOG = """examples:
  unsup train made --data digits --represent binary --steps 2000 --out runs/made
  unsup train pixelcnn --preset course --data fashion-mnist --represent binary --time 10m --out runs/pcnn
  unsup train histogram --data toy-2d-image --epochs 20 --out runs/hist
  unsup train pixelcnn --help      (lists the model's own options and presets)

Runs write last.safetensors (resume point), best.safetensors (lowest validation loss),
metrics.csv, tb/ (TensorBoard: tensorboard --logdir DIR/tb), samples.png and test.json.
Interrupted? Run the same command with --resume to continue exactly where it stopped."""


_D = TrainConfig()  # the CLI's defaults are the loop's defaults


def parse_duration(text: str) -> float:
    """``"90"`` / ``"90s"`` / ``"10m"`` / ``"1.5h"`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 10m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_eval_time(text: str) -> float | str | None:
    """``--eval-time``: ``auto``, ``full`` (no limit: ``None``) or a duration in seconds."""
    if text in ("auto", "full"):
        return None if text == "full" else "auto"
    return parse_duration(text)


def parse_key_values(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--data-opt expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _attribute_docs(doc: str) -> dict[str, str]:
    """The ``Attributes:`` section of a Google-style docstring as {name: text}."""
    out: dict[str, str] = {}
    lines = doc.expandtabs().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return out
    indent, current = None, None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        indent = indent if indent is not None else width
        if width < indent:
            break
        m = re.match(r"\s*(\w+)(?: \(.*?\))?: (.*)", line)
        if width == indent and m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current:
            out[current] += " " + line.strip()
    return out


def _add_model_options(parser: argparse.ArgumentParser, name: str) -> None:
    """Expose the fields of the model's config dataclass as ``--field-name`` options."""
    entry = MODELS.entry(name)
    cls = entry.obj.Config
    hints = typing.get_type_hints(cls)
    presets = entry.meta["presets"]
    group = parser.add_argument_group(
        f"{name} options (defaults: the CPU configuration"
        + (f"; presets: {', '.join(presets)}" if presets else "") + ")")
    taken = {a for action in parser._actions for a in action.option_strings}
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's text wins; inherited fields keep theirs
        docs.update(_attribute_docs(klass.__doc__ or ""))
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if flag in taken:
            raise RuntimeError(f"model option {flag} of {name} clashes with a training option")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        hint = hints[f.name]
        if typing.get_origin(hint) in (list, tuple):
            base = hint
        else:  # Optional[X] / X | None -> X
            base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"(default: {default})"}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) in (list, tuple):
            kwargs.update(nargs="+", type=typing.get_args(base)[0], metavar="N")
        elif base in (int, float, str):
            kwargs["type"] = base
        if f.name in docs:
            kwargs["help"] = f"{docs[f.name]} {kwargs['help']}"
        group.add_argument(flag, dest=f"model.{f.name}", **kwargs)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and shows each option's default unless its help does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.default is None
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool)
                or action.default == []):
            return text
        return f"{text} (default: %(default)s)"


def _add_checkpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which weights: best (lowest validation loss) or last (the resume point)")


def _build_parser(model: str | None = None) -> argparse.ArgumentParser:
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(prog="unsup", description=DESCRIPTION, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a model on a dataset", epilog=TRAIN_EPILOG,
                       formatter_class=fmt, description="Train MODEL on a dataset, then report "
                       "its test bits/dim and save a sample grid.")
    t.add_argument("model", metavar="MODEL", help=f"one of: {', '.join(model_names())}")
    d = t.add_argument_group("data")
    d.add_argument("--data", default="digits", metavar="NAME",
                   help="dataset name (`unsup list`); image-folder:PATH, text:PATH, colored-NAME")
    d.add_argument("--represent", default="native", metavar="REP",
                   help="native, binary, binary-dynamic, levels:K, uint8 or float")
    d.add_argument("--data-dir", default=None, metavar="DIR",
                   help="look for dataset files here first (default: $UNSUP_DATA)")
    d.add_argument("--download", action="store_true",
                   help="download missing files from the official location (checksum-verified)")
    d.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. size=32, length=256)")
    d.add_argument("--val-fraction", type=float, default=0.1, help="held-out part of train")
    o = t.add_argument_group("training")
    o.add_argument("--out", required=True, metavar="DIR", help="run directory")
    o.add_argument("--preset", default=None, help="named model configuration (e.g. paper)")
    o.add_argument("--steps", type=int, help="budget in optimiser steps")
    o.add_argument("--epochs", type=float, help="budget in passes over the training set")
    o.add_argument("--time", type=parse_duration, metavar="DURATION",
                   help="budget in wall-clock time of training (its periodic validations "
                   "included): 90s, 10m, 1h. The final validation, test and samples come after it; "
                   "the run ends by printing how long each took")
    o.add_argument("--eval-time", type=parse_eval_time, default="auto", metavar="DURATION",
                   help="time for the end-of-run evaluation: final validation, test and sample grid "
                   "(auto: as long as --time, when --time is given; full: whole splits, however "
                   "long). When it runs out, the figures are those of a uniform random subset of "
                   "the split, printed as such with their standard error, and the grid has fewer "
                   "samples; `unsup eval DIR` scores the whole split later. So a --time T command "
                   "ends in about 2T plus start-up")
    o.add_argument("--batch-size", type=int, default=_D.batch_size,
                   help="examples per step (and per evaluation batch)")
    o.add_argument("--lr", type=float, default=_D.lr, help="peak learning rate")
    o.add_argument("--weight-decay", type=float, default=_D.weight_decay,
                   help="decoupled (adamw) or L2 (sgd, lars) weight decay")
    o.add_argument("--optimizer", choices=("adamw", "sgd", "lars"), default=_D.optimizer,
                   help="adamw (default); sgd with --momentum; lars: SGD with layer-wise trust "
                        "ratios for very large batches (SimCLR)")
    o.add_argument("--momentum", type=float, default=_D.momentum, help="momentum of sgd and lars")
    o.add_argument("--warmup", type=int, default=_D.warmup, help="linear warm-up steps")
    o.add_argument("--schedule", choices=("constant", "cosine"), default=_D.schedule,
                   help="learning rate after warm-up: constant, or cosine decay to 0 at the end of "
                   "--steps/--epochs")
    o.add_argument("--clip", type=float, default=_D.clip, help="max gradient norm (0: off)")
    o.add_argument("--ema", type=float, default=_D.ema, help="EMA decay of weights (0: off)")
    o.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default=_D.amp,
                   help="mixed precision (auto: bf16, else fp16, on CUDA; off elsewhere). bf16 "
                   "also runs on the CPU and pays where the CPU has bf16 instructions "
                   "(AVX512-BF16, AMX): measure with benchmarks/speed.py")
    o.add_argument("--compile", action="store_true",
                   help="compile the model's loss with torch.compile: the first steps are slow "
                   "(compilation), later ones faster (1.2-1.3x on a 2-core CPU, more on CUDA); an "
                   "error if the compiler cannot run (on CPU it needs a C++ compiler)")
    o.add_argument("--channels-last", action="store_true",
                   help="keep conv weights and image batches channels-last (NHWC): faster "
                   "convolutions on CUDA with --amp, and 1.1-1.3x on a 2-core CPU")
    o.add_argument("--prefetch", choices=("auto", "on", "off"), default=_D.prefetch,
                   help="draw the next batch on a worker thread while the current step runs, in "
                   "pinned memory on CUDA (auto: on for CUDA; the batches are the same either way)")
    o.add_argument("--device", default=_D.device, help="auto, cpu, cuda, cuda:N or mps")
    o.add_argument("--seed", type=int, default=_D.seed,
                   help="seeds initialisation, data order and every random draw")
    o.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: torch.nn batch norm with the statistics of the global "
                   "batch (SyncBatchNorm, CUDA only); a no-op in one process")
    o.add_argument("--eval-every", type=int, default=_D.eval_every,
                   help="validate and checkpoint every N steps")
    o.add_argument("--eval-batches", type=int, default=_D.eval_batches,
                   help="cap validation batches (0: all)")
    o.add_argument("--log-every", type=int, default=_D.log_every,
                   help="write training metrics every N steps")
    o.add_argument("--no-progress", action="store_true",
                   help="hide progress (off a terminal it is a plain line every "
                   "$UNSUP_PROGRESS_EVERY seconds, default 30)")
    o.add_argument("--no-tensorboard", action="store_true", help="write only metrics.csv")
    o.add_argument("--resume", action="store_true", help="continue the run in --out")
    o.add_argument("--keep-last", type=int, default=_D.keep_last, metavar="N",
                   help="also keep the N most recent checkpoints as step-NNNNNN.safetensors "
                   "(1: only last and best)")
    o.add_argument("--on-divergence", choices=("stop", "rollback"), default=_D.on_divergence,
                   help="on a NaN/inf loss: stop, or reload the last checkpoint with a lower "
                   "learning rate and go on")
    o.add_argument("--rollback-lr-factor", type=float, default=_D.rollback_lr_factor, metavar="F",
                   help="learning-rate multiplier per rollback (kept on resume)")
    o.add_argument("--max-rollbacks", type=int, default=_D.max_rollbacks, metavar="N",
                   help="rollbacks allowed before the run stops as diverged")
    o.add_argument("--samples", type=int, default=64, help="samples to draw at the end (0: none)")
    o.add_argument("--no-test", action="store_true",
                   help="skip the test-set evaluation at the end (`unsup eval DIR` does it later)")
    if model is not None:
        _add_model_options(t, model)

    e = sub.add_parser("eval", help="test NLL and bits/dim of a trained run", formatter_class=fmt,
                       epilog="example:\n  unsup eval runs/digits --json")
    e.add_argument("run", metavar="DIR", help="a run directory written by `unsup train`")
    e.add_argument("--split", choices=udata.SPLITS, default="test", help="which split to score")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    _add_checkpoint_option(e)
    e.add_argument("--batch-size", type=int, default=64, help="examples per evaluation batch")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    e.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where the dataset's files are, if not where they were at training time")
    e.add_argument("--importance-samples", type=int, default=None, metavar="K",
                   help="latent-variable models (vae, iwae, ...): importance samples of the "
                   "log p(x) estimate (default: the model's eval_samples; the literature uses 5000)")
    e.add_argument("--examples", type=int, default=None, metavar="N",
                   help="evaluate on the first N examples of the split only (say so when you "
                   "report the figure)")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of stochastic estimates (importance samples, dequantisation noise)")

    s = sub.add_parser("sample", help="draw samples from a trained run", formatter_class=fmt,
                       epilog="example:\n  unsup sample runs/digits --n 64 --out samples.png "
                       "--temperature 0.9")
    s.add_argument("run", metavar="DIR")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", required=True, metavar="FILE.png",
                   help="FILE.png: a picture; FILE.wav: models of audio sequences (speech), all "
                   "samples in one 16-bit WAV, 0.5 s of silence apart; FILE.txt: models of text "
                   "(bible, text:PATH), decoded, samples separated by a line of dashes")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="divide logits by T (<1: sharper, >1: more diverse)")
    s.add_argument("--label", type=int, default=None, help="class for conditional models")
    s.add_argument("--naive", action="store_true",
                   help="sample without the model's activation cache (fast=False): the same "
                   "samples, far slower")
    s.add_argument("--complete", type=int, default=0, metavar="N",
                   help="instead of sampling, hide the bottom half of N test images and let the "
                   "model fill it in; the picture has rows of original | occluded | completion")
    s.add_argument("--interpolate", type=int, default=0, metavar="N",
                   help="instead of sampling, encode N pairs of test images with a flow and decode "
                   "8 points on the line between each pair's latents: one row per pair, the "
                   "ends are the images themselves")
    s.add_argument("--length", type=int, default=None, metavar="T",
                   help="elements per sample for models of any length (wavenet): e.g. 16000 for "
                   "one second of 16 kHz audio from a model trained on shorter clips "
                   "(default: the training length)")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples")
    _add_checkpoint_option(s)
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    pr = sub.add_parser("probe", help="judge a run's frozen features with labels (linear, kNN, MLP)",
                        formatter_class=fmt, description="Fit linear, k-nearest-neighbour and MLP "
                        "classifiers on the frozen encoder features of a run (a representation "
                        "method, `supervised`, or the VAE family) and report their test accuracy "
                        "next to the same probes on pixels, PCA, k-means features and the untrained "
                        "network; with --finetune-steps also fine-tune the whole encoder on the "
                        "labels against the same network trained from scratch on the same labels. "
                        "Writes DIR/probe.json and DIR/probe-tsne.png.",
                        epilog="examples:\n  unsup probe runs/vae --labels 10%\n"
                        "  unsup probe runs/rotation --labels 1% --finetune-steps 1000\n"
                        "  unsup probe runs/rotation --probes linear,knn --no-baselines --json")
    pr.add_argument("run", metavar="RUN")
    pr.add_argument("--data", default=None, metavar="NAME",
                    help="labelled dataset, in the run's representation (default: the run's own)")
    pr.add_argument("--labels", default="100%", metavar="P",
                    help="1%%, 10%% or 100%%: the class-stratified, seeded part of the training "
                    "labels the probes are fitted on (default: 100%%)")
    pr.add_argument("--probes", default="linear,knn,mlp", metavar="LIST",
                    help="which frozen-feature probes to fit (default: linear,knn,mlp)")
    pr.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                    help="also probe pixels, PCA, k-means features and the untrained network "
                    "(default: on; they depend only on the data, so a benchmark computes them once)")
    pr.add_argument("--finetune-steps", type=int, default=0, metavar="N",
                    help="also fine-tune the whole encoder + a linear layer for N Adam steps of 128 "
                    "labelled examples, from the run's weights and from scratch (default: 0, off)")
    pr.add_argument("--tsne", action=argparse.BooleanOptionalAction, default=True,
                    help="draw DIR/probe-tsne.png (default: on)")
    pr.add_argument("--out", default=None, metavar="DIR", help="output directory (default: RUN)")
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.add_argument("--seed", type=int, default=0, help="seed of the label subset and the probes")
    _add_checkpoint_option(pr)
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    w = sub.add_parser("words", help="query a word2vec run: nearest neighbours, analogies, export",
                       formatter_class=fmt, description="Answer queries with the word vectors of a "
                       "word2vec run by cosine similarity, and export them in word2vec's text "
                       "format. The vocabulary is rebuilt from the run's training data.",
                       epilog="examples:\n  unsup words runs/w2v --neighbours god,king,water\n"
                       "  unsup words runs/w2v --analogy man:king::woman --analogy son:father::daughter\n"
                       "  unsup words runs/w2v --export vectors.txt")
    w.add_argument("run", metavar="RUN")
    w.add_argument("--neighbours", default="", metavar="WORDS",
                   help="comma-separated words whose nearest neighbours to print")
    w.add_argument("--analogy", action="append", default=[], metavar="A:B::C",
                   help="A is to B as C is to ? (the words nearest B - A + C); repeatable")
    w.add_argument("--k", type=int, default=8, help="answers per query (default: 8)")
    w.add_argument("--export", default=None, metavar="FILE", help="write the vectors (word2vec text format)")
    w.add_argument("--json", action="store_true", help="print one JSON object")
    _add_checkpoint_option(w)
    w.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    sub.add_parser("list", help="models and datasets, one line each")
    return p


def _load_data(args: argparse.Namespace, split: str, meta: dict[str, Any] | None = None):
    d = meta or {}
    return udata.load(
        d.get("name", getattr(args, "data", None)), split,
        d.get("representation", getattr(args, "represent", "native")),
        root=getattr(args, "data_dir", None) or d.get("root"),
        download=getattr(args, "download", False) or d.get("download", False),
        val_fraction=d.get("val_fraction", getattr(args, "val_fraction", 0.1)),
        seed=d.get("seed", getattr(args, "seed", 0)),
        **(d.get("options") or parse_key_values(getattr(args, "data_opt", None))),
    )


def _write_pictures(model, spec, out_dir: Path, n: int, test_x: torch.Tensor | None,
                    test_y: torch.Tensor | None = None, deadline: float | None = None) -> list[Path]:
    from unsup.plots import save_density, save_density_continuous, save_latents, save_samples

    written: list[Path] = []
    pictured = spec.kind == "image" or (spec.kind == "vector" and spec.shape in ((1,), (2,)))
    if callable(getattr(model, "reconstruct", None)) and spec.kind == "image" and n > 0 \
            and test_x is not None:  # autoencoders (vqvae): test images and their reconstructions
        from unsup.plots import save_reconstructions

        x = test_x[:min(n, 32)]
        save_reconstructions(x, model.reconstruct(x.to(model.device)), spec,
                             out_dir / "reconstructions.png")
        written.append(out_dir / "reconstructions.png")
    written += _write_latent_pictures(model, spec, out_dir, n, test_x)
    if callable(getattr(model, "illustrations", None)) and n > 0 and test_x is not None:
        from unsup.plots import save_rows

        torch.manual_seed(0)  # masks and crops drawn for the picture
        for name, rows in model.illustrations(test_x[:min(n, 16)]).items():
            save_rows(rows, out_dir / f"{name}.png")
            written.append(out_dir / f"{name}.png")
    if callable(getattr(model, "charts", None)) and n > 0 and test_x is not None:
        from unsup.plots import save_chart

        torch.manual_seed(0)
        pick = torch.linspace(0, len(test_x) - 1, min(len(test_x), 64)).long()  # spread over the split
        for name, chart in model.charts(test_x[pick], None if test_y is None else test_y[pick]).items():
            save_chart(chart, out_dir / f"{name}.png")
            written.append(out_dir / f"{name}.png")
    if not isinstance(model, LikelihoodModel) or n <= 0 or not pictured:
        return written  # sequences: `unsup sample DIR --out FILE.wav|.txt`
    torch.manual_seed(0)
    t0 = time.perf_counter()
    print(f"sampling {n} examples for {out_dir / 'samples.png'} (--samples 0 skips it)...",
          file=sys.stderr, flush=True)
    x = _sample_until(model, n, deadline)
    print(f"sampled {len(x)} in {time.perf_counter() - t0:.1f} s"
          + (f" (--eval-time ran out after {len(x)} of {n})" if len(x) < n else ""), file=sys.stderr)
    save_samples(x, spec, out_dir / "samples.png")
    written.append(out_dir / "samples.png")
    if spec.kind == "vector" and spec.shape in ((1,), (2,)) and spec.levels and test_x is not None:
        save_density(model, spec, test_x, out_dir / "density.png")
        written.append(out_dir / "density.png")
    if spec.kind == "vector" and spec.shape in ((1,), (2,)) and spec.levels is None \
            and test_x is not None:  # continuous 1-D/2-D: density on a grid, and the latent space
        save_density_continuous(model, test_x, out_dir / "density.png")
        written.append(out_dir / "density.png")
        if callable(getattr(model, "encode", None)) and getattr(model, "z_dim", spec.dims) == spec.dims:
            save_latents(model, test_x, out_dir / "latents.png", test_y)
            written.append(out_dir / "latents.png")
    return written


SAMPLE_CHUNK = 8  # samples drawn at once when a deadline may stop the drawing (a row of the grid)


def _sample_until(model, n: int, deadline: float | None) -> torch.Tensor:
    """``model.sample(n)``; with a ``deadline`` (a ``time.perf_counter()`` value) in rows of
    :data:`SAMPLE_CHUNK`, stopping after the row that passes it. Class-conditional models, whose
    grid has one class per column, draw all ``n`` at once."""
    if deadline is None or getattr(model, "num_classes", None) is not None or n <= SAMPLE_CHUNK:
        return model.sample(n)  # conditional models: one class per column
    rows = []
    for start in range(0, n, SAMPLE_CHUNK):
        rows.append(model.sample(min(SAMPLE_CHUNK, n - start)))
        if time.perf_counter() >= deadline:
            break
    return torch.cat(rows)


def _write_latent_pictures(model, spec, out_dir: Path, n: int, test_x: torch.Tensor | None
                           ) -> list[Path]:
    """VAE-family pictures: interpolations and latent traversals (images), decoder means (2-D)."""
    from unsup.models.latent.vae import VAE
    from unsup.plots import save_decoder_means, save_interpolations, save_traversal

    if not isinstance(model, VAE) or test_x is None or n <= 0:
        return []
    written = []
    if spec.kind == "image":
        save_interpolations(model, test_x[:16].to(model.device), out_dir / "interpolations.png")
        written.append(out_dir / "interpolations.png")
        if model.continuous_latents:
            save_traversal(model, test_x[:1000].to(model.device), out_dir / "traversal.png")
            written.append(out_dir / "traversal.png")
    elif spec.shape == (2,) and spec.levels is None:
        save_decoder_means(model, test_x.to(model.device), out_dir / "decoder-means.png")
        written.append(out_dir / "decoder-means.png")
    return written


# Training options a resumed run takes from the command line; every other option is the run's own
# (exact resume), and a different value given for it is reported as ignored.
RESUME_MAY_CHANGE = {"steps", "epochs", "time", "device", "progress", "tensorboard", "prefetch",
                     "keep_last", "log_every", "on_divergence", "rollback_lr_factor", "max_rollbacks",
                     "final_eval_time"}
EVAL_SHARE = 0.8  # of --eval-time for the final validation and test; the rest for the samples
DATA_ARGS = {"data": "name", "represent": "representation", "val_fraction": "val_fraction",
             "data_opt": "options"}  # train flag -> key of the run's data arguments


def _train_config(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig(
        steps=args.steps, epochs=args.epochs, time=args.time, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, optimizer=args.optimizer, momentum=args.momentum,
        warmup=args.warmup, schedule=args.schedule,
        clip=args.clip, ema=args.ema, amp=args.amp, compile=args.compile,
        channels_last=args.channels_last, device=args.device, seed=args.seed,
        eval_every=args.eval_every, eval_batches=args.eval_batches, log_every=args.log_every,
        progress=not args.no_progress, tensorboard=not args.no_tensorboard)
    cfg.sync_bn, cfg.prefetch = args.sync_bn, args.prefetch
    cfg.keep_last, cfg.on_divergence = args.keep_last, args.on_divergence
    cfg.rollback_lr_factor, cfg.max_rollbacks = args.rollback_lr_factor, args.max_rollbacks
    return cfg


def _eval_time(args: argparse.Namespace, cfg: TrainConfig) -> float | None:
    """Seconds for the end-of-run evaluation (``--eval-time``), ``None`` for no limit."""
    return (cfg.time if args.eval_time == "auto" else args.eval_time) if "eval_time" in args else None


def _data_meta(args: argparse.Namespace) -> dict[str, Any]:
    return {"name": args.data, "representation": args.represent, "root": args.data_dir,
            "download": args.download, "val_fraction": args.val_fraction, "seed": args.seed,
            "options": parse_key_values(args.data_opt)}


def _resumed_settings(args: argparse.Namespace, cfg: TrainConfig, options: dict[str, Any],
                      out: Path) -> tuple[TrainConfig, dict[str, Any], dict[str, Any], list[str]]:
    """The run's own training config, model options and data arguments for ``--resume``, with the
    budget and run-time options (:data:`RESUME_MAY_CHANGE`) given on the command line, and the
    list of given options that differ from the run's (ignored, so that the run resumes exactly)."""
    from unsup.train import load_state

    state = load_state(out / LAST)
    meta, stored = state.get("meta") or {}, state.get("train_config") or {}
    if meta.get("model") != args.model:
        raise ConfigError(f"--resume: {out} holds a {meta.get('model')} run, not {args.model}; "
                          f"resume it with `unsup train {meta.get('model')} --out {out} --resume`")
    given: set[str] = getattr(args, "given", set())
    ignored: list[str] = []

    def note(flag: str, value: Any, kept: Any) -> None:
        if value != kept and not (isinstance(value, (list, tuple)) and list(value) == kept):
            ignored.append(f"{flag} {value} (the run has {kept})")

    merged = dataclasses.asdict(cfg)
    for name, kept in stored.items():
        if name not in merged:
            continue
        if name in RESUME_MAY_CHANGE:
            given_here = name in given or (name in ("progress", "tensorboard") and f"no_{name}" in given)
            merged[name] = merged[name] if given_here else kept
        else:
            if name in given:
                note("--" + name.replace("_", "-"), merged[name], kept)
            merged[name] = kept
    model_config = dict(meta.get("model_config") or {})
    for name, value in options.items():
        if name in model_config:
            note("--" + name.replace("_", "-"), value, model_config[name])
    if "preset" in given and args.preset != meta.get("preset"):
        ignored.append(f"--preset {args.preset} (the run has {meta.get('preset')})")
    data = dict(meta["data"])
    new_data = _data_meta(args)
    for flag, key in DATA_ARGS.items():
        if flag in given:
            note("--" + flag.replace("_", "-"), new_data[key], data.get(key))
    if "data_dir" in given:  # where the files are may change; what they are may not
        data["root"] = args.data_dir
    data["download"] = data.get("download") or args.download
    return TrainConfig(**merged), model_config, {**meta, "data": data}, ignored


def cmd_train(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    out = Path(args.out)
    MODELS.entry(args.model)  # an unknown name is an error (with suggestions) before anything else
    options = {k[len("model."):]: v for k, v in vars(args).items() if k.startswith("model.")}
    cfg = _train_config(args)
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
        return _train(args, cfg, options, out, main, t_start)


def _train(args: argparse.Namespace, cfg: TrainConfig, options: dict[str, Any], out: Path,
           main: bool, t_start: float) -> int:
    from unsup.models import create

    preset, data_meta = args.preset, _data_meta(args)
    if args.resume:
        cfg, options, old_meta, ignored = _resumed_settings(args, cfg, options, out)
        preset, data_meta = None, old_meta["data"]  # the stored config already holds the preset
        if ignored and main:
            print(f"unsup: warning: --resume continues the run exactly as it was set up; ignored: "
                  f"{'; '.join(ignored)} (train into a new --out to change them)", file=sys.stderr)
    # every split the run will use is read (and checked) before the first step
    train = _load_data(args, "train", data_meta)
    val = _load_data(args, "val", data_meta)
    test = None if args.no_test else _load_data(args, "test", data_meta)
    eval_time = _eval_time(args, cfg)
    if eval_time is not None:  # validation and test share EVAL_SHARE of it by their sizes
        n_eval = len(val) + (len(test) if test is not None else 0)
        cfg.final_eval_time = EVAL_SHARE * eval_time * len(val) / max(n_eval, 1)
    if cfg.batch_size > len(train) and main:
        print(f"unsup: warning: --batch-size {cfg.batch_size} is larger than the training set "
              f"({len(train)} examples): every step uses the whole set", file=sys.stderr)
    seed_everything(cfg.seed)  # initialisation is part of what --seed repeats
    model = create(args.model, data=train, preset=preset, **options)
    meta = {"model": args.model, "preset": args.preset if not args.resume else old_meta.get("preset"),
            "model_config": dataclasses.asdict(model.config), "spec": train.spec.to_dict(),
            "data": data_meta}
    n_params = sum(p.numel() for p in model.parameters())
    if main:
        print(f"{args.model}: {n_params:,} parameters; {train.name} {train.spec.shape} "
              f"levels={train.spec.levels}: {len(train)} train / {len(val)} val"
              + (f" / {len(test)} test" if test is not None else "")
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
              f"best val loss {summary['best_val']:.4f}", file=sys.stderr)
    result = None
    if test is not None:
        t0 = time.perf_counter()
        best, best_meta = load_run(out, "best", device=trainer.device)
        test_limit = None if eval_time is None else max(
            EVAL_SHARE * eval_time - summary["final_validation_seconds"], 0.0)
        result = _evaluate_report(best, test, {**meta, "step": best_meta.get("step")}, cfg.batch_size,
                                  desc="test" if cfg.progress else None, time_limit=test_limit)
        result.update(_latent_report(best, test))
        vq_prior = _vq_prior(best, meta, trainer.device)
        if vq_prior is not None:  # a prior over VQ-VAE codes: the bound on images, decoded samples
            result.update(_vq_bound(args, *vq_prior, "test", cfg.batch_size))
        timing["test"] = time.perf_counter() - t0
        if main:
            (out / "test.json").write_text(json.dumps(result, indent=2) + "\n")
        if main:  # the evaluations above are collective; pictures and the report are rank 0's
            t0 = time.perf_counter()
            test_x = test.x if isinstance(test, udata.TensorDataset) else None
            test_y = test.y if isinstance(test, udata.TensorDataset) else None
            pictured = best if vq_prior is None else vq_prior[0]
            if vq_prior is not None:
                test_x = None
            deadline = None if eval_time is None else t_eval + eval_time
            for path in _write_pictures(pictured, pictured.spec, out, args.samples, test_x, test_y,
                                        deadline):
                print(f"wrote {path}", file=sys.stderr)
            timing["pictures"] = time.perf_counter() - t0
    timing["total"] = time.perf_counter() - t_start
    if main:
        (out / "train.json").write_text(json.dumps({**summary, "seconds": timing}, indent=2) + "\n")
        print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items())
              + (f" (--time {cfg.time:g} s is the training budget)" if cfg.time else ""),
              file=sys.stderr)
        if result is not None:
            print(_describe(result))
    return 0


def _vq_prior(model, meta: dict[str, Any], device: torch.device) -> tuple[Any, dict[str, Any]] | None:
    """For a likelihood model trained on ``vq-codes:RUN``: it and that run's VQ-VAE as one image
    model (:class:`~unsup.models.latent.vqvae.VQVAEWithPrior`) and the data arguments of the VQ-VAE's
    images; ``None`` for any other run."""
    name = (meta.get("data") or {}).get("name") or ""
    if not name.startswith("vq-codes:") or not isinstance(model, LikelihoodModel):
        return None
    from unsup.models.latent.vqvae import VQVAE, VQVAEWithPrior

    which = (meta["data"].get("options") or {}).get("checkpoint", "best")
    vq, vq_meta = load_run(name.split(":", 1)[1], which, device=device)
    if not isinstance(vq, VQVAE):
        raise ConfigError(f"{name}: not a vqvae run")
    return VQVAEWithPrior(vq, model).eval(), vq_meta["data"]


def _vq_bound(args: argparse.Namespace, combined, data_meta: dict[str, Any], split: str,
              batch_size: int) -> dict[str, Any]:
    """The bits/dim bound on the VQ-VAE's images, ``-log p_prior(k(x)) - log p(x | z_q(x))``."""
    images = _load_data(args, split, data_meta)
    m = evaluate(combined, images, batch_size)
    return {"image_bpd_bound": m["bpd"], "image_nll_nats_bound": m["nll"]}


def _evaluate_report(model, ds, meta: dict[str, Any], batch_size: int,
                     desc: str | None = None, time_limit: float | None = None) -> dict[str, Any]:
    m = evaluate(model, ds, batch_size, desc=desc, time_limit=time_limit)
    result = {"model": meta.get("model"), "data": meta.get("data", {}).get("name"),
              "representation": meta.get("data", {}).get("representation"),
              "split": ds.split, "n": m.pop("n"), "step": meta.get("step")}
    if "partial" in m:  # --eval-time ran out: a uniform random subset of the split
        result["partial"] = {**m.pop("partial"), "seconds": time_limit}
    if "nll" in m:
        result.update(nll_nats=m["nll"], bpd=m["bpd"], exact=m["exact"],
                      nats_per_dim=m["loss"])
        if "nll_se" in m:  # Monte-Carlo standard error of an importance-sampled estimate
            result.update(nll_se=m["nll_se"],
                          bpd_se=nats_to_bits_per_dim(m["nll_se"], model.spec.dims))
    else:
        result.update(m)
    return result


def _latent_report(model, ds) -> dict[str, Any]:
    """Latent-variable models: KL, reconstruction term and active units on the first 2,000
    examples of ``ds`` (named in the result), so that posterior collapse is visible."""
    if not callable(getattr(model, "latent_report", None)) or not isinstance(ds, udata.TensorDataset):
        return {}
    n = min(len(ds), 2000)
    return {"latent": {**model.latent_report(ds.x[:n]), "examples": n}}


def _describe(r: dict[str, Any]) -> str:
    if "bpd" in r:
        kind = "exact" if r["exact"] else "upper bound (the model's log_prob is a lower bound)"
        se = f" ± {r['nll_se']:.3f} (s.e.)" if "nll_se" in r else ""
        text = (f"{r['split']}: {r['bpd']:.4f} bits/dim, NLL {r['nll_nats']:.3f}{se} nats/example "
                f"({r['nats_per_dim']:.4f} nats/dim) over {r['n']} examples, {kind}")
        if "image_bpd_bound" in r:
            text += f"; images under the VQ-VAE: <= {r['image_bpd_bound']:.4f} bits/dim"
        if "latent" in r:
            lat = r["latent"]
            text += (f"; on the first {lat['examples']}: KL {lat['kl']:.3f} nats, "
                     f"{lat['active_units']}/{lat['latent_dims']} active units")
        return text + _describe_partial(r)
    return f"{r['split']}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.items()
                                          if isinstance(v, float)) + _describe_partial(r)


def _describe_partial(r: dict[str, Any]) -> str:
    if "partial" not in r:
        return ""
    p = r["partial"]
    se = (f"; the standard error of this subset's mean NLL is {p['nll_se']:.3f} nats/example"
          if "nll_se" in p else f"; the standard error of its mean loss is {p['loss_se']:.4g}")
    return (f"\n  (on {p['n']} of {p['of']} {r['split']} examples, a uniform random subset: the "
            f"{p['seconds']:.0f} s of --eval-time ran out{se}; `unsup eval RUN` scores them all)")


def cmd_eval(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = select_device(args.device)
    seed_everything(args.seed)
    model, meta = load_run(args.run, args.checkpoint, device=device)
    if args.importance_samples is not None:
        if not hasattr(model.config, "eval_samples"):
            raise ConfigError(f"--importance-samples applies to latent-variable models (vae, iwae, "
                              f"...); {meta['model']} has an exact or deterministic score")
        if args.importance_samples < 1:
            raise ConfigError(f"--importance-samples must be >= 1, got {args.importance_samples}")
        model.config.eval_samples = args.importance_samples
    ds = _load_data(args, args.split, meta["data"])
    if args.examples is not None:
        if not 1 <= args.examples <= len(ds) or not hasattr(ds, "subset"):
            raise ConfigError(f"--examples must be in [1, {len(ds)}] (the {args.split} split's "
                              f"size), got {args.examples}")
        ds = ds.subset(torch.arange(args.examples), ds.split)
    result = _evaluate_report(model, ds, meta, args.batch_size)
    if args.importance_samples is not None:
        result["importance_samples"] = args.importance_samples
    result.update(_latent_report(model, ds))
    vq_prior = _vq_prior(model, meta, device)
    if vq_prior is not None:
        result.update(_vq_bound(args, *vq_prior, args.split, args.batch_size))
    print(json.dumps(result) if args.json else _describe(result))
    return 0


def _text_vocab(model: LikelihoodModel, meta: dict[str, Any]) -> bytes:
    """The symbol -> byte table of a text model's data (its dataset reloaded from the run)."""
    name = meta["data"]["name"]
    if model.spec.kind == "sequence":
        ds = _load_data(argparse.Namespace(), "train", meta["data"])
        vocab = getattr(ds, "vocab", None)
        if vocab is not None and len(vocab) == model.spec.levels:
            return vocab
    raise ConfigError(f"text output needs a model of text (bible, text:PATH); this one models "
                      f"{model.spec.kind} data {model.spec.shape} from {name!r}: write "
                      + ("sound as FILE.wav" if model.spec.kind == "sequence" else
                         "pictures as FILE.png"))


def _write_text(x: torch.Tensor, vocab: bytes, path: str) -> None:
    """Decode samples ``(n, T)`` through ``vocab`` and write them, a line of dashes between."""
    texts = [bytes(vocab[s] for s in row).decode("utf-8", errors="replace")
             for row in x.reshape(len(x), -1).tolist()]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(("\n" + "-" * 72 + "\n").join(texts) + "\n", encoding="utf-8")


def cmd_sample(args: argparse.Namespace) -> int:
    from unsup.plots import save_samples

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    if args.temperature <= 0:
        raise ConfigError(f"--temperature must be positive, got {args.temperature}")
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    if not isinstance(model, LikelihoodModel):
        raise ConfigError(f"{meta['model']} cannot sample")
    suffix = Path(args.out).suffix.lower()
    if args.length is not None:
        if "length" not in inspect.signature(model.sample).parameters:
            raise ConfigError(f"--length: {meta['model']} samples only its training length; "
                              f"leave --length out")
        if args.complete or suffix not in (".wav", ".txt"):
            raise ConfigError("--length applies to sequences written as FILE.wav or FILE.txt, "
                              "not to pictures or --complete")
        length_opt = {"length": args.length}
    else:
        length_opt = {}
    if suffix == ".wav":  # checked before the (slow) sampling
        from unsup.audio import audio_format, save_audio_samples

        audio_format(model.spec, meta["data"]["name"])
    elif suffix == ".txt":
        vocab = _text_vocab(model, meta)
    elif model.spec.kind == "sequence":
        raise ConfigError(f"{meta['model']} samples sequences: write them as sound, --out FILE.wav "
                          f"(audio data), or as text, --out FILE.txt; not {suffix or args.out!r}")
    torch.manual_seed(args.seed)
    # Models without a cache sample naively anyway, so --naive just changes nothing for them.
    naive = {"fast": False} if args.naive and getattr(model, "supports_fast_sampling", False) else {}
    if args.complete and args.interpolate:
        raise ConfigError("--complete and --interpolate make different pictures; give one")
    if args.complete:
        return _complete(args, model, meta, naive)
    if args.interpolate:
        return _interpolate(args, model, meta)
    y = None if args.label is None else torch.full((args.n,), args.label, dtype=torch.long)
    vq_prior = _vq_prior(model, meta, model.device) if suffix not in (".wav", ".txt") else None
    if vq_prior is not None:  # a prior over VQ-VAE codes: decode the sampled codes to images
        model = vq_prior[0]
    x = model.sample(args.n, y=y, temperature=args.temperature, **naive, **length_opt)
    if suffix == ".wav":
        save_audio_samples(x, model.spec, meta["data"]["name"], args.out)
    elif suffix == ".txt":
        _write_text(x, vocab, args.out)
    else:
        save_samples(x, model.spec, args.out, title=f"{meta['model']}, T={args.temperature}")
    print(f"wrote {args.n} samples to {args.out}")
    return 0


def _complete(args: argparse.Namespace, model: LikelihoodModel, meta: dict[str, Any],
              naive: dict[str, bool]) -> int:
    """``unsup sample --complete N``: the model fills in the bottom half of N test images."""
    from unsup.plots import save_completions

    if args.complete < 0:
        raise ConfigError(f"--complete must be a number of images, got {args.complete}")
    if model.spec.kind != "image" or not hasattr(model, "complete"):
        raise ConfigError(f"{meta['model']} cannot complete images; --complete needs an image "
                          f"model such as pixelcnn or gated-pixelcnn")
    test = _load_data(args, "test", meta["data"])
    n = min(args.complete, len(test))
    batch = test.batch(torch.arange(n))
    x = batch["x"]
    height, width = x.shape[-2:]
    known = (torch.arange(height) < height // 2).view(1, 1, height, 1).expand(n, 1, height, width)
    y = None
    if getattr(model, "num_classes", None) is not None:  # the images' own classes, or --label
        y = batch["y"] if args.label is None else torch.full((n,), args.label, dtype=torch.long)
    out = model.complete(x, known, temperature=args.temperature, y=y, **naive)
    save_completions(x, known, out, model.spec, args.out)
    print(f"wrote {n} completions of the bottom half of test images to {args.out}")
    return 0


def _interpolate(args: argparse.Namespace, model: LikelihoodModel, meta: dict[str, Any]) -> int:
    """``unsup sample --interpolate N``: latent-space lines between N pairs of test images."""
    from unsup.plots import image_grid

    steps = 8
    if args.interpolate < 0:
        raise ConfigError(f"--interpolate must be a number of pairs, got {args.interpolate}")
    if model.spec.kind != "image" or not hasattr(model, "interpolate"):
        raise ConfigError(f"{meta['model']} has no latent space to interpolate in; --interpolate "
                          f"needs an image flow such as realnvp or glow")
    if Path(args.out).suffix.lower() != ".png":
        raise ConfigError(f"--interpolate writes a picture: --out FILE.png, not {args.out!r}")
    test = _load_data(args, "test", meta["data"])
    pairs = min(args.interpolate, len(test) // 2)
    x = test.batch(torch.arange(2 * pairs))["x"].to(model.device)
    with torch.no_grad():
        rows = [model.interpolate(x[2 * i], x[2 * i + 1], steps) for i in range(pairs)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat(rows).cpu(), model.spec.levels, ncol=steps).save(out)
    print(f"wrote {pairs} latent interpolations of {steps} steps between test images to {out}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """``unsup probe RUN``: linear, kNN and MLP probes of a run's frozen features (:mod:`unsup.probe`)."""
    from unsup import probe
    from unsup.models import config_for

    fraction = probe.parse_labels(args.labels)
    probes = probe.parse_probes(args.probes)
    if args.finetune_steps < 0:
        raise ConfigError(f"--finetune-steps must be >= 0 (0: no fine-tuning), got {args.finetune_steps}")
    device = select_device(args.device)
    model, meta = load_run(args.run, args.checkpoint, device=device)
    if not model.encodes:
        family = ", ".join(n for n in model_names() if MODELS.get(n).encodes)
        raise ConfigError(f"probe needs an encoder, a model whose encode(x) gives features "
                          f"({family}); {meta['model']} has none")
    data_meta = dict(meta["data"])
    if args.data is not None and args.data != data_meta["name"]:
        data_meta.update(name=args.data, options={})
    splits = {s: _load_data(args, s, data_meta) for s in ("train", "val", "test")}
    for ds in splits.values():
        if not isinstance(ds, udata.TensorDataset) or ds.y is None:
            raise ConfigError(f"probe needs labelled examples; {data_meta['name']} has no labels")
        if (ds.spec.shape, ds.spec.levels) != (model.spec.shape, model.spec.levels):
            raise ConfigError(f"{data_meta['name']} ({data_meta['representation']}) has examples "
                              f"{ds.spec.shape} with levels={ds.spec.levels}; the run's model takes "
                              f"{model.spec.shape} with levels={model.spec.levels}")
    torch.manual_seed(args.seed + 1)  # the untrained twin: same architecture, fresh weights
    untrained = MODELS.get(meta["model"])(model.spec, config_for(meta["model"], **meta["model_config"]))
    result = {"run": str(args.run), "model": meta["model"], "step": meta.get("step"),
              "data": data_meta["name"], "representation": data_meta["representation"],
              "labels": args.labels, "seed": args.seed}
    result.update(probe.probe(model, untrained.to(device).eval(), splits, fraction, args.seed,
                              baselines=args.baselines, finetune_steps=args.finetune_steps,
                              probes=probes))
    test_features = result.pop("_test_features")
    out = Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "probe.json"]
    if args.tsne:
        result["tsne_points"] = probe.save_tsne(
            test_features, splits["test"].y.numpy(), out / "probe-tsne.png", splits["test"].class_names,
            title=f"{meta['model']} features of {data_meta['name']} test examples", seed=args.seed)
        written.append(out / "probe-tsne.png")
    (out / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {' and '.join(map(str, written))}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{meta['model']} on {data_meta['name']}: test accuracy, probes fitted on "
              f"{args.labels} of the training labels ({result['labelled']} examples); "
              f"chance {100 * result['chance']:.1f}%")
        print(probe.format_table(result))
    return 0


def cmd_words(args: argparse.Namespace) -> int:
    """``unsup words RUN``: neighbours and analogies of a word2vec run's vectors."""
    from unsup.models.representation.word2vec import Word2Vec, write_vectors

    if args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    if not isinstance(model, Word2Vec):
        raise ConfigError(f"unsup words needs a word2vec run; {args.run} holds {meta['model']}")
    vocab = run_data(meta, "train").vocab
    index = {word: i for i, word in enumerate(vocab)}

    def lookup(word: str) -> int:
        if word.lower() not in index:
            raise ConfigError(f"{word!r} is not in the run's vocabulary of {len(vocab)} words (those "
                              f"seen min_count times in the training text)")
        return index[word.lower()]

    def named(answers: list[tuple[int, float]]) -> list[list]:
        return [[vocab[i], round(sim, 4)] for i, sim in answers]

    result: dict[str, Any] = {"run": str(args.run), "vocabulary": len(vocab), "neighbours": {},
                              "analogies": {}}
    for word in filter(None, (w.strip() for w in args.neighbours.split(","))):
        result["neighbours"][word] = named(model.neighbours(lookup(word), args.k))
    for query in args.analogy:
        parts = query.replace("::", ":").split(":")
        if len(parts) != 3:
            raise ConfigError(f"--analogy takes A:B::C (A is to B as C is to ?), got {query!r}")
        result["analogies"][query] = named(model.analogy(*map(lookup, parts), k=args.k))
    if args.export:
        write_vectors(model, vocab, args.export)
        print(f"wrote {args.export}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    for word, answers in result["neighbours"].items():
        print(f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in answers))
    for query, answers in result["analogies"].items():
        print(f"{query}: " + ", ".join(f"{w} ({s:.2f})" for w, s in answers))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print("models:")
    for e in MODELS:
        presets = e.meta["presets"]
        extra = f" [presets: {', '.join(presets)}]" if presets else ""
        print(f"  {e.name:<20} {e.summary}{extra}")
    print("datasets:")
    for e in udata.DATASETS:
        print(f"  {e.name:<20} {e.summary}")
    print("representations: " + ", ".join(udata.REPRESENTATIONS))
    return 0


def _given_options(model: str | None, argv: list[str]) -> set[str]:
    """The destinations of the options written on the command line (not left at their defaults)."""
    parser = _build_parser(model)
    train = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["train"]
    for action in train._actions:
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(argv))
    return {k[len("model."):] if k.startswith("model.") else k for k in given} - {"command"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        udata.names()  # register all sources
        model_names()  # and all models
        model = argv[1] if len(argv) > 1 and argv[0] == "train" and argv[1] in MODELS else None
        parser = _build_parser(model)
        args = parser.parse_args(argv)
        if args.command == "train":
            args.given = _given_options(model, argv)
        handler = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "list": cmd_list,
                   "probe": cmd_probe, "words": cmd_words}
        return handler[args.command](args)
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


if __name__ == "__main__":
    sys.exit(main())
