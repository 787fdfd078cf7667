"""Toy data for density models: 1-D and 2-D discrete densities, 2-D point clouds, binary shapes.

Everything is generated. The training set is drawn with a seed derived from the run's seed; the
test set with a fixed seed from a separate stream, so it is the same for every run (and never
overlaps the training draws' randomness); ``val`` is carved out of train with the run's seed.
Sizes: option ``n`` (training examples) and ``n_test``.

1-D discrete (``kind="vector"``, shape ``(1,)``), after CS294-158 (2020) homework 1:

- ``toy-1d``: ``d=20`` values, a discretised Gaussian N(0.4, 0.1^2) on [0, 1] (the homework's
  ``sample_data_1``). Chosen over a softmax of random logits because its true density is smooth
  and known, so a histogram's overfitting at small ``n`` is easy to see.
- ``toy-1d-bimodal``: ``d=100``, the discretised mixture 0.5 N(0.3, 0.1^2) + 0.5 N(0.8, 0.05^2)
  (the homework's ``sample_data_2``).

Both clip the real value to [0, 1] and map it to bin ``floor(u * d)`` (the top edge to ``d-1``),
so values are exactly ``0 .. d-1``.

2-D discrete: ``toy-2d-image``, pairs ``(x1, x2)`` = (column, d - 1 - row) drawn with probability
proportional to the intensity of ``skimage.data.camera()`` downsampled to ``d x d`` (option ``d``,
default 25; the homework used a smiley image), levels ``d``.

2-D continuous (levels ``None``, shape ``(2,)``), mapped into [0, 1]^2 by a fixed affine map per
dataset (never by the sample's own min/max, which would make train and test disagree); the rare
points whose noise carries them outside the square are redrawn, so the density is truncated to it:

- ``two-moons``: two interleaved half circles, noise 0.1, label = moon;
- ``rings``: three concentric circles of radius 1, 2, 3, noise 0.1, label = ring;
- ``gaussian-grid``: a ``k x k`` grid of Gaussians (option ``k``, default 5), label = component;
- ``gaussians-1d`` (1-D, on the whole line): ``0.5 N(-1, 0.25^2) + 0.5 N(1.5, 0.5^2)``, label =
  component, for the 1-D GAN experiments (minimax against non-saturating loss);
- ``gaussian-ring``: ``k`` Gaussians (option ``k``, default 8) of s.d. 0.01 evenly on a circle of
  radius 0.4 about the centre (the mode-collapse test of the unrolled-GAN paper), label = component;
- ``swiss-roll``: the 2-D spiral of the Swiss roll, unlabelled.

2-D continuous on the whole plane (no unit square), after CS294-158 homework 3: ``gaussian-diag``
is N((1, 2), diag(25, 1)); ``gaussian-full`` is the same Gaussian rotated by 45 degrees, so its
covariance is full. A VAE whose decoder is a diagonal Gaussian can fit the first with its decoder
variance alone and leaves ``z`` unused (posterior collapse, KL near 0); the second needs ``z``.

``shapes``: 20x20 binary images of filled squares, discs, triangles and lines of random size,
position (and rotation for triangles and lines); label = shape. Default 10,000 / 2,000.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request, with_val_split
from unsup.errors import ConfigError

Sampler = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray | None]]


def split_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """Randomness for one split: train depends on ``seed``, test is fixed."""
    parts = [zlib.crc32(name.encode()), 0 if split == "train" else 1]
    if split == "train":
        parts.append(seed)
    return np.random.default_rng(np.random.SeedSequence(parts))


def generated(
    req: Request, spec: DataSpec, sample: Sampler, *, n: int = 10000, n_test: int = 2500,
    class_names: list[str] | None = None,
) -> TensorDataset:
    """A split of a generated dataset: ``sample(rng, count) -> (x, y or None)``."""
    n_train = req.option("n", n)
    n_test = req.option("n_test", n_test)
    if n_train < 2 or n_test < 1:
        raise ConfigError(f"{req.name}: need n >= 2 and n_test >= 1, got n={n_train}, "
                          f"n_test={n_test}")

    def load_split(split: str) -> TensorDataset:
        x, y = sample(split_rng(req.name, split, req.seed), n_train if split == "train" else n_test)
        xt = torch.from_numpy(x).long() if spec.levels is not None else torch.from_numpy(x).float()
        yt = torch.from_numpy(y).long() if y is not None else None
        return TensorDataset(xt, spec, y=yt, name=req.name, split=split, class_names=class_names)

    return with_val_split(req, load_split)


def discretise(u: np.ndarray, d: int) -> np.ndarray:
    """Values in [0, 1] (clipped) to bins ``0 .. d-1`` of width ``1/d``."""
    return np.minimum((np.clip(u, 0.0, 1.0) * d).astype(np.int64), d - 1)


# --- 1-D ----------------------------------------------------------------------------------------

@DATASETS.register("toy-1d", "1-D discrete: a discretised Gaussian over 20 values (CS294-158 HW1)")
def toy_1d(req: Request) -> TensorDataset:
    d = 20

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        return discretise(0.4 + 0.1 * rng.standard_normal(n), d)[:, None], None

    return generated(req, DataSpec((1,), d, None, "vector"), sample)


@DATASETS.register(
    "toy-1d-bimodal",
    "1-D discrete: a two-Gaussian mixture over 100 values (CS294-158 HW1)",
)
def toy_1d_bimodal(req: Request) -> TensorDataset:
    d = 100

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        a = 0.3 + 0.1 * rng.standard_normal(n)
        b = 0.8 + 0.05 * rng.standard_normal(n)
        u = np.where(rng.random(n) < 0.5, a, b)
        return discretise(u, d)[:, None], None

    return generated(req, DataSpec((1,), d, None, "vector"), sample)


# --- 2-D discrete -------------------------------------------------------------------------------

def image_density(d: int) -> np.ndarray:
    """``skimage.data.camera()`` downsampled to ``d x d`` and normalised to sum to 1."""
    from PIL import Image
    from skimage.data import camera

    im = Image.fromarray(camera()).resize((d, d), Image.Resampling.BOX)  # BOX: area average
    p = np.asarray(im, dtype=np.float64)
    return p / p.sum()


@DATASETS.register(
    "toy-2d-image",
    "2-D discrete: (x, y) pixel positions drawn from the camera image's intensities; option d",
)
def toy_2d_image(req: Request) -> TensorDataset:
    d = req.option("d", 25)
    if d < 2:
        raise ConfigError(f"{req.name}: option d={d} must be at least 2")
    p = image_density(d).reshape(-1)

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        flat = rng.choice(d * d, size=n, p=p)
        row, col = flat // d, flat % d
        # (x1, x2) = (column, height above the bottom row): plotted with x1 across and x2 up,
        # like the continuous toys, the density shows the picture upright.
        return np.stack([col, d - 1 - row], axis=1), None  # (N, 2)

    return generated(req, DataSpec((2,), d, None, "vector"), sample)


# --- 2-D continuous -----------------------------------------------------------------------------

def in_unit_square(
    raw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
    shift: tuple[float, float], scale: float,
) -> Sampler:
    """Wrap a raw 2-D sampler: map ``(p - shift) * scale + 0.5``, redraw points outside [0,1]^2."""

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys, have = [], [], 0
        while have < n:
            p, y = raw(rng, n - have + 16)
            p = (p - np.asarray(shift)) * scale + 0.5
            keep = np.all((p >= 0) & (p <= 1), axis=1)
            xs.append(p[keep])
            ys.append(y[keep])
            have += int(keep.sum())
        return np.concatenate(xs)[:n].astype(np.float32), np.concatenate(ys)[:n]

    return sample


def _moons(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Like sklearn's make_moons, but with i.i.d. angles (make_moons spaces them evenly).
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, np.pi, n)
    p = np.where(y[:, None] == 0, np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    return p + 0.1 * rng.standard_normal((n, 2)), y


def _rings(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    t = rng.uniform(0, 2 * np.pi, n)
    p = (y + 1.0)[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    return p + 0.1 * rng.standard_normal((n, 2)), y


def _swiss_roll(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # The (x, z) plane of sklearn's make_swiss_roll, divided by its largest radius 4.5 pi.
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    p = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (4.5 * np.pi)
    return p + 0.03 * rng.standard_normal((n, 2)), np.zeros(n, dtype=np.int64)


_CONT = DataSpec((2,), None, None, "vector")


@DATASETS.register(
    "two-moons",
    "2-D continuous: two interleaved half circles in [0,1]^2, label = moon",
)
def two_moons(req: Request) -> TensorDataset:
    spec = DataSpec((2,), None, 2, "vector")
    return generated(req, spec, in_unit_square(_moons, (0.5, 0.25), 0.25),
                     class_names=["upper", "lower"])


@DATASETS.register("rings", "2-D continuous: three concentric rings in [0,1]^2, label = ring")
def rings(req: Request) -> TensorDataset:
    spec = DataSpec((2,), None, 3, "vector")
    return generated(req, spec, in_unit_square(_rings, (0.0, 0.0), 1 / 7),
                     class_names=["r=1", "r=2", "r=3"])


@DATASETS.register(
    "gaussian-grid",
    "2-D continuous: a k x k grid of Gaussians in [0,1]^2 (option k=5), label = component",
)
def gaussian_grid(req: Request) -> TensorDataset:
    k = req.option("k", 5)
    if k < 1:
        raise ConfigError(f"{req.name}: option k={k} must be at least 1")

    def raw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k * k, n)
        centre = (np.stack([y // k, y % k], 1) + 0.5) / k
        return centre + (0.1 / k) * rng.standard_normal((n, 2)), y

    spec = DataSpec((2,), None, k * k, "vector")
    return generated(req, spec, in_unit_square(raw, (0.5, 0.5), 1.0),
                     class_names=[f"({i},{j})" for i in range(k) for j in range(k)])


@DATASETS.register(
    "gaussians-1d",
    "1-D continuous: 0.5 N(-1, 0.25^2) + 0.5 N(1.5, 0.5^2), a mixture for 1-D GANs, label = component",
)
def gaussians_1d(req: Request) -> TensorDataset:
    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = np.where(y == 0, -1.0 + 0.25 * rng.standard_normal(n), 1.5 + 0.5 * rng.standard_normal(n))
        return x[:, None].astype(np.float32), y

    return generated(req, DataSpec((1,), None, 2, "vector"), sample,
                     class_names=["N(-1, 0.25^2)", "N(1.5, 0.5^2)"])


RING_RADIUS, RING_SD = 0.4, 0.01


def ring_centres(k: int) -> np.ndarray:
    """The ``(k, 2)`` centres of ``gaussian-ring`` in the unit square."""
    angle = 2 * np.pi * np.arange(k) / k
    return 0.5 + RING_RADIUS * np.stack([np.cos(angle), np.sin(angle)], 1)


@DATASETS.register(
    "gaussian-ring",
    "2-D continuous: k Gaussians (option k=8, s.d. 0.01) on a circle of radius 0.4, label = component",
)
def gaussian_ring(req: Request) -> TensorDataset:
    k = req.option("k", 8)
    if k < 1:
        raise ConfigError(f"{req.name}: option k={k} must be at least 1")
    centres = ring_centres(k)

    def raw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k, n)
        return centres[y] + RING_SD * rng.standard_normal((n, 2)), y

    spec = DataSpec((2,), None, k, "vector")
    return generated(req, spec, in_unit_square(raw, (0.5, 0.5), 1.0),
                     class_names=[f"mode {i}" for i in range(k)])


@DATASETS.register("swiss-roll", "2-D continuous: the Swiss-roll spiral in [0,1]^2, unlabelled")
def swiss_roll(req: Request) -> TensorDataset:
    sample = in_unit_square(_swiss_roll, (0.0, 0.0), 0.45)

    def unlabelled(rng: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        return sample(rng, n)[0], None

    return generated(req, _CONT, unlabelled)


# --- 2-D Gaussians for the VAE posterior-collapse experiment -------------------------------------

def _gaussian_2d(angle: float) -> Sampler:
    """N(m, R diag(5^2, 1) R^T), m = (1, 2), R the rotation by ``angle`` (the long axis along
    ``(cos angle, sin angle)``)."""
    c, s = np.cos(angle), np.sin(angle)
    basis = np.array([[c, s], [-s, c]])  # rows: the images of e1, e2 under R (x = e @ basis)

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        e = rng.standard_normal((n, 2)) * np.array([5.0, 1.0])  # (N, 2), axis-aligned
        return (np.array([1.0, 2.0]) + e @ basis).astype(np.float32), None

    return sample


@DATASETS.register(
    "gaussian-diag",
    "2-D continuous: one Gaussian, std (5, 1) along the axes (CS294-158 HW3: the VAE ignores z)",
)
def gaussian_diag(req: Request) -> TensorDataset:
    return generated(req, _CONT, _gaussian_2d(0.0))


@DATASETS.register(
    "gaussian-full",
    "2-D continuous: the same Gaussian rotated by 45 degrees, full covariance (CS294-158 HW3)",
)
def gaussian_full(req: Request) -> TensorDataset:
    return generated(req, _CONT, _gaussian_2d(np.pi / 4))


# --- shapes -------------------------------------------------------------------------------------

SHAPES = ["square", "circle", "triangle", "line"]
SHAPE_SIZE = 20


def draw_shape(rng: np.random.Generator, kind: int, size: int = SHAPE_SIZE) -> np.ndarray:
    """One ``size x size`` binary image of shape ``SHAPES[kind]`` at a random size and place."""
    from PIL import Image, ImageDraw

    im = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(im)
    if kind in (0, 1):  # square / circle: side or diameter s, top-left corner anywhere it fits
        s = int(rng.integers(5, 15))
        x0, y0 = (int(v) for v in rng.integers(0, size - s + 1, 2))
        box = (x0, y0, x0 + s - 1, y0 + s - 1)
        (draw.rectangle if kind == 0 else draw.ellipse)(box, fill=1)
    elif kind == 2:  # equilateral triangle, circumradius r, random rotation
        r = float(rng.uniform(4, 9))
        cx, cy = rng.uniform(r, size - r, 2)
        a = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        draw.polygon(list(zip((cx + r * np.cos(a)).tolist(), (cy + r * np.sin(a)).tolist(),
                              strict=True)), fill=1)
    else:  # line of length 8..19 through a random point, width 1 or 2
        length, w = float(rng.uniform(8, 19)), int(rng.integers(1, 3))
        a = rng.uniform(0, np.pi)
        dx, dy = 0.5 * length * np.cos(a), 0.5 * length * np.sin(a)
        cx = rng.uniform(abs(dx), size - 1 - abs(dx))
        cy = rng.uniform(abs(dy), size - 1 - abs(dy))
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=1, width=w)
    return np.asarray(im, dtype=np.uint8)


@DATASETS.register(
    "shapes",
    "20x20 binary images of squares, circles, triangles and lines, 4 classes",
)
def shapes(req: Request) -> TensorDataset:
    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, len(SHAPES), n)
        x = np.stack([draw_shape(rng, int(k)) for k in y])[:, None]  # (N, 1, 20, 20)
        return x, y

    spec = DataSpec((1, SHAPE_SIZE, SHAPE_SIZE), 2, len(SHAPES), "image")
    return generated(req, spec, sample, n_test=2000, class_names=SHAPES)
