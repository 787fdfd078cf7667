"""What the implicit models share: option checks and sampling in the unit scale.

Their networks see the data in the scale of :mod:`unsup.models.scaling` (levels in ``[-1, 1]``,
continuous data standardised), so that Lipschitz constraints, kernel bandwidths, Langevin step
sizes and learning rates mean the same whatever the data's units.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import torch

from unsup.errors import ConfigError
from unsup.models.scaling import UnitScaled, levels_to_unit, unit_to_levels

__all__ = ["ImplicitModel", "check_options", "levels_to_unit", "unit_to_levels"]


def check_options(model: str, config: Any, at_least_1: Sequence[str] = (),
                  non_negative: Sequence[str] = ()) -> None:
    """Raise a :class:`ConfigError` naming the first option of ``config`` out of its range."""
    for name in at_least_1:
        if getattr(config, name) < 1:
            raise ConfigError(f"{model}: {name} must be at least 1, got {getattr(config, name)}")
    for name in non_negative:
        if not getattr(config, name) >= 0:  # `not >=` also refuses NaN
            raise ConfigError(f"{model}: {name} must be >= 0, got {getattr(config, name)}")


class ImplicitModel(UnitScaled, abc.ABC):
    """A sampler without a likelihood. Subclasses implement :meth:`draw` (network scale); a class
    that does not cannot be instantiated."""

    samples = True

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

    def critic_network(self) -> Any:
        """The network that scores examples (a :class:`~unsup.models.implicit.nets.Discriminator`)
        whose features are the representation, or ``None`` (the default: nothing to probe)."""
        return None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The scoring network's features ``phi(x)`` (its body before the final linear map),
        ``(B, D)``: the representation ``unsup probe`` judges, as Radford et al. 2016 (DCGAN,
        section 5.1) classified images with a trained discriminator's features. A model that
        ``encodes`` returns its :meth:`critic_network` here; a BiGAN has an encoder instead.

        Raises:
            ConfigError: the model has no scoring network (a moment-matching generator).
        """
        net = self.critic_network()
        if net is None:
            raise ConfigError(f"{type(self).__name__} has no discriminator or energy network to probe")
        self.check_input(x)
        return net.features(self.to_unit(x.to(self.device)))
