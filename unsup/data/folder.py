"""Images from a directory tree or a tar archive of one: ``image-folder:PATH`` and ``cifar10-jpeg``.

Layout of ``PATH`` (a directory, or a ``.tar.gz`` / ``.tgz`` / ``.tar`` of one; an archive whose
files all sit under one top-level folder is read from inside that folder):

- ``PATH/<class>/**/*.jpg``: labelled, classes numbered in sorted folder-name order;
- ``PATH/*.jpg``: unlabelled;
- ``PATH/train/...`` and ``PATH/test/...`` (each laid out as above): the official splits. Without
  them a fixed seeded 20 % of the images is the test set, the same for every run seed.

``val`` is carved out of train with the request's seed. Every image is converted to RGB (or grey
with ``channels=1``), its shorter side resized to ``size`` and the centre ``size x size`` cropped;
the result is 256-level ``(N, C, size, size)``.

The whole tree is decoded once and cached under ``cache_dir()/image-folder`` as ``<key>.npy``
(uint8, never pickled) with ``<key>.json`` (the images' relative paths, in array order). The key
covers ``size``, ``channels`` and, for a directory, its path and every file's relative path, size
and modification time; for an archive, its path, size and modification time. Archives are read
as a stream and decoded in memory rather than extracted: unpacking 60,000 small files costs more
than decoding them, and nothing written means no member can escape the cache.

``cifar10-jpeg`` is a JPEG re-encoding of CIFAR-10 (``cifar10-jpeg/{train,test}/<class>/NNNN.jpg``)
that the user has on disk; unsup cannot download it. :func:`find_cifar10_jpeg` looks for the archive
``cifar10-jpeg.tar.gz`` (checked against its SHA-256) or an extracted tree (``train/`` and ``test/``,
each with the ten CIFAR-10 class folders) in ``req.root`` (``--data-dir`` or ``$UNSUP_DATA``),
``req.root/cifar10-jpeg`` and ``cache_dir()/cifar10-jpeg``. Its pixels are lossy, so it suits
representation learning but not bits/dim comparisons with ``cifar10`` (the official release, which
``--download`` fetches).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.cifar import CLASSES as CIFAR10_CLASSES
from unsup.data.download import search_dirs, sha256sum
from unsup.data.registry import DATASETS, Request, cache_dir, with_val_split
from unsup.errors import ConfigError, DataError
from unsup.progress import progress

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
ARCHIVE_EXTS = (".tar.gz", ".tgz", ".tar")
TEST_FRACTION = 0.2
_SPLIT_SEED = 1234  # fixed: the test set must not change with the run's seed
_PROGRESS_MIN = 1000  # show a progress bar when decoding more files than this

CIFAR10_JPEG = "cifar10-jpeg"
CIFAR10_JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR10_JPEG_SHA256 = "efac85c8ed52f4ead1e1f1b670d8dcf435d551fccebdd8b6365e0a01a504f3a4"


def _key(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:24]


def _is_image(rel: str) -> bool:
    """A visible image file: no path component starts with '.'."""
    return (posixpath.splitext(rel)[1].lower() in IMAGE_EXTS
            and not any(part.startswith(".") for part in rel.split("/")))


# --- listing ------------------------------------------------------------------------------------

def _dir_images(root: Path) -> list[str]:
    # os.walk and plain strings: Path.rglob and sorting Paths are ~10x slower on 50k files.
    found: list[str] = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_top = os.path.relpath(top, root)
        for n in names:
            rel = n if rel_top == "." else f"{rel_top}/{n}".replace(os.sep, "/")
            if _is_image(rel):
                found.append(rel)
    return sorted(found)


def _archive_members(path: Path, tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """``(relative path, member)`` of every image file in the archive, in archive order."""
    for m in tar:
        name = m.name
        while name.startswith("./"):
            name = name[2:]
        if Path(name).is_absolute() or ".." in name.split("/"):
            raise DataError(f"{path}: refusing an archive with the unsafe member name {m.name!r}")
        if m.isfile() and _is_image(name):
            yield name, m


def _strip_top(rels: list[str]) -> tuple[list[str], str]:
    """Drop one top-level folder shared by every path (``cifar10-jpeg/train/...``)."""
    tops = {r.split("/", 1)[0] for r in rels}
    if len(tops) == 1 and all("/" in r for r in rels):
        top = tops.pop()
        return [r[len(top) + 1:] for r in rels], top + "/"
    return rels, ""


# --- decoding -----------------------------------------------------------------------------------

def decode_image(src: str | Path | BinaryIO, size: int, channels: int, label: str) -> np.ndarray:
    """Decode one image to uint8 ``(channels, size, size)``: shorter side to ``size``, centre crop.

    Raises:
        DataError: the image cannot be decoded (``label`` names it).
    """
    try:
        with Image.open(src) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            w, h = im.size
            if (w, h) != (size, size):
                s = size / min(w, h)
                nw, nh = max(size, round(w * s)), max(size, round(h * s))
                im = im.resize((nw, nh), Image.Resampling.BICUBIC)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{label}: cannot read this image ({e}); fix or remove the file") from None
    return a.transpose(2, 0, 1) if channels == 3 else a[None]  # (C, H, W)


def _bar(total: int, desc: str) -> Any:
    return progress(total, f"decoding {desc}", "img", disable=total <= _PROGRESS_MIN)


def _decode_dir(root: Path, rels: list[str], size: int, channels: int, desc: str) -> np.ndarray:
    x = np.empty((len(rels), channels, size, size), dtype=np.uint8)
    with _bar(len(rels), desc) as bar:
        for i, rel in enumerate(rels):
            x[i] = decode_image(root / rel, size, channels, str(root / rel))
            bar.update()
    return x


def _decode_archive(
    path: Path, size: int, channels: int, desc: str
) -> tuple[list[str], np.ndarray]:
    try:
        with tarfile.open(path) as tar:
            names = [name for name, _ in _archive_members(path, tar)]
            if len(set(names)) < len(names):
                raise DataError(f"{path}: the archive holds some file twice; repack it")
            rels, _ = _strip_top(names)
            order = {name: i for i, name in enumerate(sorted(names))}  # array row of each member
            x = np.empty((len(names), channels, size, size), dtype=np.uint8)
            # Second pass over the now-known members: one rewind, then reads move forward only.
            with _bar(len(names), desc) as bar:
                for name, m in _archive_members(path, tar):
                    f = tar.extractfile(m)
                    assert f is not None  # regular files always have content
                    x[order[name]] = decode_image(io.BytesIO(f.read()), size, channels,
                                                  f"{path}:{name}")
                    bar.update()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{path}: cannot read the archive ({e}); it is truncated or corrupt") \
            from None
    return sorted(rels), x


def _save(out: Path, x: np.ndarray, rels: list[str]) -> None:
    """Write ``<key>.json`` then ``<key>.npy``, each atomically (the .npy marks completion)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, write in ((".json", lambda f: f.write(json.dumps(rels).encode())),
                          (".npy", lambda f: np.save(f, x, allow_pickle=False))):
        fd, tmp = tempfile.mkstemp(suffix=suffix + ".part", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, out.with_suffix(suffix))
        finally:
            Path(tmp).unlink(missing_ok=True)


