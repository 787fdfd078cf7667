"""Noise-conditional score network with annealed Langevin sampling (Song & Ermon 2019, 2020).

The score ``s(x, sigma) ~ grad_x log p_sigma(x)`` of the data blurred by Gaussian noise of each
level ``sigma_1 > ... > sigma_L`` (geometric, from ``sigma_max`` to ``sigma_min``) is learned by
denoising score matching (Vincent 2011): for ``x~ = x + sigma z``,

    L = E_{sigma, x, z} sigma^2 / 2 || s(x~, sigma) + z / sigma ||^2
      = E 1/2 || sigma s(x~, sigma) + z ||^2,

whose minimiser is the score of the blurred data (the weight ``sigma^2`` makes the levels count
alike). The network is the noise-conditional one shared with diffusion
(:mod:`~unsup.models.diffusion.nets`) at time ``(log sigma - log sigma_min) / (log sigma_max - log
sigma_min)``, its output divided by ``sigma`` (the score's scale ``1 / sigma``; Song & Ermon 2020).

Sampling is annealed Langevin dynamics: from ``N(0, sigma_max^2 I)``, at each level in turn,
``langevin_steps`` steps of

    x <- x + (a_i / 2) s(x, sigma_i) + sqrt(a_i) z,     a_i = step_size sigma_i^2 / sigma_L^2,

then one denoising step ``x + sigma_L^2 s(x, sigma_L)`` (Tweedie's formula: the posterior mean of
the clean data). ``sigma_max`` defaults to the largest distance between two training examples
(technique 1 of the 2020 paper), in the unit scale of :mod:`unsup.models.scaling`. The model has
no likelihood; validation reports the denoising loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.diffusion.base import NoiseConditional
from unsup.models.diffusion.nets import DenoiserConfig


@dataclass
class NCSNConfig(DenoiserConfig):
    """Options of :class:`NCSN` (module docstring), besides the network's.

    Attributes:
        sigma_max: the largest noise level, in the unit scale (0: the training set's largest
            distance between two examples, measured on up to 2,000 of them).
        sigma_min: the smallest noise level.
        noise_levels: number of levels ``L``.
        langevin_steps: Langevin steps per level when sampling.
        step_size: ``step_size`` of the Langevin steps (at the smallest level).
        denoise: end sampling with the denoising step.
    """

    sigma_max: float = 0.0
    sigma_min: float = 0.01
    noise_levels: int = 10
    langevin_steps: int = 100
    step_size: float = 2e-5
    denoise: bool = True


PRESETS = {
    # Song & Ermon 2020 (NCSNv2), CIFAR-10: 232 levels from 50 to 0.01, 5 steps each, eps 6.2e-6
    # (their network is a RefineNet; here the DDPM U-Net of the same size class)
    "paper": {"hidden": 128, "mults": [1, 2, 2, 2], "res_blocks": 2, "attention": [16],
              "sigma_max": 50.0, "sigma_min": 0.01, "noise_levels": 232, "langevin_steps": 5,
              "step_size": 6.2e-6},
}


@register("ncsn", "noise-conditional score network: denoising score matching at many noise levels, "
          "sampled by annealed Langevin dynamics", presets=PRESETS)
class NCSN(NoiseConditional):
    """Score model (module docstring)."""

    Config = NCSNConfig
    sampling_options = ("steps", "step_size")

    def __init__(self, spec: DataSpec, config: NCSNConfig) -> None:
        c = config
        if not 0 < c.sigma_min or not c.sigma_max >= 0 or (c.sigma_max and c.sigma_max <= c.sigma_min):
            raise ConfigError(f"ncsn: need 0 < sigma_min < sigma_max (or sigma_max 0: from the data), "
                              f"got {c.sigma_min}, {c.sigma_max}")
        if c.noise_levels < 2 or c.langevin_steps < 1 or not c.step_size > 0:
            raise ConfigError(f"ncsn: noise_levels must be >= 2, langevin_steps >= 1 and step_size > 0 "
                              f"(got {c.noise_levels}, {c.langevin_steps}, {c.step_size})")
        super().__init__(spec, config)
        self.register_buffer("sigma_max", torch.tensor(float(c.sigma_max or 1.0)))

    def prepare(self, data: Any) -> None:
        """The unit scale's statistics, and ``sigma_max`` from the data when it is 0."""
        super().prepare(data)
        if self.config.sigma_max == 0 and hasattr(data, "x"):
            g = torch.Generator().manual_seed(0)
            pick = torch.randperm(len(data.x), generator=g)[:2000]
            u = self.to_unit(data.x[pick]).flatten(1).double()
            self.sigma_max.fill_(float(torch.cdist(u, u).max()))

    def sigmas(self) -> torch.Tensor:
        """The noise levels, largest first, ``(L,)``."""
        lo, hi = math.log(self.config.sigma_min), math.log(float(self.sigma_max))
        return torch.linspace(hi, lo, self.config.noise_levels, device=self.device).exp()

    def score(self, x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None,
              guidance: float = 1.0) -> torch.Tensor:
        """``s(x, sigma)`` for per-example levels ``sigma`` ``(B,)``."""
        lo, hi = math.log(self.config.sigma_min), math.log(float(self.sigma_max))
        t = (sigma.log() - lo) / (hi - lo)
        return self.predict(x, t, y, guidance) / sigma.view(-1, *([1] * (x.dim() - 1)))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        u = self.to_unit(x)
        sigmas = self.sigmas()
        sigma = sigmas[torch.randint(0, len(sigmas), (len(u),), device=u.device)]
        z = torch.randn_like(u)
        noisy = u + sigma.view(-1, *([1] * (u.dim() - 1))) * z
        s = self.score(noisy, sigma, self.training_labels(batch.get("y"), len(x)))
        per = (sigma.view(-1, *([1] * (u.dim() - 1))) * s + z).pow(2)
        return {"loss": 0.5 * per.mean()}

    def draw(self, n: int, y: torch.Tensor | None, temperature: float,
             record: list[torch.Tensor] | None = None, **options: Any) -> torch.Tensor:
        steps = int(options.get("steps", self.config.langevin_steps))
        eps = float(options.get("step_size", self.config.step_size))
        if steps < 1 or not eps > 0:
            raise ConfigError(f"ncsn: steps must be >= 1 and step_size > 0, got {steps}, {eps}")
        sigmas = self.sigmas()
        x = torch.randn(n, *self.spec.shape, device=self.device) * sigmas[0]
        if record is not None:
            record.append(x.detach().cpu())
        for sigma in sigmas:
            a = eps * float(sigma / sigmas[-1]) ** 2
            level = sigma.expand(n)
            for _ in range(steps):
                x = x + 0.5 * a * self.score(x, level, y) + math.sqrt(a) * temperature * torch.randn_like(x)
            if record is not None:
                record.append(x.detach().cpu())
        if self.config.denoise:
            x = x + sigmas[-1] ** 2 * self.score(x, sigmas[-1].expand(n), y)
            if record is not None:
                record.append(x.detach().cpu())
        return x
