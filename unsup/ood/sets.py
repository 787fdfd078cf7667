"""Outlier sets in the form a trained run reads: any dataset converted to the run's DataSpec, and
the synthetic ``noise`` and ``constant`` sets.

A model scores only examples of its own shape and levels, so every outlier set is converted to the
in-distribution run's :class:`~unsup.data.DataSpec`, in this order (:func:`convert`):

1. values to intensities in [0, 1]: ``u = x / (levels - 1)`` (continuous sources must lie in [0, 1]);
2. channels: RGB to grey by the ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (Pillow's
   ``convert("L")``), grey to RGB by copying the channel; any other pair is an error;
3. size: bilinear resampling to the run's ``H x W`` (with an antialiasing filter when shrinking);
4. levels: the run's representation applied to the intensities, exactly as the data layer applies
   it to a dataset of floats (``native`` with ``L`` levels: ``round(u (L - 1))``; ``binary``:
   ``u > 0.5``; ``levels:K``: ``floor(u K)``; ``float``: ``u`` itself).

So ``digits`` (8x8, 17 levels) becomes a 28x28, 256-level image for a Fashion-MNIST run, and
``cifar10-jpeg`` (3x32x32) a grey 28x28 one. A dataset already of the run's shape and levels is
converted to the identity (MNIST for a Fashion-MNIST run). What cannot be converted (sequences,
audio, a 2-channel image) raises a :class:`~unsup.errors.DataError` naming both forms.

The synthetic sets follow Nalisnick et al. [1]: ``noise`` draws every value uniformly from the
run's levels; ``constant`` fills each image (each channel) with one uniformly drawn level.

[1] E. Nalisnick, A. Matsukawa, Y. W. Teh, D. Gorur and B. Lakshminarayanan, "Do Deep Generative
    Models Know What They Don't Know?", ICLR 2019.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from unsup.data import DataArgs, DataSpec, TensorDataset
from unsup.data.base import represent
from unsup.errors import ConfigError, DataError

SYNTHETIC = ("noise", "constant")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L")


@dataclass
class OutlierSet:
    """Examples ready for the run's model.

    Attributes:
        name: the name given on the command line (``cifar10-jpeg``, ``noise``, ...).
        x: ``(N, *spec.shape)`` in the run's levels.
        conversion: how the source became this (for the report).
    """

    name: str
    x: torch.Tensor
    conversion: str


def parse_outlier(item: str) -> tuple[str, str | None]:
    """``"cifar10-jpeg=/data/cifar"`` -> ``("cifar10-jpeg", "/data/cifar")``; ``"digits"`` ->
    ``("digits", None)``. The directory is where that dataset's files are (its ``--data-dir``)."""
    name, sep, root = item.partition("=")
    if not name or (sep and not root):
        raise ConfigError(f"outlier set {item!r}: expected NAME or NAME=DIR (e.g. cifar10-jpeg=DIR)")
    return name, (root or None)


