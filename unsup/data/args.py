"""A run's data arguments as one typed value: what :func:`unsup.data.load` needs, but the split.

``unsup train`` stores them in every checkpoint (``meta["data"]``); ``unsup eval``, ``sample``,
``probe``, :func:`unsup.train.runs.run_data` and the ``vq-codes`` source rebuild a run's data from
them, all through :class:`DataArgs`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataArgs:
    """Which data, in which form.

    Attributes:
        name: a dataset name (``unsup list``), ``image-folder:PATH``, ``text:PATH``, ...
        representation: ``native``, ``binary``, ``binary-dynamic``, ``levels:K``, ``uint8``, ``float``.
        root: where to look for the dataset's files first (``--data-dir``; ``None``: ``$UNSUP_DATA``).
        download: fetch missing files from the official location.
        val_fraction: the part of the training set held out for validation.
        seed: which part that is (the run's seed).
        options: the dataset's own options (``--data-opt KEY=VALUE``).
    """

    name: str = "digits"
    representation: str = "native"
    root: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def load(self, split: str):
        """The split ``train``, ``val`` or ``test`` (:func:`unsup.data.load`)."""
        from unsup.data import load  # the package imports this module

        return load(self.name, split, self.representation, root=self.root, download=self.download,
                    val_fraction=self.val_fraction, seed=self.seed, **self.options)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataArgs:
        """From a checkpoint's ``meta["data"]`` (keys it lacks take their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        return cls(**{**values, "options": dict(values.get("options") or {})})
