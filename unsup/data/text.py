"""Text as a stream of symbols: ``text:PATH`` (any file) and ``bible`` (the King James Bible).

``bible`` is ``bible.txt`` of the Canterbury Large Corpus (public domain, 4,047,392 bytes of ASCII;
bzip2 -9 compresses it to about 1.67 bits/char). It ships inside the package, xz-compressed, as
``unsup/data/files/bible.txt.xz``: :func:`bible_bytes` decompresses it, checks the SHA-256 of the
text and keeps it for the rest of the process, so ``bible``, ``bible-words`` and ``speech`` need
no data directory and no download (``--data-dir`` plays no role for them).

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

import functools
import hashlib
import lzma
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from unsup.data.base import WindowDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError, DataError

if TYPE_CHECKING:  # importlib.resources.abc is Python >= 3.11
    from importlib.resources.abc import Traversable

TEST_FRACTION = 0.1
BIBLE_XZ: Traversable = resources.files("unsup.data") / "files" / "bible.txt.xz"
BIBLE_SHA256 = "4e0a7e8dff7d9c82dbded57305c0ca3cdd3c4ca014db27121782fe9710f4723f"  # of the text


def bible_bytes() -> bytes:
    """The King James Bible shipped with the package: 4,047,392 bytes of ASCII, checksum-verified.

    Raises:
        DataError: the packaged file is missing, not valid xz, or decompresses to other bytes than
            ``bible.txt`` (a damaged installation).
    """
    return _packaged_text(BIBLE_XZ, BIBLE_SHA256)


@functools.lru_cache(maxsize=2)
def _packaged_text(path: Traversable, sha256: str) -> bytes:
    """Decompress the xz file ``path`` and check its SHA-256 (cached: only success is kept)."""
    def damaged(problem: str) -> DataError:
        return DataError(f"{path}: {problem}; this file ships with unsup, so the installation is "
                         f"damaged: reinstall unsup (`pip install --force-reinstall unsup`, or "
                         f"`pip install -e .` in a clone of the repository)")

    try:
        with path.open("rb") as f:
            data = lzma.decompress(f.read())
    except (lzma.LZMAError, EOFError, OSError) as e:
        raise damaged(f"cannot read the packaged file ({e})") from None
    if (actual := hashlib.sha256(data).hexdigest()) != sha256:
        raise damaged(f"checksum mismatch: expected sha256 {sha256} of the text, got {actual}")
    return data


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
    "the King James Bible (Canterbury corpus, packaged), 4 MB of bytes; options length, stride, mode",
)
def bible(req: Request) -> WindowDataset:
    return text_windows(req, bible_bytes(), "bible")
