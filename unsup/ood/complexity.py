"""Input complexity: the likelihood corrected by the length of a real lossless code (Serrà et al. [1]).

Plain likelihood rewards simple inputs. A generic lossless compressor measures that simplicity on
its own: ``L(x)``, the length in bits of ``x`` after the codec, approximates the code length of a
universal model of images. Serrà et al. score

    S(x) = -log2 p(x) - L(x),

the number of bits the trained model needs *beyond* what a generic compressor needs. An
in-distribution image is coded better by the model than by the compressor (``S`` very negative);
an outlier is not, however simple (``S`` near or above zero). Higher = more outlying. Here both
terms are divided by ``D`` (bits/dim), which changes no ranking.

``L(x)`` is the size of the codec's whole output for the one image, header included: the header is
the same for every image of one shape, so it moves every score by the same amount and changes
no metric. Codecs (:data:`CODECS`):

* ``png``: PNG by Pillow at its maximal compression (``optimize=True``, level 9); 8-bit grey or
  RGB, 1-bit for black and white, other level counts scaled to 8 bits;
* ``jpegxl``: JPEG-XL lossless at effort 9, by ``imagecodecs`` when it is installed
  (``pip install unsup[bench]``); it codes images about 17 % smaller than PNG (docs/results.md §12),
  closer to the FLIF codec Serrà et al. found best.

[1] J. Serrà, D. Álvarez, V. Gómez, O. Slizovskaia, J. F. Núñez and J. Luque, "Input Complexity and
    Out-of-Distribution Detection with Likelihood-Based Generative Models", ICLR 2020.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from unsup.data import DataSpec
from unsup.errors import ConfigError
from unsup.progress import progress


def _png(image: np.ndarray, binary: bool) -> bytes:
    buf = io.BytesIO()
    pic = Image.fromarray(image.astype(bool)) if binary else Image.fromarray(image)
    pic.save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.getvalue()


def _jpegxl(image: np.ndarray, binary: bool) -> bytes:
    try:
        import imagecodecs
    except ImportError:
        raise ConfigError("--codec jpegxl needs the imagecodecs package (pip install imagecodecs, "
                          "or unsup[bench]); --codec png needs nothing") from None
    return imagecodecs.jpegxl_encode(image * 255 if binary else image, lossless=True, effort=9)


CODECS: dict[str, tuple[str, Callable[[np.ndarray, bool], bytes]]] = {
    "png": ("PNG (Pillow, optimize, level 9)", _png),
    "jpegxl": ("JPEG-XL lossless (imagecodecs, effort 9)", _jpegxl),
}


def check_codec(codec: str, spec: DataSpec) -> None:
    """Raise a :class:`ConfigError` for an unknown codec or data that no image codec takes."""
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; expected one of {', '.join(CODECS)}")
    if spec.kind != "image" or len(spec.shape) != 3 or spec.shape[0] not in (1, 3):
        raise ConfigError(f"input complexity codes images with 1 or 3 channels; the run models "
                          f"{spec.kind} examples of shape {spec.shape} (--codec none leaves it out)")
    if spec.levels is None or spec.levels > 256:
        raise ConfigError(f"input complexity needs 2 to 256 levels per value (an image file); the "
                          f"run's data has levels={spec.levels} (--codec none leaves it out)")
    if codec == "jpegxl":
        _jpegxl(np.zeros((8, 8), np.uint8), False)  # fails early without imagecodecs


def code_lengths_bits(x: torch.Tensor, levels: int, codec: str = "png", desc: str | None = None
                      ) -> np.ndarray:
    """``L(x)``: the size in bits of each image of ``x`` ``(N, C, H, W)`` after ``codec``."""
    binary = levels == 2
    scale = 1 if binary else 255 / (levels - 1)
    imgs = (x.double() * scale).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    encode = CODECS[codec][1]
    out = np.empty(len(imgs))
    bar = progress(len(imgs), desc or "", "img", disable=desc is None, leave=False)
    try:
        for i, img in enumerate(imgs):
            out[i] = 8 * len(encode(img[..., 0] if img.shape[-1] == 1 else img, binary))
            bar.update(1)
    finally:
        bar.close()
    return out


def complexity_score(nll_bpd: np.ndarray, lengths_bits: np.ndarray, dims: int) -> np.ndarray:
    """``S(x) / D = -log2 p(x) / D - L(x) / D`` in bits/dim (higher = more outlying)."""
    return np.asarray(nll_bpd, dtype=np.float64) - np.asarray(lengths_bits, dtype=np.float64) / dims


def codec_bits_per_dim(lengths_bits: np.ndarray, spec: DataSpec) -> np.ndarray:
    """``L(x) / D``: the codec's own bits/dim."""
    return np.asarray(lengths_bits, dtype=np.float64) / math.prod(spec.shape)
