"""What the implicit models share: the scale their networks see the data in, and sampling.

Discrete data are scaled to ``[-1, 1]`` (``x / (L - 1) * 2 - 1``) and generated values are rounded
back to the levels; continuous data are standardised by the training set's mean and standard
deviation (per dimension for vectors, one pair for images), so that Lipschitz constraints, kernel
bandwidths, Langevin step sizes and learning rates mean the same whatever the data's units.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.base import Model


def check_options(model: str, config: Any, at_least_1: Sequence[str] = (),
                  non_negative: Sequence[str] = ()) -> None:
    """Raise a :class:`ConfigError` naming the first option of ``config`` out of its range."""
    for name in at_least_1:
        if getattr(config, name) < 1:
            raise ConfigError(f"{model}: {name} must be at least 1, got {getattr(config, name)}")
    for name in non_negative:
        if not getattr(config, name) >= 0:  # `not >=` also refuses NaN
            raise ConfigError(f"{model}: {name} must be >= 0, got {getattr(config, name)}")


def levels_to_unit(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer levels ``[0, L)`` to floats in ``[-1, 1]``."""
    return x.float() * (2 / (levels - 1)) - 1


def unit_to_levels(g: torch.Tensor, levels: int) -> torch.Tensor:
    """Floats in ``[-1, 1]`` to the nearest of ``levels`` integer levels (long)."""
    return ((g + 1) * ((levels - 1) / 2)).round().clamp(0, levels - 1).long()


class ImplicitModel(Model, abc.ABC):
    """A sampler without a likelihood. Subclasses implement :meth:`draw` (network scale); a class
    that does not cannot be instantiated."""

    samples = True

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

    @abc.abstractmethod
    def draw(self, n: int, y: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """``n`` samples in the networks' scale (``y``: checked labels of a conditional model)."""

    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` examples in the data's representation (eval mode: batch norm from its running
        statistics, no training noise)."""
        y = self.sample_labels(y, n)
        was = self.training
        self.eval()
        try:
            with torch.no_grad() if self.draw_without_grad else torch.enable_grad():
                return self.from_unit(self.draw(n, y, temperature)).detach()
        finally:
            self.train(was)

    draw_without_grad = True  # an EBM's Langevin sampler needs gradients with respect to x
