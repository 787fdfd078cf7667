"""Two datasets side by side for unpaired translation: ``unpaired-A+B`` (CycleGAN).

``unpaired-fashion-mnist+colored-fashion-mnist`` is Fashion-MNIST as domain A and its coloured
variant as domain B. Batches hold A's examples as ``x`` (labels ``y``) and as many of B's as
``x_b`` (``y_b``): B's example for A's example ``i`` is ``partner[i]``, a fixed random map drawn
per split, so that the two are unrelated even when B is made from A's very images. Each side is
loaded in its native representation; A's ``spec`` is the dataset's, B's is ``spec_b``.
"""

from __future__ import annotations

import zlib

import torch

from unsup.data.base import Batch, TensorDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError


class UnpairedDataset(TensorDataset):
    """Domain A as a :class:`TensorDataset`, with domain B's examples beside each batch."""

    def __init__(self, a: TensorDataset, b: TensorDataset, partner: torch.Tensor, name: str,
                 split: str) -> None:
        super().__init__(a.x, a.spec, y=a.y, name=name, split=split, class_names=a.class_names)
        self.a, self.b, self.partner = a, b, partner
        self.spec_b = b.spec

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Batch:
        out = super().batch(index, generator)
        j = self.partner[index]
        out["x_b"] = self.b.x[j]
        if self.b.y is not None:
            out["y_b"] = self.b.y[j]
        return out

    def subset(self, index: torch.Tensor, split: str) -> UnpairedDataset:
        return UnpairedDataset(self.a.subset(index, split), self.b, self.partner[index], self.name, split)


@DATASETS.register(
    "unpaired-NAME+NAME",
    "two datasets as domains A and B for translation (CycleGAN), e.g. unpaired-digits+colored-digits",
)
def unpaired(req: Request) -> UnpairedDataset:
    from unsup.data import load  # late import: unsup.data imports this module

    assert req.arg is not None
    names = req.arg.split("+")
    if len(names) != 2 or not all(names):
        raise ConfigError(f"{req.name}: name two datasets joined by '+', e.g. "
                          f"unpaired-fashion-mnist+colored-fashion-mnist")
    sides = [load(n, req.split, "native", root=req.root, download=req.download,
                  val_fraction=req.val_fraction, seed=req.seed, **req.options) for n in names]
    for n, side in zip(names, sides, strict=True):
        if not isinstance(side, TensorDataset) or side.spec.kind != "image" or side.spec.levels is None:
            raise ConfigError(f"{req.name}: {n} is not a dataset of discrete images "
                              f"(shape {side.spec.shape}, levels {side.spec.levels})")
    a, b = sides
    run_seed = req.seed if req.split != "test" else 0
    g = torch.Generator().manual_seed(zlib.crc32(f"{req.name}|{req.split}|{run_seed}".encode()))
    partner = torch.randperm(len(b), generator=g).repeat(len(a) // len(b) + 1)[:len(a)]
    return UnpairedDataset(a, b, partner, req.name, req.split)
