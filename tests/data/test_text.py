"""Text streams: contiguous splits, windows, char mode, and the checksummed bible."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from unsup.data import download, load
from unsup.data.base import WindowDataset
from unsup.data.text import BIBLE_SHA256, split_bounds
from unsup.errors import ConfigError, DataError

DATA = bytes(range(256)) * 40  # 10,240 bytes


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


def test_bible_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "data" / "text" / "bible.txt"
    fake.parent.mkdir(parents=True)
    fake.write_text("In the beginning " * 1000)
    monkeypatch.setenv("UNSUP_SHARED", str(tmp_path))
    with pytest.raises(DataError, match=f"checksum mismatch: expected sha256 {BIBLE_SHA256}"):
        load("bible")


def test_bible_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSUP_SHARED", raising=False)
    monkeypatch.setattr(download, "repo_root", lambda: tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"bible\.txt not found"):
        load("bible")


def test_real_bible() -> None:
    try:
        download.shared_file("text/bible.txt")
    except DataError as e:
        if os.environ.get("CI"):  # CI has ../shared beside the clone: the file must be there
            raise
        pytest.skip(f"shared/data/text/bible.txt not available: {e}")
    test = load("bible", "test", length=1000)
    assert len(test) == int(4047392 * 0.1) // 1000
    text = bytes(test.batch(torch.tensor([0]))["x"][0].tolist())
    assert text.isascii()
    char = load("bible", "val", mode="char")
    assert 30 < char.spec.levels < 100
