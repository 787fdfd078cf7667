"""CIFAR-10 from small binary batches written by the test (directory, archive, download)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from unsup.data import cifar, load
from unsup.errors import DataError

PER_BATCH = 4


def batch_bytes(rng: np.random.Generator, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    y = rng.integers(0, 10, n, dtype=np.uint8)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([y[:, None], x.reshape(n, -1)], axis=1)  # label, R, G, B planes
    return records.tobytes(), x, y


def write_batches(d: Path, meta: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in cifar.TRAIN_FILES + cifar.TEST_FILES:
        data, x, y = batch_bytes(rng, PER_BATCH)
        (d / name).write_bytes(data)
        written[name] = (x, y)
    if meta:
        (d / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    return written


def archive_bytes(src: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname=cifar.BATCH_DIR)
    return buf.getvalue()


def test_reads_records_in_channel_planes(tmp_path: Path) -> None:
    written = write_batches(tmp_path / cifar.BATCH_DIR)
    test = load("cifar10", "test", root=tmp_path)
    x, y = written["test_batch.bin"]
    assert test.x.shape == (PER_BATCH, 3, 32, 32) and test.spec.levels == 256
    assert torch.equal(test.x, torch.from_numpy(x).long())
    assert torch.equal(test.y, torch.from_numpy(y).long())
    assert test.class_names == [f"class{i}" for i in range(10)]
    train = load("cifar10", "train", root=tmp_path, val_fraction=0.25)
    val = load("cifar10", "val", root=tmp_path, val_fraction=0.25)
    assert (len(train), len(val)) == (15, 5)


def test_batches_directly_in_root_and_default_names(tmp_path: Path) -> None:
    write_batches(tmp_path, meta=False)
    assert load("cifar10", "test", root=tmp_path).class_names == cifar.CLASSES


def test_truncated_batch(tmp_path: Path) -> None:
    d = tmp_path / cifar.BATCH_DIR
    write_batches(d)
    p = d / "data_batch_3.bin"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"data_batch_3\.bin: truncated/corrupt"):
        load("cifar10", "train", root=tmp_path)


def test_from_archive_in_data_dir(tmp_path: Path, isolated_cache: Path) -> None:
    written = write_batches(tmp_path / "src")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / cifar.ARCHIVE).write_bytes(archive_bytes(tmp_path / "src"))
    test = load("cifar10", "test", root=tmp_path / "root")
    assert torch.equal(test.x, torch.from_numpy(written["test_batch.bin"][0]).long())
    assert (isolated_cache / "cifar10" / "extracted" / cifar.BATCH_DIR).is_dir()


def test_download_and_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_batches(tmp_path / "src")
    data = archive_bytes(tmp_path / "src")
    server = tmp_path / cifar.ARCHIVE
    server.write_bytes(data)
    monkeypatch.setattr(cifar, "URL", server.as_uri())
    monkeypatch.setattr(cifar, "SHA256", "0" * 64)
    with pytest.raises(DataError, match="checksum mismatch"):
        load("cifar10", "test", download=True)
    monkeypatch.setattr(cifar, "SHA256", hashlib.sha256(data).hexdigest())
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz not found.*--download"):
        load("cifar10", "test")
    assert len(load("cifar10", "test", download=True)) == PER_BATCH
