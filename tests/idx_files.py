"""Small files in the official IDX format of (Fashion-)MNIST, written by tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(a: np.ndarray) -> bytes:
    header = struct.pack(f">BBBB{a.ndim}I", 0, 0, 0x08, a.ndim, *a.shape)
    return header + a.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 50, n_test: int = 20, gz: bool = True,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Official-format files with random images; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = (np.arange(n) % 10).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays
