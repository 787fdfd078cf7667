"""Name -> object registries for models and datasets.

Entry points (CLI, ``unsup.create``, ``unsup.data.load``) look things up here, so adding a model or
a dataset is one decorator in its own module and nothing else changes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from unsup.errors import ConfigError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """A registered object with a one-line summary and free-form metadata."""

    name: str
    obj: T
    summary: str
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection; ``get`` suggests close names when a lookup fails."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, summary: str = "", **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``.

        Args:
            name: the public name (lower case, dashes).
            summary: one line for ``unsup list``; defaults to the first docstring line.
            **meta: anything the entry point needs (e.g. presets).
        """

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._entries[name] = Entry(name, obj, summary or (doc[0] if doc else ""), meta)
            return obj

        return deco

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._entries))} "
                f"(see `unsup list`)."
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)
