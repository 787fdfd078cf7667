"""The semantic-hashing autoencoder: an autoencoder whose code units are pushed to be binary [1].

An MLP encoder maps an example ``x`` (flattened, in [0, 1]) to ``bits`` logits ``a(x)``; the code is
``h = sigmoid(a(x) + eps)`` and an MLP decoder reconstructs ``x`` from ``h``. During training
``eps ~ N(0, sigma^2)`` is added before the sigmoid ([1] used variance 16, ``sigma = 4``): a unit
near 0.5 lets the noise scramble what it tells the decoder, so to transmit information the
encoder drives ``|a|`` far beyond ``sigma`` and the activations to 0 or 1. At test time there is no
noise; the hash of ``x`` is ``codes(x) = 1[sigmoid(a(x)) > 0.5]`` and retrieval is by Hamming
distance (:mod:`unsup.hashing`).

Loss: the reconstruction error of the noisy code's decoding, ``bce`` (Bernoulli cross-entropy on
[0, 1] pixel intensities, as in [1]'s fine-tuning of the image models) or ``mse``, summed over
dimensions and averaged over the batch.

Deviations from [1]: no RBM pre-training (the network is trained end to end with Adam from a random
initialisation), and the noise is drawn afresh at every step from torch's global RNG, whereas [1]
fixed it per training example in advance so that its conjugate-gradient optimiser saw a
deterministic objective; with stochastic gradients the fresh draw has the same effect on the code
units (only activations far from 0.5 survive the noise).

References:
    [1] R. Salakhutdinov, G. Hinton. Semantic hashing. International Journal of Approximate
        Reasoning 50(7), 2009.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.hashing import binary_codes
from unsup.models import register
from unsup.models.base import Batch, Model
from unsup.models.latent.parts import ACTIVATIONS, mlp

RECONSTRUCTIONS = ("bce", "mse")


@dataclass
class HashingAutoencoderConfig:
    """Hyper-parameters of :class:`HashingAutoencoder`.

    Attributes:
        bits: code length: logistic code units.
        hidden: widths of the encoder's hidden layers (the decoder mirrors them).
        activation: ``relu``, ``tanh`` or ``elu`` (hidden layers).
        noise: standard deviation of the Gaussian noise added to the code logits in training
            (0: a plain autoencoder with sigmoid codes).
        reconstruction: ``bce`` (data in [0, 1]) or ``mse``.
    """

    bits: int = 32
    hidden: list[int] = field(default_factory=lambda: [512, 256])
    activation: str = "relu"
    noise: float = 4.0
    reconstruction: str = "bce"


@register("hashing-autoencoder", "semantic hashing: an MLP autoencoder with noisy logistic codes "
          "that become binary; codes(x) for Hamming-distance retrieval",
          presets={"paper": {"hidden": [1000, 500, 250], "bits": 28, "noise": 4.0,
                             "activation": "relu"}})
class HashingAutoencoder(Model):
    """MLP autoencoder with noise before the code sigmoid (module docstring).

    Raises:
        ConfigError: options out of range.
    """

    reconstructs = True

    Config = HashingAutoencoderConfig
    encodes = True

    def __init__(self, spec: DataSpec, config: HashingAutoencoderConfig) -> None:
        super().__init__(spec, config)
        c = config
        if c.bits < 1:
            raise ConfigError(f"hashing-autoencoder: bits must be >= 1, got {c.bits}")
        if any(w < 1 for w in c.hidden):
            raise ConfigError(f"hashing-autoencoder: hidden widths must be >= 1, got {c.hidden}")
        if c.activation not in ACTIVATIONS:
            raise ConfigError(f"hashing-autoencoder: activation must be one of "
                              f"{', '.join(ACTIVATIONS)}, got {c.activation!r}")
        if not c.noise >= 0:
            raise ConfigError(f"hashing-autoencoder: noise must be >= 0, got {c.noise}")
        if c.reconstruction not in RECONSTRUCTIONS:
            raise ConfigError(f"hashing-autoencoder: reconstruction must be bce or mse, "
                              f"got {c.reconstruction!r}")
        self.encoder = mlp([spec.dims, *c.hidden, c.bits], c.activation)
        self.decoder = mlp([c.bits, *c.hidden[::-1], spec.dims], c.activation)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Checked examples as flat floats on the model's device, ``(B, dims)``: discrete levels
        divided by ``levels - 1``."""
        self.check_input(x)
        x = x.to(self.device).float().flatten(1)
        return x / (self.spec.levels - 1) if self.spec.levels is not None else x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code activations ``sigmoid(a(x))`` without noise, ``(B, bits)`` in (0, 1)."""
        return torch.sigmoid(self.encoder(self.inputs(x)))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The binary hash ``1[encode(x) > 0.5]``, ``(B, bits)`` bool."""
        return binary_codes(self.encode(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoding of the binary codes of ``x``, in the data's format (levels rounded)."""
        out = self.decoder(self.codes(x).float())
        if self.config.reconstruction == "bce":
            out = torch.sigmoid(out)
        if self.spec.levels is not None:
            out = (out.clamp(0, 1) * (self.spec.levels - 1)).round().long()
        return out.view(len(x), *self.spec.shape)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.inputs(batch["x"])
        a = self.encoder(x)  # (B, bits)
        noisy = a + self.config.noise * torch.randn_like(a) if self.training else a
        out = self.decoder(torch.sigmoid(noisy))  # (B, dims)
        if self.config.reconstruction == "bce":
            if x.numel() and (x.min() < 0 or x.max() > 1):
                raise ConfigError("hashing-autoencoder with reconstruction=bce needs data in [0, 1]; "
                                  "use reconstruction=mse")
            rec = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1).mean()
        else:
            rec = (out - x).pow(2).sum(1).mean()
        h = torch.sigmoid(a.detach())
        return {"loss": rec, "binary": ((h < 0.1) | (h > 0.9)).float().mean()}
