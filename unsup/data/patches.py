"""Natural image patches for sparse coding (Olshausen & Field 1996 [1]).

``natural-patches``: square grey-scale patches, each flattened to a float vector of ``size*size``
values (``kind="vector"``, continuous, unlabelled), cut from the photographs that ship with
scikit-image (no download): camera, astronaut, coffee, chelsea, rocket, coins, clock, moon, brick,
grass and gravel, colour ones converted to grey with ``skimage.color.rgb2gray``, all in [0, 1].

Splits come from different pixels, not just different draws: training (and ``val``, carved out of
it with the run's seed) patches lie entirely in the top 80% of the rows of each image, test
patches entirely in the bottom 20%. Positions are drawn with a fixed seed (the same patches for
every run), equally many from each image.

Pre-processing, fitted on the training patches only and applied to every split:

1. the mean of each patch is removed (its DC component: brightness, which a dictionary of
   edges should not spend atoms on);
2. ``whiten=zca`` (option; default ``none``) multiplies by the ZCA whitening matrix
   ``C^{-1/2} = U (S + eps)^{-1/2} U^T`` of the training patches' covariance, with ``eps`` 1% of
   the mean eigenvalue (so the noisy highest frequencies are not blown up), which flattens the
   1/f^2 power spectrum as [1] did with its (1/f-shaped) whitening filter;
3. everything is divided by one scalar, the standard deviation over all training values, so that
   values are of order 1 whatever the patch size and whitening.

Options: ``size`` (default 8), ``n`` (training + val patches, default 50,000), ``n_test`` (default
5,000), ``whiten`` (``none`` or ``zca``).

References:
    [1] B. A. Olshausen, D. J. Field. Emergence of simple-cell receptive field properties by
        learning a sparse code for natural images. Nature 381, 1996.
"""

from __future__ import annotations

import numpy as np
import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request, with_val_split
from unsup.errors import ConfigError

PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "clock", "moon", "brick",
          "grass", "gravel")
TEST_ROWS = 0.2  # the bottom fraction of each image's rows that only test patches come from
SEED = 1996


def grey_photos() -> list[np.ndarray]:
    """The scikit-image photographs in :data:`PHOTOS` as grey float64 images in [0, 1]."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    out = []
    for name in PHOTOS:
        im = img_as_float(getattr(skimage.data, name)())
        out.append(rgb2gray(im) if im.ndim == 3 else im)
    return out


def cut_patches(images: list[np.ndarray], size: int, n: int, split: str,
                rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size x size`` patches, ``(n, size*size)``, equally many per image (the
    first images get one more when ``n`` does not divide), from the train or test rows."""
    per, extra = divmod(n, len(images))
    out = []
    for i, im in enumerate(images):
        h, w = im.shape
        cut = int(round(h * (1 - TEST_ROWS)))
        lo, hi = (0, cut - size) if split == "train" else (cut, h - size)
        if hi < lo or w < size:
            raise ConfigError(f"natural-patches: size={size} does not fit in an image of {h}x{w}")
        k = per + (i < extra)
        rows = rng.integers(lo, hi + 1, k)
        cols = rng.integers(0, w - size + 1, k)
        idx_r = rows[:, None, None] + np.arange(size)[None, :, None]  # (k, size, 1)
        idx_c = cols[:, None, None] + np.arange(size)[None, None, :]  # (k, 1, size)
        out.append(im[idx_r, idx_c].reshape(k, size * size))
    return np.concatenate(out)


def zca_matrix(x: np.ndarray, eps_fraction: float = 0.01) -> np.ndarray:
    """The symmetric whitening matrix ``U (S + eps)^{-1/2} U^T`` of centred rows ``x``."""
    cov = x.T @ x / len(x)
    s, u = np.linalg.eigh(cov)
    s = np.clip(s, 0.0, None)
    eps = eps_fraction * s.mean()
    return (u / np.sqrt(s + eps)) @ u.T


@DATASETS.register(
    "natural-patches",
    "8x8 grey patches of scikit-image photos as mean-removed vectors (options size, n, whiten)",
)
def natural_patches(req: Request) -> TensorDataset:
    size = req.option("size", 8)
    n = req.option("n", 50000)
    n_test = req.option("n_test", 5000)
    whiten = req.option("whiten", "none")
    if size < 2:
        raise ConfigError(f"{req.name}: option size={size} must be at least 2")
    if n < 2 or n_test < 1:
        raise ConfigError(f"{req.name}: need n >= 2 and n_test >= 1, got n={n}, n_test={n_test}")
    if whiten not in ("none", "zca"):
        raise ConfigError(f"{req.name}: option whiten must be none or zca, got {whiten!r}")
    images = grey_photos()
    rng = np.random.default_rng(np.random.SeedSequence([SEED, size]))
    train = cut_patches(images, size, n, "train", rng)
    test = cut_patches(images, size, n_test, "test", rng)
    train -= train.mean(1, keepdims=True)
    test -= test.mean(1, keepdims=True)
    if whiten == "zca":
        m = zca_matrix(train)
        train, test = train @ m, test @ m
    scale = train.std()
    spec = DataSpec((size * size,), None, None, "vector")

    def load_split(split: str) -> TensorDataset:
        x = (train if split == "train" else test) / scale
        return TensorDataset(torch.from_numpy(x).float(), spec, name=req.name, split=split)

    return with_val_split(req, load_split)
