"""Text as a stream of words, for word embeddings: ``bible-words`` and ``words:PATH``.

Tokens are the lower-cased runs of letters (with inner apostrophes: ``lord's``) of the file; digits
and punctuation separate words and are dropped (the bible's verse numbers ``1:1`` vanish). The
vocabulary is every word that occurs at least ``min_count`` times (default 5) in the *training*
split, sorted by decreasing count (ties alphabetically), so word ``0`` is the most frequent; words
outside it are removed from every split before windows are cut, as word2vec does [1]. Splits are
contiguous runs of tokens, like :mod:`unsup.data.text`'s (the last 10 % is ``test``; of the rest,
the last ``val_fraction`` is ``val``).

Example ``i`` is the window of ``2 window + 1`` word indices centred on the ``i``-th word of the
split (``window`` default 5), so a batch holds centre words ``x[:, window]`` with their contexts;
the dataset's ``vocab`` lists the words (index -> word) and ``counts`` their training counts.

References:
    [1] Mikolov, Sutskever, Chen, Corrado, Dean. Distributed Representations of Words and Phrases
        and their Compositionality. NeurIPS 2013.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from unsup.data.base import WindowDataset
from unsup.data.registry import DATASETS, Request
from unsup.data.text import bible_bytes, split_bounds
from unsup.errors import ConfigError, DataError

WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words: runs of letters, with apostrophes inside a word kept."""
    return WORD.findall(text.lower())


def vocabulary(words: list[str], min_count: int) -> tuple[list[str], np.ndarray]:
    """Words occurring at least ``min_count`` times, most frequent first (ties alphabetically),
    and their counts."""
    counted = sorted(((c, w) for w, c in Counter(words).items() if c >= min_count),
                     key=lambda cw: (-cw[0], cw[1]))
    return [w for _, w in counted], np.array([c for c, _ in counted], dtype=np.int64)


def word_windows(req: Request, text: str, name: str) -> WindowDataset:
    """The requested split of ``text`` as windows of word indices (options ``window``, ``min_count``)."""
    window, min_count = req.option("window", 5), req.option("min_count", 5)
    if window < 1 or min_count < 1:
        raise ConfigError(f"{name}: options window={window} and min_count={min_count} must be >= 1")
    tokens = tokenize(text)
    start, end = split_bounds(len(tokens), "train", req.val_fraction)
    vocab, counts = vocabulary(tokens[start:end], min_count)
    if len(vocab) < 2:
        raise DataError(f"{name}: fewer than 2 words occur {min_count} times in the training split; "
                        f"lower --data-opt min_count=K or use a longer text")
    index = {w: i for i, w in enumerate(vocab)}
    start, end = split_bounds(len(tokens), req.split, req.val_fraction)
    ids = [index[w] for w in tokens[start:end] if w in index]
    ds = WindowDataset(torch.tensor(ids, dtype=torch.long), 2 * window + 1, len(vocab), stride=1,
                       name=name, split=req.split)
    ds.vocab = vocab  # type: ignore[attr-defined]
    ds.counts = torch.from_numpy(counts)  # type: ignore[attr-defined]
    return ds


@DATASETS.register("words:PATH", "any UTF-8 text file as windows of words (options window, min_count)")
def words_file(req: Request) -> WindowDataset:
    assert req.arg is not None  # resolve() guarantees a path after ':'
    path = Path(req.arg).expanduser()
    if not path.is_file():
        raise DataError(f"text file {path} does not exist")
    return word_windows(req, path.read_text(encoding="utf-8", errors="replace"), req.name)


@DATASETS.register("bible-words", "the King James Bible as windows of words (~790k words; options "
                   "window, min_count)")
def bible_words(req: Request) -> WindowDataset:
    return word_windows(req, bible_bytes().decode("ascii"), "bible-words")