def read_tree(path: Path, size: int, channels: int, desc: str) -> tuple[list[str], np.ndarray]:
    """Every image under ``path`` (a directory or an archive), decoded, using the cache.

    Returns:
        ``(rels, x)``: sorted relative paths (an archive's single top folder removed) and uint8
        images ``(N, channels, size, size)`` in that order.

    Raises:
        DataError: ``path`` is missing, not a directory or archive, or an image is unreadable.
    """
    path = path.resolve()
    if path.is_dir():
        rels = _dir_images(path)
        listing = []
        for r in rels:
            st = os.stat(path / r)
            listing.append([r, st.st_size, st.st_mtime_ns])
        key = _key(["dir", str(path), size, channels, listing])
    elif path.is_file():
        if not path.name.endswith(ARCHIVE_EXTS):
            raise DataError(f"{path}: expected a directory or a {'/'.join(ARCHIVE_EXTS)} archive")
        st = path.stat()
        key = _key(["archive", str(path), st.st_size, st.st_mtime_ns, size, channels])
    else:
        raise DataError(f"image folder {path} does not exist")
    out = cache_dir() / "image-folder" / f"{key}.npy"
    if out.is_file() and out.with_suffix(".json").is_file():
        cached_rels = json.loads(out.with_suffix(".json").read_text())
        x = np.load(out, allow_pickle=False)
        if x.shape == (len(cached_rels), channels, size, size) and x.dtype == np.uint8:
            return cached_rels, x
    if path.is_dir():
        x = _decode_dir(path, rels, size, channels, desc)
    else:
        rels, x = _decode_archive(path, size, channels, desc)
    _save(out, x, rels)
    return rels, x


# --- layout -------------------------------------------------------------------------------------

def labels_of(
    where: str, rels: list[str], classes: list[str] | None = None
) -> tuple[list[int] | None, list[str] | None]:
    """Labels from the first path component (the class folder), or ``None`` if all are loose.

    Args:
        where: the tree, for messages.
        rels: relative paths of one split's images.
        classes: the training split's class names, to number a test split alike.

    Raises:
        DataError: loose images mixed with class folders, or a class unknown to train.
    """
    loose = [r for r in rels if "/" not in r]
    if loose and len(loose) < len(rels):
        raise DataError(f"{where}: holds both images ({loose[0]}) and class folders; put every "
                        f"image in a class folder (labelled) or none (unlabelled)")
    if loose:
        if classes:
            raise DataError(f"{where}: unlabelled images, but the training split has classes")
        return None, None
    folders = [r.split("/", 1)[0] for r in rels]
    names = classes if classes is not None else sorted(set(folders))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(folders) - set(index))
    if unknown:
        raise DataError(f"{where}: class {unknown[0]!r} does not occur in the training split "
                        f"({', '.join(names)})")
    return [index[f] for f in folders], names


