"""Generative moment-matching network (Li, Swersky & Zemel 2015; Dziugaite et al. 2015).

A generator ``G`` maps noise ``z ~ N(0, I)`` to examples and is trained to minimise the maximum
mean discrepancy between a batch of data and a batch of its samples,

    MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y),

with ``k`` a sum of Gaussian kernels of several bandwidths (:mod:`unsup.nn.mmd`). For a
characteristic kernel MMD is zero only when the distributions are equal, so no discriminator is
needed: the kernel is a fixed, infinitely wide one, and training is a single minimisation, stable
but data-hungry in high dimensions (the batch must estimate the kernel means). The loss is
``sqrt(max(MMD^2, 0))`` of the unbiased estimate, as in the paper (its gradient stays large
near 0); the bandwidths are multiples of the median distance between the batch's examples
(``bandwidths`` empty) or fixed values in the networks' scale (:mod:`~unsup.models.implicit.base`).
Validation reports the unbiased MMD^2 on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.implicit.base import ImplicitModel, check_options
from unsup.models.implicit.nets import ARCHS, Generator, resolve_arch
from unsup.nn.mmd import MEDIAN_SCALES, median_bandwidths, mmd2


@dataclass
class GMMNConfig:
    """Options of :class:`GMMN`.

    Attributes:
        bandwidths: the Gaussian kernels' bandwidths in the networks' scale; empty: the median
            distance of each batch times (0.25, 0.5, 1, 2, 4).
        latent: dimensions of the noise ``z``.
        arch: ``mlp`` (the paper's; any data) or ``dcgan`` (images; ``auto``: ``dcgan`` for images,
            ``mlp`` otherwise). The MLP is the default: the loss needs large batches, which a
            convolutional generator makes slow on a CPU.
        hidden: units of the MLP, base channels of the convolutional generator.
        layers: linear layers of the MLP.
    """

    bandwidths: list[float] = field(default_factory=list)
    latent: int = 16
    arch: str = field(default="mlp", metadata={"choices": ARCHS})
    hidden: int = 256
    layers: int = 4


PRESETS = {
    # Li et al. 2015, MNIST in [0, 1] pixels (here [-1, 1]: bandwidths doubled): an MLP
    # 10-64-256-256-1024-784 with sigmas 2, 5, 10, 20, 40, 80, minibatch 1000
    "paper": {"bandwidths": [4.0, 10.0, 20.0, 40.0, 80.0, 160.0], "latent": 10, "arch": "mlp",
              "hidden": 1024, "layers": 5},
}


@register("gmmn", "generative moment-matching network: a generator trained by the MMD of a sum of "
          "Gaussian kernels between data and samples (no discriminator)", presets=PRESETS)
class GMMN(ImplicitModel):
    """A generator trained to minimise MMD (module docstring)."""

    Config = GMMNConfig

    def __init__(self, spec: DataSpec, config: GMMNConfig) -> None:
        super().__init__(spec, config)
        c = config
        check_options("gmmn", c, at_least_1=("latent", "hidden", "layers"))
        if any(not b > 0 for b in c.bandwidths):
            raise ConfigError(f"gmmn: bandwidths must be positive, got {c.bandwidths}")
        if spec.kind == "sequence":
            raise ConfigError("gmmn: sequences are not supported; use images or vectors")
        self.generator = Generator(spec, resolve_arch(c.arch, spec), c.latent, c.hidden, c.layers,
                                   bounded=spec.levels is not None)

    def draw(self, n: int, y: torch.Tensor | None, temperature: float) -> torch.Tensor:
        z = torch.randn(n, self.config.latent, device=self.device) * temperature
        return self.generator(z)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        real, fake = self.to_unit(x), self.draw(len(x), None, 1.0)
        bandwidths = (torch.tensor(self.config.bandwidths, device=real.device)
                      if self.config.bandwidths else median_bandwidths(real, fake, MEDIAN_SCALES))
        value = mmd2(real, fake, bandwidths)
        if not self.training:
            return {"loss": value}
        return {"loss": value.clamp_min(0).add(1e-12).sqrt(), "mmd2": value.detach()}
