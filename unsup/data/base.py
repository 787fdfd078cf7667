"""Datasets as in-memory tensors with a spec, and the representations a model can ask for.

A dataset is a finite collection of examples ``x`` (and labels ``y`` where it has them). Its
:class:`DataSpec` tells a model everything it needs to build itself: the shape of one example, how
many discrete levels each dimension takes (``None`` for continuous data), and the number of classes.

Representations (the ``representation`` argument of :func:`unsup.data.load`):

==================  ==========================================================================
``native``          as the source stores it (digits: 17 levels, MNIST: 256 levels, toys: floats)
``binary``          ``1[x / (levels-1) > 0.5]`` -- a fixed threshold, 2 levels
``binary-dynamic``  Bernoulli(x / (levels-1)), redrawn every time a training batch is drawn;
                    validation and test splits are drawn once with a fixed seed so that their
                    NLL is a fixed number
``levels:K``        ``floor(x / levels * K)`` (``floor(x * K)`` for floats in [0, 1]), K levels
``uint8``           ``levels:256``
``float``           ``x / (levels-1)`` in [0, 1], continuous
==================  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from unsup.errors import ConfigError, DataError

Batch = dict[str, torch.Tensor]

REPRESENTATIONS = ("native", "binary", "binary-dynamic", "levels:K", "uint8", "float")


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data.

    Attributes:
        shape: shape of one example: ``(C, H, W)`` images, ``(D,)`` vectors, ``(T,)`` sequences.
        levels: number of discrete values per dimension (``x`` takes ``0 .. levels-1``), or
            ``None`` for continuous data.
        num_classes: number of label classes, or ``None`` when the data is unlabelled.
        kind: ``"image"``, ``"vector"`` or ``"sequence"``.
    """

    shape: tuple[int, ...]
    levels: int | None
    num_classes: int | None = None
    kind: str = "image"

    @property
    def dims(self) -> int:
        """Number of scalar dimensions of one example (the denominator of bits/dim)."""
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(**{**d, "shape": tuple(d["shape"])})


class Dataset:
    """Base class: a sized collection that returns batches by index.

    Subclasses set ``spec``, ``name``, ``split`` and ``class_names`` and implement ``__len__`` and
    :meth:`batch`.
    """

    spec: DataSpec
    name: str
    split: str
    class_names: list[str] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Batch:
        """Return ``{"x": ..., "y": ..., "index": ...}`` for the examples at ``index`` ("y" only
        if labelled; "index" the examples' positions in the dataset, for methods that keep
        something per example, such as a memory bank).

        Args:
            index: 1-D long tensor of example indices.
            generator: randomness for stochastic representations (dynamic binarisation).
        """
        raise NotImplementedError

    @property
    def labels(self) -> torch.Tensor | None:
        return None

    def __repr__(self) -> str:
        s = self.spec
        return (
            f"{type(self).__name__}({self.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={s.shape}, levels={s.levels}, classes={s.num_classes})"
        )


class TensorDataset(Dataset):
    """Examples held as one tensor ``x`` of shape ``(N, *spec.shape)``.

    Discrete data is a long tensor with values in ``[0, levels)``; continuous data is float. When
    ``binarize_on_draw`` is set, ``x`` holds probabilities in [0, 1] and each batch draws fresh
    binary values from them.
    """

    def __init__(
        self,
        x: torch.Tensor,
        spec: DataSpec,
        *,
        y: torch.Tensor | None = None,
        name: str = "",
        split: str = "train",
        class_names: Sequence[str] | None = None,
        binarize_on_draw: bool = False,
    ) -> None:
        if tuple(x.shape[1:]) != tuple(spec.shape):
            raise DataError(f"{name}: examples have shape {tuple(x.shape[1:])}, spec says {spec.shape}")
        if y is not None and len(y) != len(x):
            raise DataError(f"{name}: {len(x)} examples but {len(y)} labels")
        self.x, self.y, self.spec = x, y, spec
        self.name, self.split = name, split
        self.class_names = list(class_names) if class_names is not None else None
        self.binarize_on_draw = binarize_on_draw

    def __len__(self) -> int:
        return len(self.x)

    @property
    def labels(self) -> torch.Tensor | None:
        return self.y

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Batch:
        x = self.x[index]
        if self.binarize_on_draw:
            x = torch.bernoulli(x, generator=generator).long()
        out = {"x": x, "index": index.long()}
        if self.y is not None:
            out["y"] = self.y[index]
        return out

    def subset(self, index: torch.Tensor, split: str) -> TensorDataset:
        y = self.y[index] if self.y is not None else None
        return TensorDataset(
            self.x[index], self.spec, y=y, name=self.name, split=split,
            class_names=self.class_names, binarize_on_draw=self.binarize_on_draw,
        )


