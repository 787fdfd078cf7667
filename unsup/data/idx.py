"""MNIST and Fashion-MNIST, read from the official IDX files.

Both are 28x28 greyscale images with 256 intensity levels and 10 classes: 60,000 training and
10,000 test images (the official split); ``val`` is carved out of train with the request's seed.

IDX format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (``0x08`` = unsigned
byte, the only one these datasets use), the number of dimensions ``n``, then ``n`` big-endian
uint32 sizes and the data in C order. Files may be gzip-compressed (as distributed) or not.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.download import find_or_fetch
from unsup.data.registry import DATASETS, Request, with_val_split
from unsup.errors import DataError

_UBYTE = 0x08


def _files(base_url: str, sha256: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {name: (base_url + name, digest) for name, digest in sha256.items()}


# SHA-256 of the gzip files as served (published by TensorFlow Datasets' checksum registry; the
# MNIST ones agree with every mirror of Yann LeCun's files).
MNIST_FILES = _files("https://ossci-datasets.s3.amazonaws.com/mnist/", {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
})
# Debian's dataset-fashion-mnist re-compresses these files, so its .gz differ from the ones below
# although the decompressed bytes are the official ones; local files are never hash-checked.
FASHION_FILES = _files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
    "train-images-idx3-ubyte.gz":
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz":
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz":
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz":
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
})

FASHION_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)  # Debian's dataset-fashion-mnist
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or not) into an array.

    Raises:
        DataError: the file is not IDX, uses another element type, or its size disagrees with
            its header (truncated or corrupt).
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decide by content, not by the file name
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: truncated/corrupt gzip data ({e}); delete it and fetch it "
                            f"again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic {raw[:4].hex()}); truncated/corrupt?")
    dtype, ndim = raw[2], raw[3]
    if dtype != _UBYTE:
        raise DataError(f"{path}: IDX element type 0x{dtype:02x} unsupported; expected 0x08 "
                        f"(unsigned byte)")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated/corrupt IDX header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated/corrupt: the header promises {'x'.join(map(str, dims))} = "
            f"{expected} bytes of data, the file has {len(raw) - header}; delete it and fetch it "
            f"again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_pair(
    images: Path, labels: Path, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label IDX files, checking that they agree.

    Returns:
        ``(x, y)``: uint8 images ``(N, H, W)`` and labels ``(N,)``.
    """
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3:
        raise DataError(f"{images}: expected images of shape (N, H, W), header says {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{labels}: expected labels of shape (N,), header says {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{images.name} holds {len(x)} images but {labels.name} {len(y)} labels; "
                        f"the files do not belong together")
    if len(y) and int(y.max()) >= num_classes:
        raise DataError(f"{labels}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return x, y


def _idx_source(
    req: Request, dataset: str, files: dict[str, tuple[str, str]], class_names: list[str],
    system_dirs: tuple[str, ...] = (), install_hint: str | None = None,
) -> TensorDataset:
    def load_split(split: str) -> TensorDataset:
        prefix = "train" if split == "train" else "t10k"
        wanted = {n: v for n, v in files.items() if n.startswith(prefix + "-")}
        paths = find_or_fetch(req, dataset, wanted, system_dirs, install_hint=install_hint)
        x, y = load_idx_pair(paths[f"{prefix}-images-idx3-ubyte.gz"],
                             paths[f"{prefix}-labels-idx1-ubyte.gz"], len(class_names))
        spec = DataSpec((1, *x.shape[1:]), 256, len(class_names), "image")
        return TensorDataset(
            torch.from_numpy(x.astype(np.int64)).unsqueeze(1),  # (N, 1, H, W)
            spec, y=torch.from_numpy(y.astype(np.int64)), name=dataset, split=split,
            class_names=class_names,
        )

    return with_val_split(req, load_split)


@DATASETS.register("mnist", "MNIST handwritten digits, 28x28, 256 levels, 10 classes (60k/10k)")
def mnist(req: Request) -> TensorDataset:
    return _idx_source(req, "mnist", MNIST_FILES, [str(i) for i in range(10)])


@DATASETS.register(
    "fashion-mnist",
    "Fashion-MNIST clothing, 28x28, 256 levels, 10 classes (60k/10k)",
)
def fashion_mnist(req: Request) -> TensorDataset:
    return _idx_source(
        req, "fashion-mnist", FASHION_FILES, FASHION_CLASSES,
        system_dirs=FASHION_SYSTEM_DIRS,
        install_hint="apt-get install -y dataset-fashion-mnist",
    )