def subsample(x: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """At most ``n`` examples of ``x``: a seeded uniform subset (in their original order)."""
    if n is None or n >= len(x):
        return x
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[keep.sort().values]


def intensities(x: torch.Tensor, levels: int | None, name: str) -> torch.Tensor:
    """Values as floats in [0, 1]."""
    if levels is None:
        u = x.float()
        if u.numel() and (u.min() < 0 or u.max() > 1):
            raise DataError(f"{name}: continuous values outside [0, 1] cannot be converted to levels")
        return u
    return x.float() / (levels - 1)


def quantise(u: torch.Tensor, target: DataSpec, representation: str, seed: int = 0) -> torch.Tensor:
    """Intensities ``u`` in [0, 1] in the run's representation (module docstring, step 4)."""
    if target.levels is None:
        return u
    if representation == "native":
        return (u * (target.levels - 1)).round().long().clamp_(0, target.levels - 1)
    floats = TensorDataset(u, replace(target, levels=None, num_classes=None), split="test")
    x = represent(floats, representation, seed=seed).x  # binary, levels:K, uint8 as the data layer does
    if not isinstance(x, torch.Tensor) or x.is_floating_point() or int(x.max()) >= target.levels:
        raise DataError(f"representation {representation!r} does not give the run's {target.levels} levels")
    return x


def convert(x: torch.Tensor, spec: DataSpec, target: DataSpec, representation: str, name: str,
            seed: int = 0) -> tuple[torch.Tensor, str]:
    """Examples ``x`` of ``spec`` in the form of ``target`` (module docstring).

    Args:
        x: ``(N, *spec.shape)``.
        spec: their spec.
        target: the run's spec.
        representation: the run's representation (``native``, ``binary``, ``levels:K``, ...).
        name: the set's name, for messages.
        seed: seed of a stochastic representation (``binary-dynamic`` draws once, like a test split).

    Returns:
        The converted examples and a description of the conversion.

    Raises:
        DataError: a conversion that does not exist (not images, or channels other than 1 <-> 3).
    """
    if (spec.shape, spec.levels) == (target.shape, target.levels):
        return x, "as loaded"
    if spec.kind != "image" or target.kind != "image" or len(spec.shape) != 3 or len(target.shape) != 3:
        raise DataError(f"outlier set {name} has {spec.kind} examples of shape {spec.shape} with "
                        f"levels={spec.levels}; the run models {target.kind} examples of shape "
                        f"{target.shape} with levels={target.levels}, and only images convert")
    (c, h, w), (tc, th, tw) = spec.shape, target.shape
    u = intensities(x, spec.levels, name)  # (N, C, H, W)
    steps = []
    if c != tc:
        if (c, tc) == (3, 1):
            u = (u * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
            steps.append("RGB to grey (BT.601 luma)")
        elif (c, tc) == (1, 3):
            u = u.expand(-1, 3, -1, -1)
            steps.append("grey to RGB (channel copied)")
        else:
            raise DataError(f"outlier set {name} has {c} channels and the run's images {tc}: only "
                            f"RGB <-> grey convert")
    if (h, w) != (th, tw):
        u = torch.cat([F.interpolate(u[i:i + 1024], size=(th, tw), mode="bilinear", align_corners=False,
                                     antialias=th < h or tw < w) for i in range(0, len(u), 1024)])
        u = u.clamp_(0, 1)
        steps.append(f"{h}x{w} to {th}x{tw} (bilinear)")
    if spec.levels != target.levels:
        steps.append(f"{spec.levels or 'continuous'} to {target.levels or 'continuous'} levels "
                     f"({representation})")
    return quantise(u, target, representation, seed), ", ".join(steps) or "levels requantised"


def synthetic(name: str, target: DataSpec, n: int, seed: int) -> OutlierSet:
    """``noise`` or ``constant``: ``n`` examples of the run's spec, seeded."""
    g = torch.Generator().manual_seed(seed + (17 if name == "noise" else 31))
    if name == "noise":
        x = (torch.rand((n, *target.shape), generator=g) if target.levels is None
             else torch.randint(0, target.levels, (n, *target.shape), generator=g))
        return OutlierSet(name, x, "uniform random levels, independently per value")
    channels = target.shape[0] if target.kind == "image" else 1
    shape = (n, channels, *([1] * (len(target.shape) - 1)))
    v = (torch.rand(shape, generator=g) if target.levels is None
         else torch.randint(0, target.levels, shape, generator=g))
    return OutlierSet(name, v.expand(n, *target.shape).clone(), "one uniform random level per image "
                      "and channel")


def load_outlier_set(item: str, target: DataSpec, representation: str, n: int | None, *,
                     split: str = "test", seed: int = 0, default_size: int = 2000,
                     **load_args: Any) -> OutlierSet:
    """The outlier set ``item`` (``NAME``, ``NAME=DIR``, ``noise`` or ``constant``), converted to
    ``target`` and cut to ``n`` examples (a seeded subset; synthetic sets have ``n`` or
    ``default_size``).

    Args:
        item: as on the command line.
        target: the in-distribution run's spec.
        representation: the run's representation.
        n: at most this many examples (``None``: all of the split).
        split: which split of a dataset to use.
        seed: seed of the subset and of synthetic sets.
        **load_args: passed on to :meth:`unsup.data.DataArgs` (e.g. ``download``).
    """
    name, root = parse_outlier(item)
    if name in SYNTHETIC:
        if root is not None:
            raise ConfigError(f"outlier set {item!r}: {name} is synthetic and reads no directory")
        return synthetic(name, target, n or default_size, seed)
    ds = DataArgs(name=name, root=root, seed=seed, **load_args).load(split)
    if not isinstance(ds, TensorDataset):
        raise DataError(f"outlier set {name} is a {ds.spec.kind} stream of shape {ds.spec.shape}; "
                        f"the run models {target.kind} examples of shape {target.shape}")
    x, how = convert(subsample(ds.x, n, seed), ds.spec, target, representation, name, seed)
    return OutlierSet(name, x, how)
