"""Mutated training data: the ``mutate=RATE`` option of every dataset of discrete values.

``unsup train MODEL --data NAME --data-opt mutate=0.2`` trains on inputs in which each dimension
(pixel, channel value, symbol) is replaced, with probability ``mu = 0.2``, by a level drawn
uniformly from ``0 .. levels-1``; the other dimensions keep their value. This is the perturbation
of Ren et al. [1], whose *background model*, trained on such inputs, learns the population-level
statistics of the data (smoothness, the share of background pixels) but not its semantic content;
:mod:`unsup.ood.likelihood` divides it out of a model's likelihood.

Only the training split is mutated: validation and test examples stay clean, so the run's
reported NLL is that of real data. The mutation is redrawn every time a training batch is drawn,
from the generator the training loop gives for that step (a resumed run sees the same mutations);
a draw without a generator uses one seeded from the run's seed.

[1] J. Ren, P. J. Liu, E. Fertig, J. Snoek, R. Poplin, M. A. DePristo, J. V. Dillon and
    B. Lakshminarayanan, "Likelihood Ratios for Out-of-Distribution Detection", NeurIPS 2019.
"""

from __future__ import annotations

from typing import Any

import torch

from unsup.data.base import Batch, Dataset, TensorDataset
from unsup.errors import ConfigError


def mutate(x: torch.Tensor, rate: float, levels: int, generator: torch.Generator | None = None
           ) -> torch.Tensor:
    """``x`` with each element replaced, with probability ``rate``, by a uniform level.

    Args:
        x: discrete values in ``[0, levels)``, any shape.
        rate: the mutation rate ``mu`` in [0, 1].
        levels: the number of levels.
        generator: randomness (``None``: the global generator).

    Returns:
        A new tensor of the same shape and dtype.
    """
    hit = torch.rand(x.shape, generator=generator) < rate
    noise = torch.randint(0, levels, x.shape, generator=generator, dtype=x.dtype)
    return torch.where(hit, noise, x)


def parse_rate(value: Any, name: str) -> float:
    """The ``mutate`` option as a float in [0, 1) (command-line options arrive as strings)."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not 0 <= rate < 1:
        raise ConfigError(f"{name}: option mutate={value!r} must be a rate in [0, 1) (the chance "
                          f"that each value is replaced by a uniform random level)")
    return rate


class MutatedDataset(TensorDataset):
    """A training split whose batches are mutated as they are drawn (module docstring)."""

    def __init__(self, ds: TensorDataset, rate: float, seed: int = 0) -> None:
        super().__init__(ds.x, ds.spec, y=ds.y, name=ds.name, split=ds.split,
                         class_names=ds.class_names, binarize_on_draw=ds.binarize_on_draw)
        self.rate, self.seed = rate, seed

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Batch:
        out = super().batch(index, generator)
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed + 104729)
        out["x"] = mutate(out["x"], self.rate, self.spec.levels, g)
        return out

    def subset(self, index: torch.Tensor, split: str) -> MutatedDataset:
        return MutatedDataset(super().subset(index, split), self.rate, self.seed)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", mutate={self.rate})"


def with_mutation(ds: Dataset, rate: Any, seed: int = 0) -> Dataset:
    """``ds`` mutated at ``rate`` if it is a training split; other splits are returned unchanged.

    Raises:
        ConfigError: a bad rate, or data that has no levels to draw from (continuous values, streams).
    """
    rate = parse_rate(rate, ds.name)
    if ds.split != "train" or rate == 0:
        return ds
    if not isinstance(ds, TensorDataset) or ds.spec.levels is None:
        raise ConfigError(f"{ds.name}: option mutate needs discrete examples held in memory "
                          f"(images, vectors of levels); this split has levels={ds.spec.levels}")
    return MutatedDataset(ds, rate, seed)
