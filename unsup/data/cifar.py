"""CIFAR-10 from the official binary release.

60,000 32x32 colour images in 10 classes: 50,000 training images in ``data_batch_1.bin`` ..
``data_batch_5.bin`` and 10,000 test images in ``test_batch.bin``, inside ``cifar-10-batches-bin/``
of ``cifar-10-binary.tar.gz`` (https://www.cs.toronto.edu/~kriz/cifar.html). Each record is one
label byte followed by 3,072 pixel bytes: the 1,024 red, then green, then blue values of a 32x32
image in row-major order. ``val`` is carved out of train with the request's seed.

The binary release is read rather than the Python one because the latter is pickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.download import find_or_fetch, safe_extract, search_dirs
from unsup.data.registry import DATASETS, Request, cache_dir, with_val_split
from unsup.errors import DataError

ARCHIVE = "cifar-10-binary.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# md5 c32a1d4ab5d03f1284b67883e8d87530 is the one published on the page above; this SHA-256 is of
# the same 170,052,171-byte file (as recorded by TensorFlow Datasets and others).
SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
BATCH_DIR = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
RECORD = 1 + 3 * 32 * 32
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 binary batch files.

    Returns:
        ``(x, y)``: uint8 images ``(N, 3, 32, 32)`` and labels ``(N,)``.

    Raises:
        DataError: a file is empty, not a whole number of records, or has a label above 9.
    """
    xs, ys = [], []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % RECORD:
            raise DataError(
                f"{path}: truncated/corrupt: {raw.size} bytes is not a whole number of "
                f"{RECORD}-byte records (1 label + 3072 pixels); delete it and fetch it again"
            )
        records = raw.reshape(-1, RECORD)
        if int(records[:, 0].max()) > 9:
            raise DataError(f"{path}: label {int(records[:, 0].max())} out of range 0..9; corrupt?")
        ys.append(records[:, 0])
        xs.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(xs), np.concatenate(ys)


def class_names(batch_dir: Path) -> list[str]:
    """Class names from ``batches.meta.txt`` when present, else the standard ones."""
    meta = batch_dir / "batches.meta.txt"
    if not meta.is_file():
        return CLASSES
    names = [line.strip() for line in meta.read_text().splitlines() if line.strip()]
    if len(names) != 10:
        raise DataError(f"{meta}: expected 10 class names, found {len(names)}")
    return names


def find_batches(req: Request) -> Path:
    """The ``cifar-10-batches-bin`` directory: found on disk, or unpacked from the archive."""
    for d in search_dirs(req, "cifar10"):
        for cand in (d / BATCH_DIR, d):
            if all((cand / f).is_file() for f in TRAIN_FILES + TEST_FILES):
                return cand
    archive = find_or_fetch(req, "cifar10", {ARCHIVE: (URL, SHA256)})[ARCHIVE]
    out = safe_extract(archive, cache_dir() / "cifar10" / "extracted") / BATCH_DIR
    missing = [f for f in TRAIN_FILES + TEST_FILES if not (out / f).is_file()]
    if missing:
        raise DataError(f"{archive}: the archive lacks {BATCH_DIR}/{', '.join(missing)}; is it "
                        f"the binary version ({URL})?")
    return out


@DATASETS.register(
    "cifar10",
    "CIFAR-10 official binary release, 3x32x32, 256 levels, 10 classes (50k/10k)",
)
def cifar10(req: Request) -> TensorDataset:
    batch_dir = find_batches(req)
    names = class_names(batch_dir)
    spec = DataSpec((3, 32, 32), 256, 10, "image")

    def load_split(split: str) -> TensorDataset:
        files = TEST_FILES if split == "test" else TRAIN_FILES
        x, y = read_batches([batch_dir / f for f in files])
        return TensorDataset(torch.from_numpy(x.astype(np.int64)), spec,
                             y=torch.from_numpy(y.astype(np.int64)), name="cifar10", split=split,
                             class_names=names)

    return with_val_split(req, load_split)
