"""Read a run directory into a :class:`Run`: what ``unsup train --out DIR`` and the commands that
judge a run left there, parsed, nothing computed.

Every file is optional; a directory with none of them is not a run. The files:

- ``best.safetensors`` (else ``last.safetensors``): only its metadata header is read (model name,
  preset, model config, data arguments, step, training config), never the tensors; the header is
  not checked against the checkpoint's digest, which covers the weights;
- ``metrics.csv``: ``step,split,metric,value,time`` rows of the training and validation curves;
- ``train.json`` (the trainer's summary), ``test.json`` (the end-of-training test evaluation),
  ``eval.json`` (``unsup eval``), ``probe.json`` (``unsup probe``), ``ood.json`` (``unsup ood``),
  ``compress.json`` (the object ``unsup compress --json`` prints);
- the pictures ``*.png`` in the directory itself (sample grids first).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unsup.errors import ConfigError
from unsup.train.checkpoint import read_metadata

JSON_FILES = ("train", "test", "eval", "probe", "ood", "compress")
CHECKPOINTS = ("best.safetensors", "last.safetensors")
EXPECTED = (*CHECKPOINTS, "metrics.csv", *(f"{n}.json" for n in JSON_FILES))


@dataclass
class Run:
    """What one run directory holds. ``curves`` maps a metric to ``{split: (steps, values)}``;
    ``checkpoint`` is the decoded metadata of the best (or last) checkpoint, tensors left out."""

    path: Path
    name: str
    checkpoint: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        """Model, preset, model config, data arguments and spec, as ``unsup train`` stored them."""
        return self.checkpoint.get("meta") or {}

    @property
    def model(self) -> str | None:
        for source in (self.meta, *(f for f in self.files.values() if f)):
            if source.get("model"):
                return source["model"]
        return None


def collect_run(path: str | Path, name: str | None = None) -> Run:
    """Read the run directory ``path``.

    Raises:
        ConfigError: ``path`` is no directory, holds none of the files of a run, or one of its
            JSON or CSV files is unreadable.
        CheckpointError: its checkpoint's header is not an unsup checkpoint's.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"no run directory at {path}: give directories written by `unsup train --out DIR`")
    present = [f for f in EXPECTED if (path / f).is_file()]
    if not present:
        raise ConfigError(f"{path} is not a run directory: expected at least one of {', '.join(EXPECTED)} "
                          f"(written by `unsup train --out {path}`, `unsup eval {path}`, ...)")
    run = Run(path=path, name=name or str(path))
    ckpt = next((path / c for c in CHECKPOINTS if (path / c).is_file()), None)
    if ckpt is not None:
        run.checkpoint = read_metadata(ckpt)
    run.files = {n: _read_json(path / f"{n}.json") for n in JSON_FILES}
    if (path / "metrics.csv").is_file():
        run.curves = read_curves(path / "metrics.csv")
    run.images = sorted(path.glob("*.png"), key=lambda p: (not p.name.startswith("samples"), p.name))
    return run


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); rerun the command that writes it or "
                          f"delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}, expected an object")
    return data


def read_curves(path: Path) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """``metrics.csv`` as ``{metric: {split: (steps, values)}}``, rows in file order."""
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"step", "split", "metric", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path} lacks the columns {', '.join(sorted(missing))}; expected the "
                              f"header step,split,metric,value,time that `unsup train` writes")
        for row in reader:
            try:
                step, value = float(row["step"]), float(row["value"])
            except (TypeError, ValueError):
                continue  # a row cut short by a killed process
            steps, values = curves.setdefault(row["metric"], {}).setdefault(row["split"], ([], []))
            steps.append(step)
            values.append(value)
    return curves


def short_names(paths: list[str | Path]) -> list[str]:
    """Names for the runs at ``paths`` as short as tell them apart: the directories' own names
    when they differ, else the paths below their common parent."""
    paths = [Path(p) for p in paths]
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath(resolved))
    return [str(p.relative_to(common)) if p != common else str(p) for p in resolved]
