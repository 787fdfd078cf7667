"""Generative adversarial networks and their stable variants (Goodfellow et al. 2014).

A generator ``G`` maps noise ``z ~ N(0, I)`` (and a class ``y``) to examples; a discriminator
(critic) ``D`` scores examples. With ``d_r = D(x)`` on data and ``d_f = D(G(z))`` on samples:

* ``minimax``: D maximises ``log s(d_r) + log(1 - s(d_f))`` (``s`` the sigmoid), G minimises
  ``log(1 - s(d_f))``. With the optimal D this is ``2 JS(p_data, p_G) - log 4``; but when D wins,
  ``s(d_f) -> 0`` and G's gradient vanishes.
* ``non-saturating``: the same D; G minimises ``-log s(d_f)`` instead, whose gradient is large
  exactly when D rejects the samples (the 1-D benchmark plots both gradients).
* ``wasserstein`` (WGAN, Arjovsky et al. 2017): the critic maximises ``E d_r - E d_f``, an estimate
  of the Wasserstein-1 distance when D is 1-Lipschitz; G minimises ``-E d_f``. Lipschitz by
  weight clipping (``weight_clip``), by the gradient penalty (``penalty gp``) or by spectral norm.
* ``hinge`` (SN-GAN, Miyato et al. 2018): D minimises ``E relu(1 - d_r) + E relu(1 + d_f)``; G
  minimises ``-E d_f``.
* ``least-squares`` (LSGAN, Mao et al. 2017; CycleGAN's choice): D minimises
  ``E (d_r - 1)^2 + E d_f^2``, G minimises ``E (d_f - 1)^2``.

Regularisers of the discriminator:

* ``penalty gp`` (WGAN-GP, Gulrajani et al. 2017): ``lambda E (|grad_x D(x_hat)| - 1)^2`` at
  ``x_hat = e x + (1 - e) G(z)``, one ``e ~ U[0, 1]`` per example (not per pixel);
* ``penalty r1`` (Mescheder et al. 2018): ``lambda / 2 E |grad_x D(x)|^2`` on data;
* ``spectral_norm``: every weight of D divided by its largest singular value;
* ``weight_clip c``: the critic's weights clamped to ``[-c, c]`` before every use (WGAN);
* ``instance_noise s``: ``N(0, s_t^2)`` added to every input of D, ``s_t`` annealed linearly from
  ``s`` to 0 over ``noise_steps`` discriminator steps (Sonderby et al. 2017), so that the
  distributions overlap early on.

Training alternates ``n_critic`` discriminator steps with one generator step (two
:class:`~unsup.models.base.Phase` objects; a training *step* is one optimiser update of either).
The networks see the data as :mod:`~unsup.models.implicit.base` scales them (discrete data in
``[-1, 1]``, where the generator ends in ``tanh``; continuous data standardised). There is no
likelihood: validation reports the unbiased MMD^2 (:mod:`unsup.nn.mmd`) between a validation batch
and as many samples, a cheap measure of sample quality by which the best checkpoint is chosen,
beside both players' losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Phase
from unsup.models.implicit.base import ImplicitModel, check_options
from unsup.models.implicit.nets import ARCHS, NORMS, Discriminator, Generator, resolve_arch
from unsup.nn.mmd import mmd2

LOSSES = ("minimax", "non-saturating", "wasserstein", "hinge", "least-squares")
PENALTIES = ("none", "gp", "r1")


@dataclass
class GANConfig:
    """Options of :class:`GAN` (see the module docstring for the math).

    Attributes:
        loss: ``minimax``, ``non-saturating``, ``wasserstein``, ``hinge`` or ``least-squares``.
        penalty: gradient penalty of the discriminator: ``none``, ``gp`` (WGAN-GP) or ``r1``.
        penalty_weight: its weight lambda (10 for both in their papers).
        weight_clip: clamp the critic's weights to ``[-c, c]`` (WGAN: 0.01; 0 disables).
        spectral_norm: spectral normalisation of every discriminator weight (SN-GAN).
        instance_noise: initial standard deviation of the noise added to D's inputs (0: none).
        noise_steps: discriminator steps over which it anneals to 0.
        n_critic: discriminator steps per generator step.
        d_lr: the discriminator's learning rate as a multiple of ``--lr`` (two time-scale rule).
        beta1, beta2: Adam's betas of both players (DCGAN: 0.5, 0.999; WGAN-GP: 0, 0.9).
        latent: dimensions of the noise ``z``.
        arch: ``auto`` (``dcgan`` for images, ``mlp`` otherwise), ``mlp`` or ``dcgan``.
        hidden: units of the MLPs, base channels of the convolutional nets.
        layers: linear layers of the MLPs.
        g_norm: normalisation in the generator: ``batch`` (DCGAN) or ``none``.
        d_norm: normalisation in the discriminator: ``batch`` (DCGAN, which keeps the
            discriminator from winning outright on small images), ``layer`` or ``none``;
            ``auto``: ``batch`` for the convolutional net (``layer`` with the gradient penalty,
            which is per example while batch norm mixes the examples), ``none`` for the MLP (a
            batch-normalised critic of 1-D or 2-D points cannot see where a batch lies).
        conditional: class-conditional generator and projection discriminator.
    """

    loss: str = field(default="non-saturating", metadata={"choices": LOSSES})
    penalty: str = field(default="none", metadata={"choices": PENALTIES})
    penalty_weight: float = 10.0
    weight_clip: float = 0.0
    spectral_norm: bool = False
    instance_noise: float = 0.0
    noise_steps: int = 2000
    n_critic: int = 1
    d_lr: float = 1.0
    beta1: float = 0.5
    beta2: float = 0.999
    latent: int = 64
    arch: str = field(default="auto", metadata={"choices": ARCHS})
    hidden: int = 64
    layers: int = 4
    g_norm: str = field(default="batch", metadata={"choices": ("none", "batch")})
    d_norm: str = field(default="auto", metadata={"choices": ("auto", *NORMS)})
    conditional: bool = False


PRESETS = {
    # Radford et al. 2016: z of 100, batch-normalised D, Adam (0.5, 0.999) at 2e-4, batch 128
    "paper": {"loss": "non-saturating", "latent": 100, "hidden": 128, "d_norm": "batch"},
    "dcgan": {"loss": "non-saturating", "d_norm": "batch"},  # the default for images
    # Arjovsky et al. 2017: clip 0.01, 5 critic steps (they used RMSprop at 5e-5: --lr 5e-5)
    "wgan": {"loss": "wasserstein", "weight_clip": 0.01, "n_critic": 5, "beta1": 0.0, "beta2": 0.9},
    # Gulrajani et al. 2017: lambda 10, 5 critic steps, Adam (0, 0.9) at 1e-4, no batch norm in D
    "wgan-gp": {"loss": "wasserstein", "penalty": "gp", "penalty_weight": 10.0, "n_critic": 5,
                "beta1": 0.0, "beta2": 0.9, "d_norm": "layer"},
    # Miyato et al. 2018: hinge loss, spectral norm, Adam (0.5, 0.999)... their CNN runs: (0, 0.9)
    "sngan": {"loss": "hinge", "spectral_norm": True, "beta1": 0.0, "beta2": 0.9, "d_norm": "none"},
    # the course's minimax game with instance noise (Sonderby et al. 2017)
    "instance-noise": {"loss": "non-saturating", "instance_noise": 0.5},
}


@register("gan", "GAN: generator vs discriminator (minimax, non-saturating, Wasserstein, hinge; "
          "gradient penalty, R1, spectral norm, clipping, instance noise; conditional); MLP or DCGAN",
          presets=PRESETS)
class GAN(ImplicitModel):
    """Generator and discriminator trained by alternating updates (module docstring)."""

    Config = GANConfig
    encodes = True  # the discriminator's features (ImplicitModel.encode)

    def __init__(self, spec: DataSpec, config: GANConfig) -> None:
        super().__init__(spec, config)
        c = config
        for name, value, choices in (("loss", c.loss, LOSSES), ("penalty", c.penalty, PENALTIES)):
            if value not in choices:
                raise ConfigError(f"gan: {name} must be one of {', '.join(choices)}, got {value!r}")
        check_options("gan", c, at_least_1=("n_critic", "latent", "hidden", "layers"),
                      non_negative=("penalty_weight", "weight_clip", "instance_noise", "noise_steps"))
        if not c.d_lr > 0:
            raise ConfigError(f"gan: d_lr must be positive, got {c.d_lr}")
        if spec.kind == "sequence":
            raise ConfigError("gan: sequences are not supported; use images or vectors")
        arch = resolve_arch(c.arch, spec)
        self.d_norm = c.d_norm
        if c.d_norm == "auto":
            self.d_norm = "none" if arch == "mlp" else "layer" if c.penalty == "gp" else "batch"
        if c.penalty == "gp" and self.d_norm == "batch":
            raise ConfigError("gan: the gradient penalty is per example and batch norm mixes the "
                              "examples; add --d-norm layer (or none) to --penalty gp")
        if c.conditional:
            self.require(labels=True)
            self.num_classes = spec.num_classes
        self.generator = Generator(spec, arch, c.latent, c.hidden, c.layers, self.num_classes,
                                   bounded=spec.levels is not None, norm=c.g_norm)
        self.discriminator = Discriminator(spec, arch, c.hidden, c.layers, self.d_norm, self.num_classes,
                                           c.spectral_norm)
        # discriminator steps taken (the instance-noise schedule; stored, so resumes are exact)
        self.register_buffer("d_steps", torch.zeros((), dtype=torch.long))

    def critic_network(self) -> Discriminator:
        return self.discriminator

    def phases(self) -> tuple[Phase, ...]:
        betas = (self.config.beta1, self.config.beta2)
        return (Phase("critic", tuple(self.discriminator.parameters()), self.config.n_critic,
                      self.config.d_lr, betas),
                Phase("generator", tuple(self.generator.parameters()), 1, 1.0, betas))

    # --- the game -----------------------------------------------------------------------------
    def generate(self, n: int, y: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``G(z, y)`` for ``z ~ N(0, temperature^2 I)``, in the networks' scale."""
        z = torch.randn(n, self.config.latent, device=self.device) * temperature
        return self.generator(z, y)

    def noise_scale(self) -> float:
        """The instance-noise standard deviation at the current discriminator step."""
        c = self.config
        if not c.instance_noise:
            return 0.0
        done = float(self.d_steps) / max(c.noise_steps, 1)
        return c.instance_noise * max(0.0, 1.0 - done)

    def critic(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's scores of ``x`` (network scale), with instance noise while training."""
        s = self.noise_scale() if self.training else 0.0
        return self.discriminator(x + s * torch.randn_like(x) if s else x, y)

    def _clip_critic(self) -> None:
        if self.config.weight_clip:
            with torch.no_grad():
                for p in self.discriminator.parameters():
                    p.clamp_(-self.config.weight_clip, self.config.weight_clip)

    def critic_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss (to minimise) given its scores of data and samples."""
        return critic_loss(self.config.loss, d_real, d_fake)

    def generator_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        """The generator's loss given the discriminator's scores of its samples."""
        return generator_loss(self.config.loss, d_fake)

    def penalty(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None
                ) -> torch.Tensor:
        """The gradient penalty of the discriminator (``penalty_weight`` applied)."""
        c = self.config
        if c.penalty == "gp":
            points = interpolates(real, fake.detach())
            return c.penalty_weight * gradient_penalty(lambda v: self.critic(v, y), points)
        points = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(points, y).sum(), points, create_graph=True)
        return c.penalty_weight / 2 * grad.flatten(1).pow(2).sum(1).mean()

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        y = self.labels(batch.get("y"), len(x))
        real = self.to_unit(x)
        self._clip_critic()
        if phase == "generator":
            return {"loss": self.generator_loss(self.critic(self.generate(len(x), y), y))}
        fake = self.generate(len(x), y)
        d_real, d_fake = self.critic(real, y), self.critic(fake, y)
        out = {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        d_loss = self.critic_loss(d_real, d_fake)
        if phase is None:  # validation (no gradients): sample quality and both players' losses
            return {"loss": mmd2(real, fake), "critic_loss": d_loss,
                    "generator_loss": self.generator_loss(d_fake), **out}
        if phase != "critic":
            raise ValueError(f"gan: unknown phase {phase!r}")
        if self.config.loss == "wasserstein":
            out["w_estimate"] = -d_loss.detach()
        if self.config.penalty != "none":
            pen = self.penalty(real, fake, y)
            out[self.config.penalty] = pen.detach()
            d_loss = d_loss + pen
        if self.training:
            self.d_steps += 1
        return {"loss": d_loss, **out}

    def draw(self, n: int, y: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """``G(z, y)``; ``temperature`` scales ``z`` (below 1: the truncation trade of variety for
        typicality)."""
        return self.generate(n, y, temperature)


def critic_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss of kind ``loss`` (to minimise), given its scores of data and
    samples (module docstring)."""
    if loss in ("minimax", "non-saturating"):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if loss == "wasserstein":
        return d_fake.mean() - d_real.mean()
    if loss == "least-squares":
        return (d_real - 1).pow(2).mean() + d_fake.pow(2).mean()
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def generator_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss of kind ``loss``, given the discriminator's scores of its samples."""
    if loss == "minimax":
        return -F.softplus(d_fake).mean()  # log(1 - s(d)) = -softplus(d)
    if loss == "non-saturating":
        return F.softplus(-d_fake).mean()  # -log s(d)
    if loss == "least-squares":
        return (d_fake - 1).pow(2).mean()
    return -d_fake.mean()


def interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``e x + (1 - e) x~`` with one ``e ~ U[0, 1]`` per example, broadcast over its values."""
    e = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    return e * real + (1 - e) * fake


def gradient_penalty(critic, points: torch.Tensor) -> torch.Tensor:
    """``E (|grad D(x_hat)|_2 - 1)^2`` over the examples ``points`` (the graph is kept, so the
    penalty trains the critic)."""
    points = points.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    norm = (grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt()  # differentiable at a zero gradient
    return (norm - 1).pow(2).mean()
