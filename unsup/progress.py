"""Progress reports that suit where they are read: a live bar on a terminal, plain lines in a log.

On a terminal, :func:`progress` is a `tqdm <https://tqdm.github.io>`_ bar redrawn in place. When
standard error is a file or a pipe (a batch job, ``2> log``, CI), redrawing writes a ``\\r`` line
several times a second and floods the log, so instead a :class:`StatusLine` prints one plain line
every ``UNSUP_PROGRESS_EVERY`` seconds (default 30) and one when the work ends::

    train: 120/500 steps (24%), 0:00:30 elapsed, 4.01 steps/s, loss=0.3121

Both answer the few calls the library makes (``update``, ``set_postfix``, ``refresh``, ``close``,
the attribute ``n``), so callers never ask which one they hold.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

DEFAULT_EVERY = 30.0
QUIET_SECONDS = 5.0  # work shorter than this gets no closing line


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("UNSUP_PROGRESS_EVERY", DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


class StatusLine:
    """A progress report as plain lines: one every ``every`` seconds and one at the end.

    Args:
        total: the amount of work (``None``: unknown).
        desc: what is being done (``train``, ``test``, ...).
        unit: the unit of work (``step``, ``batch``).
        initial: work already done (a resumed run).
        every: seconds between lines.
        file: where to write (standard error).
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 every: float | None = None, file: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every = _every() if every is None else every
        self.file = file or sys.stderr
        self.postfix = ""
        self._start_n = initial
        self._t0 = self._last = time.monotonic()
        self._closed = False

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.monotonic() - self._last >= self.every:
            self._print()

    def set_postfix(self, values: dict[str, Any]) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def refresh(self) -> None:
        """Nothing to redraw: the next line shows the current state."""

    def close(self) -> None:
        """Print the closing line (skipped for work that took under a few seconds)."""
        if not self._closed:
            self._closed = True
            if time.monotonic() - self._t0 >= min(self.every, QUIET_SECONDS):
                self._print(final=True)

    def line(self) -> str:
        """The current status as one line."""
        elapsed = time.monotonic() - self._t0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        text = (f"{self.desc}: {done} {units}{pct}, {timedelta(seconds=round(elapsed))} elapsed, "
                f"{rate:.3g} {units}/s")
        return text + (f", {self.postfix}" if self.postfix else "")

    def _print(self, final: bool = False) -> None:
        self._last = time.monotonic()
        print(self.line() + (" - done" if final else ""), file=self.file, flush=True)

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(StatusLine):
    """A disabled report: counts, prints nothing."""

    def _print(self, final: bool = False) -> None:
        pass


def progress(total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
             disable: bool = False, leave: bool = True, **tqdm_options: Any) -> Any:
    """A progress report on standard error: a tqdm bar on a terminal, else a :class:`StatusLine`.

    ``leave=False`` clears a terminal bar when it closes (for work that repeats, like validation);
    ``tqdm_options`` (e.g. ``unit_scale=True``) apply to the terminal bar only.
    """
    if disable:
        return _Silent(total, desc, unit, initial)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                    leave=leave, **tqdm_options)
    return StatusLine(total, desc, unit, initial)


def progress_over(items: Iterable[T], desc: str = "", unit: str = "it") -> Iterator[T]:
    """``items``, reporting progress over them (their count, when they have a length)."""
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    with progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)
