"""Text as a stream of symbols: ``text:PATH`` (any file) and ``bible`` (the King James Bible).

``bible`` is ``bible.txt`` of the Canterbury Large Corpus (4,047,392 bytes of ASCII), shipped in
``shared/data/text`` and verified by SHA-256; bzip2 -9 compresses it to about 1.67 bits/char.

Symbols are bytes (``mode=bytes``, 256 levels, the default) or, with ``mode=char``, indices into
the file's sorted set of distinct bytes (levels = its size, about 60-100 for English text). The
dataset's ``vocab`` attribute maps symbols back to bytes in both modes: ``vocab[s]``. The char
vocabulary is taken from the whole file, so a test character never falls outside it.

Splits are contiguous, never shuffled, because overlapping neighbours would leak text between
splits: the last 10 % of the file is ``test``; of the first 90 %, the last ``val_fraction``
(default 10 %, i.e. 9 % of the file) is ``val`` and the rest ``train``. The run's seed plays no
role. Examples are windows of ``length`` symbols (default 256) every ``stride`` symbols (default
``length``: non-overlapping).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unsup.data.base import WindowDataset
from unsup.data.download import shared_file
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError, DataError

TEST_FRACTION = 0.1
BIBLE = "text/bible.txt"
BIBLE_SHA256 = "4e0a7e8dff7d9c82dbded57305c0ca3cdd3c4ca014db27121782fe9710f4723f"


def split_bounds(n: int, split: str, val_fraction: float) -> tuple[int, int]:
    """``[start, end)`` of a split in a stream of ``n`` symbols (see the module docstring)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_trainval = n - int(n * TEST_FRACTION)
    n_train = n_trainval - int(n_trainval * val_fraction)
    return {"train": (0, n_train), "val": (n_train, n_trainval), "test": (n_trainval, n)}[split]


def text_windows(req: Request, data: bytes, name: str) -> WindowDataset:
    """The requested split of ``data`` as windows (options ``length``, ``stride``, ``mode``)."""
    length = req.option("length", 256)
    stride = req.option("stride", length)
    mode = req.option("mode", "bytes")
    if length < 1 or stride < 1:
        raise ConfigError(f"{name}: options length={length} and stride={stride} must be positive")
    raw = np.frombuffer(data, dtype=np.uint8)
    if mode == "bytes":
        vocab, symbols, levels = bytes(range(256)), raw, 256
    elif mode == "char":
        present = np.unique(raw)  # sorted: the vocabulary is a function of the file alone
        lookup = np.zeros(256, dtype=np.uint8)
        lookup[present] = np.arange(len(present), dtype=np.uint8)
        vocab, symbols, levels = present.tobytes(), lookup[raw], len(present)
        if levels < 2:
            raise DataError(f"{name}: mode=char needs at least 2 distinct characters")
    else:
        raise ConfigError(f"{name}: option mode={mode!r}; expected bytes or char")
    start, end = split_bounds(len(symbols), req.split, req.val_fraction)
    stream = torch.from_numpy(symbols[start:end].astype(np.int64))
    ds = WindowDataset(stream, length, levels, stride=stride, name=name, split=req.split)
    ds.vocab = vocab  # type: ignore[attr-defined]  # symbol -> byte, for decoding samples
    return ds


@DATASETS.register(
    "text:PATH",
    "any file as a byte stream (options length, stride, mode=bytes|char)",
)
def text_file(req: Request) -> WindowDataset:
    assert req.arg is not None  # resolve() guarantees a path after ':'
    path = Path(req.arg).expanduser()
    if not path.is_file():
        raise DataError(f"text file {path} does not exist")
    return text_windows(req, path.read_bytes(), req.name)


@DATASETS.register(
    "bible",
    "the King James Bible (Canterbury corpus), 4 MB of bytes; options length, stride, mode",
)
def bible(req: Request) -> WindowDataset:
    path = shared_file(BIBLE, req, sha256=BIBLE_SHA256)
    return text_windows(req, path.read_bytes(), "bible")
