"""BiGAN / ALI: a GAN that also learns the inverse map, an encoder (Donahue et al. 2017; Dumoulin
et al. 2017).

Three networks: a generator ``G: z -> x``, an encoder ``E: x -> z`` and a discriminator on *pairs*
``D(x, z)``. The discriminator tells data with their codes ``(x, E(x))`` from samples with their
noise ``(G(z), z)``:

    min_{G, E} max_D  E_x log s(D(x, E(x))) + E_z log(1 - s(D(G(z), z))).

At the optimum the two joint distributions are equal, so ``E`` inverts ``G`` (``E = G^-1``
almost everywhere) without any reconstruction loss, and ``E(x)`` becomes a representation of the
data learned without labels (``unsup probe`` judges it; ``encode(x) = E(x)``). ``G(E(x))`` is
drawn as ``reconstructions.png``: how well the pair inverts each other.

``D(x, z)`` joins the GAN discriminator's features of ``x`` with an MLP's features of ``z`` and scores
their concatenation. Training alternates the discriminator phase and the generator-and-encoder
phase; both players use the non-saturating form of the loss (the encoder and generator each
minimise the cross-entropy with swapped labels), with the GAN options for betas, ``n_critic``,
spectral norm and instance noise (:mod:`~unsup.models.implicit.gan`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Phase
from unsup.models.implicit.gan import GAN, GANConfig
from unsup.models.implicit.nets import Discriminator, Encoder, resolve_arch, spectrally_normalise
from unsup.nn.mmd import mmd2


@dataclass
class BiGANConfig(GANConfig):
    """Options of :class:`BiGAN`: those of the GAN (the loss is non-saturating; no gradient
    penalty), and the code size ``latent`` is also the representation's size."""

    latent: int = 50


PRESETS = {
    # Donahue et al. 2017, MNIST: z of 50, Adam (0.5, 0.999) at 2e-4, batch norm, MLP nets of 1024
    "paper": {"latent": 50, "arch": "mlp", "hidden": 1024, "layers": 3, "d_norm": "batch"},
}


@register("bigan", "BiGAN / ALI: generator, encoder and a joint discriminator D(x, z); the encoder "
          "is a representation for unsup probe", presets=PRESETS)
class BiGAN(GAN):
    """A GAN with an encoder trained against a joint discriminator (module docstring)."""

    Config = BiGANConfig
    encodes = True
    reconstructs = True

    def __init__(self, spec: DataSpec, config: BiGANConfig) -> None:
        if config.penalty != "none" or config.loss != "non-saturating" or config.conditional:
            raise ConfigError("bigan: trained with the non-saturating loss, no gradient penalty and "
                              "no class conditioning; leave loss, penalty and conditional unset")
        super().__init__(spec, config)
        c = config
        arch = resolve_arch(c.arch, spec)
        self.encoder = Encoder(spec, arch, c.hidden, c.layers, c.latent)
        # D(x, z): the image features (self.discriminator.body) beside these code features
        self.code_features = nn.Sequential(nn.Linear(c.latent, c.hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(c.hidden, c.hidden), nn.LeakyReLU(0.2))
        self.discriminator = Discriminator(spec, arch, c.hidden, c.layers, self.d_norm,
                                           spectral_norm=c.spectral_norm, extra=c.hidden)
        if c.spectral_norm:
            spectrally_normalise(self.code_features)

    def phases(self) -> tuple[Phase, ...]:
        betas = (self.config.beta1, self.config.beta2)
        critic = (*self.discriminator.parameters(), *self.code_features.parameters())
        players = (*self.generator.parameters(), *self.encoder.parameters())
        return (Phase("critic", critic, self.config.n_critic, self.config.d_lr, betas),
                Phase("generator", players, 1, 1.0, betas))

    def joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``D(x, z)``: the score of a pair (instance noise on ``x`` while training)."""
        s = self.noise_scale() if self.training else 0.0
        x = x + s * torch.randn_like(x) if s else x
        d = self.discriminator
        return d.score(torch.cat([d.features(x), self.code_features(z)], 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)``, the ``(N, latent)`` codes of examples."""
        return self.encoder(self.to_unit(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``G(E(x))`` in the data's representation."""
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.from_unit(self.generator(self.encoder(self.to_unit(x))))
        finally:
            self.train(was)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        real = self.to_unit(x)
        self._clip_critic()
        z = torch.randn(len(x), self.config.latent, device=self.device)
        fake = self.generator(z)
        d_data, d_sample = self.joint(real, self.encoder(real)), self.joint(fake, z)
        if phase == "generator":  # swapped labels: data pairs look fake, sample pairs real
            return {"loss": F.softplus(d_data).mean() + F.softplus(-d_sample).mean()}
        d_loss = self.critic_loss(d_data, d_sample)
        out = {"d_data": d_data.mean().detach(), "d_sample": d_sample.mean().detach()}
        if phase is None:  # validation: sample quality, the discriminator's loss
            return {"loss": mmd2(real, fake), "critic_loss": d_loss, **out}
        if phase != "critic":
            raise ValueError(f"bigan: unknown phase {phase!r}")
        if self.training:
            self.d_steps += 1
        return {"loss": d_loss, **out}
