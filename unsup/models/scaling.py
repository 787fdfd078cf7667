"""The scale in which models that add noise to data see them: ``[-1, 1]`` or standardised.

Models that compare, perturb or integrate data in a continuous space (implicit models, diffusion,
flow matching, score models) need the data in a known scale, so that noise levels, kernel
bandwidths, Lipschitz constants and step sizes mean the same whatever the data's units:

* discrete data with ``L`` levels: ``u = x / (L - 1) * 2 - 1`` in ``[-1, 1]``, one level a bin of
  width ``2 / (L - 1)`` centred on it; generated values are rounded back to the nearest level;
* continuous data: ``u = (x - shift) / scale`` with the training set's mean and standard deviation
  (per dimension for vectors, one pair for images), kept as buffers by :meth:`UnitScaled.prepare`.
  A density in ``u`` is one in ``x`` after ``log p(x) = log p(u) - sum_d log scale_d``
  (:meth:`UnitScaled.log_det_to_unit`).
"""

from __future__ import annotations

from typing import Any

import torch

from unsup.data.base import DataSpec
from unsup.models.base import Model


def levels_to_unit(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer levels ``[0, L)`` to floats in ``[-1, 1]``."""
    return x.float() * (2 / (levels - 1)) - 1


def unit_to_levels(g: torch.Tensor, levels: int) -> torch.Tensor:
    """Floats in ``[-1, 1]`` to the nearest of ``levels`` integer levels (long)."""
    return ((g + 1) * ((levels - 1) / 2)).round().clamp(0, levels - 1).long()


class UnitScaled(Model):
    """A model whose networks see the data in the unit scale of the module docstring."""

    def __init__(self, spec: DataSpec, config: Any) -> None:
        super().__init__(spec, config)
        # continuous data: x = shift + scale * (what the networks see); set by prepare()
        stat = spec.shape if spec.kind == "vector" else ()
        self.register_buffer("shift", torch.zeros(stat))
        self.register_buffer("scale", torch.ones(stat))

    def prepare(self, data: Any) -> None:
        """Continuous data: keep the training set's mean and standard deviation."""
        if self.spec.levels is None and hasattr(data, "x"):
            x = data.x.double()
            if self.spec.kind == "vector":
                mean, std = x.mean(0), x.std(0)
            else:
                mean, std = x.mean(), x.std()
            self.shift.copy_(mean.float())
            self.scale.copy_(std.clamp_min(1e-6).float())

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data as the networks see them: levels scaled to ``[-1, 1]``; floats standardised."""
        levels = self.spec.levels
        if levels is None:
            return (x.float() - self.shift) / self.scale
        return levels_to_unit(x, levels)

    def from_unit(self, g: torch.Tensor) -> torch.Tensor:
        """Network outputs as data: rounded to the levels (long), or floats in the data's units."""
        levels = self.spec.levels
        if levels is None:
            return self.shift + self.scale * g
        return unit_to_levels(g, levels)

    def log_det_to_unit(self) -> torch.Tensor:
        """``log |du/dx|`` of one example (continuous data): ``-sum_d log scale_d``, a scalar."""
        per = self.scale.log().sum()
        return -(per if self.spec.kind == "vector" else per * self.spec.dims)
