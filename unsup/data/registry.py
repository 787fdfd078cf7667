"""The dataset registry and the request every source receives."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unsup.data.base import Dataset, TensorDataset, split_train_val
from unsup.errors import ConfigError
from unsup.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass
class Request:
    """What the caller asked a source for.

    Attributes:
        name: the full name as asked (``"image-folder:/data/faces"``).
        split: ``train``, ``val`` or ``test``.
        arg: the part of the name after ``:``, ``colored-``, ``stacked-`` or ``unpaired-``
            (``None`` for plain names).
        root: a directory given by ``--data-dir`` or ``$UNSUP_DATA`` to look in first, or ``None``.
        download: whether the source may download what it cannot find.
        val_fraction: fraction of the training split held out as ``val``.
        seed: seed of the val split and of anything generated.
        options: source-specific options (``size=32``, ``length=256``, ...).
    """

    name: str
    split: str
    arg: str | None = None
    root: Path | None = None
    download: bool = False
    val_fraction: float = 0.1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any) -> Any:
        """A source option, converted to the type of ``default`` (CLI options arrive as str)."""
        value = self.options.get(key, default)
        if default is not None and not isinstance(value, type(default)):
            try:
                value = type(default)(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{self.name}: option {key}={value!r} should be a {type(default).__name__}"
                ) from None
        return value


Source = Callable[[Request], Dataset]
DATASETS: Registry[Source] = Registry("dataset")


def with_val_split(req: Request, load_split: Callable[[str], TensorDataset]) -> TensorDataset:
    """For sources with only train and test: carve ``val`` out of ``train`` with ``req.seed``."""
    if req.split == "test":
        return load_split("test")
    return split_train_val(load_split("train"), req.split, req.val_fraction, req.seed)


def resolve(name: str) -> tuple[str, str | None]:
    """Map a dataset name to its registry key and argument.

    ``"text:/a.txt"`` -> ``("text:PATH", "/a.txt")``; ``"colored-mnist"`` -> ``("colored-NAME",
    "mnist")``; ``"digits"`` -> ``("digits", None)``.
    """
    if ":" in name:
        prefix, arg = name.split(":", 1)
        if not arg:
            raise ConfigError(f"dataset {name!r}: a path is required after ':' (e.g. {prefix}:DIR)")
        return f"{prefix}:PATH", arg
    if name.startswith("unpaired-"):  # two datasets side by side
        return "unpaired-NAME+NAME", name[len("unpaired-"):]
    for wrapper in ("colored-", "stacked-"):  # datasets made from another dataset
        if name.startswith(wrapper):
            return f"{wrapper}NAME", name[len(wrapper):]
    return name, None


def data_root(root: str | os.PathLike[str] | None) -> Path | None:
    """The directory to look in first: the explicit argument, else ``$UNSUP_DATA``, else None."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("UNSUP_DATA")
    return Path(env).expanduser() if env else None


def cache_dir() -> Path:
    """Where downloads and generated data go: ``$UNSUP_CACHE`` or ``~/.cache/unsup``."""
    env = os.environ.get("UNSUP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unsup"
