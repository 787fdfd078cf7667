"""PNG files in and out of the codec, pixel for pixel.

A model of ``C``-channel images with 256 levels codes 8-bit PNGs (``L`` for one channel, ``RGB``
for three); a model of 2 levels codes black-and-white PNGs (mode ``1``, or ``L`` holding only 0
and 255). Nothing is converted silently: another mode, size or set of values is an error that
names what the model expects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unsup.data.base import DataSpec
from unsup.errors import ConfigError, DataError

MODES = {1: "L", 3: "RGB"}


def png_paths(inputs: list[str]) -> list[Path]:
    """The PNG files named by ``inputs``: files as given, folders' ``*.png`` sorted by name."""
    return input_paths(inputs, ".png")


def input_paths(inputs: list[str], suffix: str) -> list[Path]:
    """The files named by ``inputs``: files as given, folders' ``*SUFFIX`` sorted by name.

    Raises:
        DataError: a missing file, a folder without such files, two files of the same name.
    """
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(item.glob(f"*{suffix}"))
            if not found:
                raise DataError(f"{item}: no {suffix} files in this folder")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise DataError("two inputs share a file name; decompressing would write both to one file: "
                        "rename one")
    return paths


def pictures_problem(spec: DataSpec) -> str | None:
    """Why a PNG cannot hold the model's examples exactly, or None when it can."""
    if spec.kind != "image" or len(spec.shape) != 3 or spec.shape[0] not in MODES:
        return f"this model codes {spec.kind} data of shape {spec.shape}, not pictures"
    if spec.levels not in (2, 256):
        return (f"this model codes images of {spec.levels} levels; PNG files hold 8-bit or "
                f"black-and-white pixels")
    return None


def check_pictures(spec: DataSpec) -> None:
    """Raises ConfigError unless the model's data are pictures a PNG can hold exactly."""
    problem = pictures_problem(spec)
    if problem is not None:
        raise ConfigError(f"{problem}: compress a split of its dataset with --split")


def read_pngs(paths: list[Path], spec: DataSpec) -> torch.Tensor:
    """Images ``(n, C, H, W)`` as levels of a model with ``spec``.

    Raises:
        DataError: a file that is not a PNG, of another size or mode, or (2 levels) with grey pixels.
    """
    check_pictures(spec)
    c, h, w = spec.shape
    out = []
    for path in paths:
        try:
            with Image.open(path) as img:
                fmt, mode, size = img.format, img.mode, img.size
                pixels = np.asarray(img)
        except OSError as e:
            raise DataError(f"{path}: not a readable image ({e})") from e
        if fmt != "PNG":
            raise DataError(f"{path}: a {fmt} file; the codec reads PNG files only")
        if size != (w, h):
            raise DataError(f"{path}: {size[0]}x{size[1]} pixels, the model codes {w}x{h}")
        if spec.levels == 2 and mode == "1":
            pixels = pixels.astype(np.uint8)
        elif mode != MODES[c]:
            raise DataError(f"{path}: PNG mode {mode}, the model codes {c}-channel images (mode "
                            f"{MODES[c]}{' or 1' if spec.levels == 2 else ''})")
        elif spec.levels == 2:
            if not np.isin(pixels, (0, 255)).all():
                raise DataError(f"{path}: grey pixels; the model codes black-and-white images (0 or 255)")
            pixels = pixels // 255
        x = torch.from_numpy(np.array(pixels)).long()  # a copy: PIL's array is read-only
        out.append(x[None] if c == 1 else x.permute(2, 0, 1))
    return torch.stack(out)


def write_pngs(x: torch.Tensor, names: list[str], spec: DataSpec, out_dir: Path) -> list[Path]:
    """Write images ``(n, C, H, W)`` of levels as PNG files ``out_dir / name``; their pixels are
    what :func:`read_pngs` read."""
    check_pictures(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image, name in zip(x, names, strict=True):
        pixels = (image * 255 if spec.levels == 2 else image).to(torch.uint8)
        array = pixels[0].numpy() if spec.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
        path = out_dir / Path(name).name
        Image.fromarray(np.ascontiguousarray(array)).save(path)  # uint8: L or RGB
        written.append(path)
    return written
