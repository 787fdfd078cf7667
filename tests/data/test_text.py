"""Text streams: contiguous splits, windows, char mode, and the bible packaged with unsup."""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest
import torch

import unsup
from unsup.data import load, text
from unsup.data.base import WindowDataset
from unsup.data.text import BIBLE_SHA256, split_bounds
from unsup.errors import ConfigError, DataError

DATA = bytes(range(256)) * 40  # 10,240 bytes
BIBLE_SIZE = 4_047_392  # bytes of the Canterbury corpus's bible.txt


@pytest.fixture
def text_file(tmp_path: Path) -> str:
    p = tmp_path / "t.bin"
    p.write_bytes(DATA)
    return f"text:{p}"


def test_splits_are_contiguous_and_cover_the_file() -> None:
    bounds = [split_bounds(10240, s, 0.1) for s in ("train", "val", "test")]
    assert bounds[0][0] == 0 and bounds[0][1] == bounds[1][0] and bounds[1][1] == bounds[2][0]
    assert bounds[2] == (10240 - 1024, 10240)
    assert bounds[1][1] - bounds[1][0] == int(9216 * 0.1)
    with pytest.raises(ConfigError):
        split_bounds(100, "train", 1.0)


def test_windows_hold_the_bytes(text_file: str) -> None:
    test = load(text_file, "test", length=100)
    assert isinstance(test, WindowDataset)
    assert test.spec.shape == (100,) and test.spec.levels == 256 and test.spec.kind == "sequence"
    assert len(test) == 1024 // 100
    x = test.batch(torch.tensor([0, 1]))["x"]
    start = 10240 - 1024
    assert bytes(x[0].tolist()) == DATA[start:start + 100]
    assert bytes(x[1].tolist()) == DATA[start + 100:start + 200]
    overlapping = load(text_file, "test", length=100, stride=10)
    assert len(overlapping) == (1024 - 100) // 10 + 1


def test_char_mode(tmp_path: Path) -> None:
    p = tmp_path / "abc.txt"
    p.write_bytes(b"abcab\ncba" * 200)
    ds = load(f"text:{p}", "train", length=9, mode="char")
    assert ds.spec.levels == 4 and ds.vocab == b"\nabc"
    x = ds.batch(torch.tensor([0]))["x"][0]
    assert bytes(ds.vocab[i] for i in x.tolist()) == b"abcab\ncba"
    with pytest.raises(ConfigError, match="mode='words'"):
        load(f"text:{p}", mode="words")


def test_errors(tmp_path: Path, text_file: str) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(f"text:{tmp_path / 'absent.txt'}")
    with pytest.raises(DataError, match="fewer than one window"):
        load(text_file, "test", length=5000)
    with pytest.raises(ConfigError, match="only the native representation"):
        load(text_file, "test", "binary")


def test_packaged_bible() -> None:
    """The bible ships inside the package (no data directory, no download) and is the
    Canterbury corpus's bible.txt byte for byte."""
    assert Path(str(text.BIBLE_XZ)).is_relative_to(Path(unsup.__file__).parent)
    data = text.bible_bytes()
    assert len(data) == BIBLE_SIZE and data.isascii()
    assert hashlib.sha256(data).hexdigest() == BIBLE_SHA256
    test = load("bible", "test", length=1000)
    assert len(test) == int(BIBLE_SIZE * 0.1) // 1000
    assert bytes(test.batch(torch.tensor([0]))["x"][0].tolist()) == data[-int(BIBLE_SIZE * 0.1):][:1000]
    char = load("bible", "val", mode="char")
    assert 30 < char.spec.levels < 100


@pytest.mark.parametrize(("content", "problem"), [
    (b"not xz at all", "cannot read"),
    (lzma.compress(b"In the beginning " * 100), "checksum mismatch"),
    (None, "cannot read"),  # the file is missing
], ids=["not-xz", "other-text", "missing"])
def test_damaged_packaged_bible_says_reinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               content: bytes | None, problem: str) -> None:
    bad = tmp_path / "bible.txt.xz"
    if content is not None:
        bad.write_bytes(content)
    monkeypatch.setattr(text, "BIBLE_XZ", bad)
    for name in ("bible", "bible-words"):
        with pytest.raises(DataError, match=rf"bible\.txt\.xz: {problem}.*installation is damaged: "
                                            r"reinstall unsup"):
            load(name)