def load_image_folder(req: Request, path: Path, name: str) -> TensorDataset:
    """The requested split of the image tree at ``path`` (see the module docstring)."""
    size = req.option("size", 32)
    channels = req.option("channels", 3)
    if size < 1:
        raise ConfigError(f"{name}: option size={size} must be a positive number of pixels")
    if channels not in (1, 3):
        raise ConfigError(f"{name}: option channels={channels} must be 3 (RGB) or 1 (grey)")
    rels, x = read_tree(path, size, channels, name)
    if not rels:
        raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_EXTS))})")

    def make(rows: list[int], labels: list[int] | None, classes: list[str] | None,
             split: str) -> TensorDataset:
        spec = DataSpec((channels, size, size), 256, len(classes) if classes else None, "image")
        y = torch.tensor(labels, dtype=torch.long) if labels is not None else None
        return TensorDataset(torch.from_numpy(x[rows].astype(np.int64)), spec, y=y, name=name,
                             split=split, class_names=classes)

    parts = {r.split("/", 1)[0] for r in rels if "/" in r}
    if {"train", "test"} <= parts:
        outside = [r for r in rels if r.split("/", 1)[0] not in ("train", "test")]
        if outside:
            raise DataError(f"{path}: has train/ and test/, but also {outside[0]}; move it into "
                            f"one of them")
        by_split = {s: [(i, r[len(s) + 1:]) for i, r in enumerate(rels) if r.startswith(s + "/")]
                    for s in ("train", "test")}
        train_labels, train_classes = labels_of(f"{path}:train", [r for _, r in by_split["train"]])

        def load_split(split: str) -> TensorDataset:
            rows = [i for i, _ in by_split[split]]
            if split == "train":
                return make(rows, train_labels, train_classes, split)
            labels, _ = labels_of(f"{path}:test", [r for _, r in by_split["test"]], train_classes)
            if train_classes is None and labels is not None:
                raise DataError(f"{path}: test/ has class folders but train/ does not")
            return make(rows, labels, train_classes, split)

        return with_val_split(req, load_split)

    labels, classes = labels_of(str(path), rels)
    if len(rels) < 2:
        raise DataError(f"{path}: {len(rels)} image; need at least 2 to split train/test")
    perm = torch.randperm(len(rels), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_test = max(1, int(len(rels) * TEST_FRACTION))

    def load_split_fixed(split: str) -> TensorDataset:
        rows = (perm[:n_test] if split == "test" else perm[n_test:]).sort().values.tolist()
        return make(rows, [labels[i] for i in rows] if labels else None, classes, split)

    return with_val_split(req, load_split_fixed)


@DATASETS.register(
    "image-folder:PATH",
    "your images: class folders (or none), a directory or .tar.gz; options size, channels",
)
def image_folder(req: Request) -> TensorDataset:
    assert req.arg is not None  # resolve() guarantees a path after ':'
    return load_image_folder(req, Path(req.arg).expanduser(), req.name)


def _is_cifar10_tree(d: Path) -> bool:
    """``d`` holds ``train/`` and ``test/``, each with exactly the ten CIFAR-10 class folders."""
    def classes(split: Path) -> list[str]:
        return sorted(c.name for c in split.iterdir() if c.is_dir()) if split.is_dir() else []

    return classes(d / "train") == classes(d / "test") == CIFAR10_CLASSES


def find_cifar10_jpeg(req: Request) -> Path:
    """The ``cifar10-jpeg`` archive or extracted tree on disk (see the module docstring).

    Each search directory is checked for the archive first, then for a tree; the first match wins.

    Raises:
        DataError: neither is found (the message says how to give the directory), or the archive
            does not have the expected SHA-256.
    """
    dirs = search_dirs(req, CIFAR10_JPEG)
    for d in dirs:
        archive = d / CIFAR10_JPEG_ARCHIVE
        if archive.is_file():
            if (actual := sha256sum(archive)) != CIFAR10_JPEG_SHA256:
                raise DataError(
                    f"{archive}: checksum mismatch: expected sha256 {CIFAR10_JPEG_SHA256}, got "
                    f"{actual}; the file is damaged or another archive: replace it with the "
                    f"cifar10-jpeg archive, or load your copy with --data image-folder:{archive}"
                )
            return archive
        if _is_cifar10_tree(d):
            return d
    raise DataError(
        f"{CIFAR10_JPEG}: neither {CIFAR10_JPEG_ARCHIVE} nor an extracted tree (train/ and test/ "
        f"with the 10 class folders) found in {', '.join(map(str, dirs))}. The dataset is a local "
        f"JPEG re-encoding of CIFAR-10 that unsup cannot download: give its directory with "
        f"--data-dir DIR or $UNSUP_DATA. For the real CIFAR-10, use --data cifar10 --download"
    )


@DATASETS.register(
    "cifar10-jpeg",
    "a local JPEG copy of CIFAR-10 (lossy; give it with --data-dir), 3x32x32, 10 classes (50k/10k)",
)
def cifar10_jpeg(req: Request) -> TensorDataset:
    return load_image_folder(req, find_cifar10_jpeg(req), CIFAR10_JPEG)
