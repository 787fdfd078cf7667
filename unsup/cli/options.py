"""Options shared by the commands, and options generated from dataclasses.

Every field of a model's config and of :class:`~unsup.train.TrainConfig` becomes ``--field-name``,
its help the field's entry in the class docstring's ``Attributes:`` section, its default shown.
Generated options default to :data:`argparse.SUPPRESS`, so the parsed namespace holds exactly the
options written on the command line: the dataclass supplies the rest, and ``--resume`` can tell
a given option from a default one.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from typing import Any

from unsup.data import DataArgs
from unsup.errors import ConfigError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and shows each option's default unless its help does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.default is None
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool)
                or action.default == []):
            return text
        return f"{text} (default: %(default)s)"


def parse_duration(text: str) -> float:
    """``"90"`` / ``"90s"`` / ``"10m"`` / ``"1.5h"`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 10m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_key_values(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--data-opt expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` sections of a class and its bases, as {name: text} (a subclass wins)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        lines = (klass.__doc__ or "").expandtabs().splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip() == "Attributes:"), None)
        if start is None:
            continue
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


def add_dataclass_options(group: argparse._ArgumentGroup, cls: type, prefix: str,
                          taken: set[str] = frozenset()) -> None:
    """``--field-name`` for every field of dataclass ``cls`` (dest ``PREFIX.field``); fields with
    ``metadata={"cli": False}`` are left out, ``choices`` and ``duration`` metadata respected."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        if flag in taken:
            raise RuntimeError(f"option {flag} of {cls.__name__} clashes with another option")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        hint = hints[f.name]
        base = hint if typing.get_origin(hint) in (list, tuple) else next(
            (a for a in typing.get_args(hint) if a is not type(None)), hint)  # X | None -> X
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS,
                                  "help": f"{docs.get(f.name, '')} (default: {default})".strip()}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) in (list, tuple):
            kwargs.update(nargs="+", type=typing.get_args(base)[0], metavar="N")
        elif f.metadata.get("duration"):
            kwargs.update(type=parse_duration, metavar="DURATION")
        elif base in (int, float, str):
            kwargs.update(type=base, metavar=f.name.upper())
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
            kwargs.pop("metavar", None)
        group.add_argument(flag, dest=f"{prefix}.{f.name}", **kwargs)


def given(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The generated options of ``prefix`` written on the command line, by field name."""
    return {k[len(prefix) + 1:]: v for k, v in vars(args).items() if k.startswith(prefix + ".")}


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The data group of ``unsup train`` (dest ``data.<DataArgs field>``, defaults from DataArgs)."""
    d, D = parser.add_argument_group("data"), DataArgs()
    s = argparse.SUPPRESS
    d.add_argument("--data", dest="data.name", default=s, metavar="NAME",
                   help=f"dataset name (`unsup list`); image-folder:PATH, text:PATH, colored-NAME "
                   f"(default: {D.name})")
    d.add_argument("--represent", dest="data.representation", default=s, metavar="REP",
                   help=f"native, binary, binary-dynamic, levels:K, uint8 or float (default: "
                   f"{D.representation})")
    d.add_argument("--data-dir", dest="data.root", default=s, metavar="DIR",
                   help="look for dataset files here first (default: $UNSUP_DATA)")
    d.add_argument("--download", dest="data.download", action="store_true", default=s,
                   help="download missing files from the official location (checksum-verified)")
    d.add_argument("--data-opt", dest="data.options", action="append", default=s, metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. size=32, length=256)")
    d.add_argument("--val-fraction", dest="data.val_fraction", type=float, default=s,
                   help=f"held-out part of train (default: {D.val_fraction})")


def data_args(args: argparse.Namespace, seed: int) -> DataArgs:
    """The :class:`DataArgs` the data options of ``unsup train`` describe."""
    values = given(args, "data")
    values["options"] = parse_key_values(values.get("options"))
    return DataArgs(**values, seed=seed)


def run_parent() -> argparse.ArgumentParser:
    """The parent parser of every command that reads a run: which checkpoint, where its data are,
    on what device."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which weights: best (the run's selected checkpoint: lowest validation "
                        "loss, or for representation methods highest kNN accuracy) or last (the "
                        "resume point)")
    parent.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where the run's dataset files are, if not where they were at training time")
    parent.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    return parent


def estimator_parent() -> argparse.ArgumentParser:
    """The likelihood-estimator options of the commands that score examples (``unsup eval``,
    ``unsup ood``); each model says which it takes (``LikelihoodModel.estimator_options``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--estimator", nargs="+", default=[], metavar="KEY=VALUE",
                        help="options of an estimated likelihood, trading cost against accuracy "
                        "(flow-matching: ode_method=rk4 ode_steps=8, ode_tolerance=1e-3, "
                        "likelihood_repeats=1); recorded in the JSON; default: the run's")
    return parent


def set_estimator(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """Apply ``--estimator KEY=VALUE ...`` to ``model`` and return the typed options."""
    options = {}
    for item in args.estimator:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--estimator takes KEY=VALUE pairs, got {item!r}")
        options[key.replace("-", "_")] = value
    if options and not hasattr(model, "set_estimator"):
        raise ConfigError(f"--estimator applies to models with a likelihood; {type(model).__name__} has none")
    return model.set_estimator(options) if options else {}


def sampling_parent() -> argparse.ArgumentParser:
    """The sampler options of the commands that draw samples (``unsup sample``, ``unsup eval
    --sample-quality``); each model says which it takes (``Model.sampling_options``)."""
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("sampler (diffusion, flow matching and score models)")
    g.add_argument("--sampler", default=None, metavar="NAME",
                   help="ddpm: ancestral, ddim or dpm-solver; flow-matching: euler or heun "
                   "(default: the model's)")
    g.add_argument("--steps", type=int, default=None, metavar="N",
                   help="sampling steps (ddpm, flow-matching) or Langevin steps per noise level "
                   "(ncsn); fewer is faster and coarser")
    g.add_argument("--eta", type=float, default=None,
                   help="ddim's noise: 0 deterministic, 1 the ancestral sampler")
    g.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight of a conditional model (1: none; > 1 "
                   "samples more typical of their class)")
    return parent


def sampling_options(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The sampler options given on the command line, checked against what ``model`` takes."""
    given = {k: getattr(args, k) for k in ("sampler", "steps", "eta", "guidance")
             if getattr(args, k, None) is not None}
    unknown = sorted(set(given) - set(model.sampling_options))
    if unknown:
        takes = ", ".join(f"--{o.replace('_', '-')}" for o in model.sampling_options) or "none"
        raise ConfigError(f"{type(model).__name__} takes no {', '.join('--' + u for u in unknown)} "
                          f"(its sampler options: {takes})")
    return given


def run_data_args(args: argparse.Namespace, meta: dict[str, Any]) -> DataArgs:
    """A run's :class:`DataArgs`, with ``--data-dir`` where given."""
    d = DataArgs.from_dict(meta["data"])
    if getattr(args, "data_dir", None):
        d.root = args.data_dir
    return d