class WindowDataset(Dataset):
    """Fixed-length windows of one long 1-D stream of discrete symbols (text, audio).

    Example ``i`` is ``stream[i*stride : i*stride + length]``; windows are views, never copies.
    """

    def __init__(
        self, stream: torch.Tensor, length: int, levels: int, *, stride: int | None = None,
        name: str = "", split: str = "train",
    ) -> None:
        if stream.dim() != 1:
            raise DataError(f"{name}: expected a 1-D stream, got shape {tuple(stream.shape)}")
        self.stride = stride or length
        if len(stream) < length:
            raise DataError(f"{name} ({split}): {len(stream)} symbols, fewer than one window of {length}")
        self.stream, self.length = stream.long(), length
        self.spec = DataSpec((length,), levels, None, "sequence")
        self.name, self.split = name, split

    def __len__(self) -> int:
        return (len(self.stream) - self.length) // self.stride + 1

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Batch:
        starts = index.long() * self.stride
        offsets = torch.arange(self.length)
        return {"x": self.stream[starts[:, None] + offsets[None, :]]}


def split_train_val(
    ds: TensorDataset, split: str, val_fraction: float, seed: int
) -> TensorDataset:
    """Carve a seeded validation set out of a training set.

    The same ``seed`` always gives the same partition; ``train`` and ``val`` never overlap.
    """
    if split not in ("train", "val"):
        raise ValueError(split)
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(ds), generator=g)
    n_val = max(1, int(round(len(ds) * val_fraction)))
    idx = perm[:n_val] if split == "val" else perm[n_val:]
    return ds.subset(idx.sort().values, split)


def parse_representation(rep: str) -> tuple[str, int | None]:
    """``"levels:4"`` -> ``("levels", 4)``; ``"binary"`` -> ``("binary", None)``."""
    if rep.startswith("levels:"):
        try:
            k = int(rep.split(":", 1)[1])
        except ValueError:
            k = 0
        if k < 2:
            raise ConfigError(f"representation {rep!r}: expected levels:K with an integer K >= 2")
        return "levels", k
    if rep == "uint8":
        return "levels", 256
    if rep not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {rep!r}; expected one of {', '.join(REPRESENTATIONS)}")
    return rep, None


def represent(ds: Dataset, representation: str, *, seed: int = 0) -> Dataset:
    """Convert a native dataset into the requested representation (see module docstring)."""
    kind, k = parse_representation(representation)
    if kind == "native":
        return ds
    if not isinstance(ds, TensorDataset):
        raise ConfigError(
            f"{ds.name} supports only the native representation (it is a {ds.spec.kind} stream)"
        )
    levels = ds.spec.levels
    if levels is None:
        intensity = ds.x.float()
        if kind != "float" and (intensity.min() < 0 or intensity.max() > 1):
            raise ConfigError(f"{ds.name}: continuous data outside [0, 1] cannot be quantised")
    else:
        intensity = ds.x.float() / (levels - 1)
    spec = ds.spec
    dynamic = False
    if kind == "float":
        x, spec = intensity, replace(spec, levels=None)
    elif kind == "binary":
        x, spec = (intensity > 0.5).long(), replace(spec, levels=2)
    elif kind == "binary-dynamic":
        spec = replace(spec, levels=2)
        if ds.split == "train":
            x, dynamic = intensity, True
        else:  # fixed draw so that val/test NLL is a number, not a random variable
            g = torch.Generator().manual_seed(seed + 7919)
            x = torch.bernoulli(intensity, generator=g).long()
    else:  # levels:K
        assert k is not None
        if levels is None:
            x = (intensity * k).floor().clamp_(0, k - 1).long()
        else:
            x = torch.div(ds.x.long() * k, levels, rounding_mode="floor")
        spec = replace(spec, levels=k)
    return TensorDataset(
        x, spec, y=ds.y, name=ds.name, split=ds.split, class_names=ds.class_names,
        binarize_on_draw=dynamic,
    )
