"""Datasets by name: ``unsup.data.load("fashion-mnist", "train", "binary")``.

Every source registers itself in :data:`DATASETS`; :func:`load` resolves the name, asks the
source for the split in its native form, and converts it to the requested representation.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

from unsup.data.args import DataArgs
from unsup.data.base import (
    REPRESENTATIONS,
    Batch,
    Dataset,
    DataSpec,
    TensorDataset,
    WindowDataset,
    represent,
)
from unsup.data.mutate import with_mutation
from unsup.data.registry import DATASETS, SPLITS, Request, data_root, resolve
from unsup.errors import ConfigError


def _import_sources() -> None:
    """Import every module of this package, so that each source has registered itself (a new
    source module is found where it is put). Sources that read trained runs (``vq-codes``) live
    above the models, in :mod:`unsup.train`, and register when it is imported."""
    import unsup.data as package

    for info in pkgutil.walk_packages(package.__path__, "unsup.data."):
        importlib.import_module(info.name)


def load(
    name: str = "digits",
    split: str = "train",
    representation: str = "native",
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load a dataset split in a representation.

    Args:
        name: a registered name (``unsup list``), ``image-folder:PATH``, ``text:PATH`` or
            ``colored-NAME``.
        split: ``train``, ``val`` (a seeded part of train) or ``test``.
        representation: see :mod:`unsup.data.base` (``native``, ``binary``, ``binary-dynamic``,
            ``levels:K``, ``uint8``, ``float``).
        root: directory to look in first for files (default ``$UNSUP_DATA``).
        download: allow downloading from the official location into the cache.
        val_fraction: fraction of train held out as val.
        seed: seed of the val split and of generated data.
        **options: source-specific options (e.g. ``size`` for image folders), and ``mutate``,
            which any dataset of discrete values takes: the training split's values are each
            replaced by a uniform random level with that probability (:mod:`unsup.data.mutate`).

    Raises:
        ConfigError: unknown name, split or representation.
        DataError: missing or corrupt files (the message names the command that fetches them).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    _import_sources()
    key, arg = resolve(name)
    source = DATASETS.get(key)
    options = dict(options)
    rate = options.pop("mutate", None)  # any source's option: applied here, after the representation
    req = Request(name, split, arg, data_root(root), download, val_fraction, seed, options)
    ds = represent(source(req), representation, seed=seed)
    return ds if rate is None else with_mutation(ds, rate, seed)


def names() -> list[str]:
    _import_sources()
    return DATASETS.names()


__all__ = [
    "DataArgs",
    "DATASETS", "REPRESENTATIONS", "SPLITS", "Batch", "DataSpec", "Dataset", "Request",
    "TensorDataset", "WindowDataset", "load", "names",
]
