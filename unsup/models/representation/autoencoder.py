"""Autoencoders and denoising autoencoders: learn ``h = f(x)`` by reconstructing ``x`` from it.

An autoencoder is an encoder ``z = f(x)`` to a ``code_dim``-dimensional code and a decoder
``x^ = g(z)`` trained to reconstruct the images ``x`` in ``[0, 1]`` (``C x H x W = D`` dimensions),

    L = (1/D) sum_d l(x^_d, x_d),   l = (x^ - x)^2 (``recon=mse``, linear outputs) or
                                    l = -x log s(a) - (1 - x) log(1 - s(a)) (``recon=bce``,
                                        x^ = s(a) the sigmoid of the decoder output a).

The code is narrower than the input, so ``f`` must keep what varies most over the data. With a
linear encoder and decoder and the squared error, the optimum spans the principal subspace of the
data: the ``code_dim``-unit linear autoencoder reaches PCA's reconstruction error with
``code_dim`` components [1, 2] (its weights need not be the principal directions themselves).

Two architectures (``arch``):

* ``conv`` -- the shared :class:`~unsup.models.representation.backbones.Backbone` ``h = f(x)`` (``D_h`` pooled
  features), a linear code ``z = W h + b`` and the
  :class:`~unsup.models.representation.backbones.Decoder` back
  to per-pixel outputs. :meth:`~unsup.models.representation.base.RepresentationModel.encode` gives the
  backbone's pooled features ``h`` (what every method exposes to the probes), not ``z``.
* ``mlp`` -- flattened pixels through ``Linear`` layers of widths ``[D, *hidden, code_dim]``, with
  ``activation`` after each (the code included; ``none`` makes the autoencoder linear), and the
  mirrored decoder ``[code_dim, *reversed(hidden), D]`` (no activation on its output layer).
  ``hidden=[]`` is the plain one-hidden-layer autoencoder (the code is the hidden layer),
  ``hidden=[512, 256]`` a deep one. Here :meth:`encode` is the code ``z`` itself.

**Denoising** [3, 4]. The encoder sees a corrupted ``x~ ~ q(x~ | x)`` and the decoder must output
the clean ``x``, so the code cannot be the identity even when it is wide. ``noise`` is one of

* ``gaussian``: ``x~ = x + sigma eps``, ``eps ~ N(0, I)``, ``sigma = noise_level`` (not clipped);
* ``masking``: each of the ``D`` dimensions independently, with probability ``nu = noise_level``,
  is set to 0;
* ``salt-pepper``: each dimension, with probability ``nu``, is set to 0 or 1 (a fair coin).

"Emphasized" denoising [4, Sec. 4.3] weights the error of the corrupted dimensions ``J(x~)`` by
``alpha`` (``corrupted_weight``) and of the untouched ones by ``1 - alpha``. Our normalisation:

    L = (1/D) sum_d w_d l(x^_d, x_d),   w_d = 2 alpha if d in J(x~) else 2 (1 - alpha),

so ``alpha = 1/2`` is the ordinary mean (the loss of ``noise=none`` and of [3]) and ``alpha = 1``
counts only the corrupted dimensions, doubled. ``J`` holds the dimensions *chosen* for corruption,
even a masked pixel that was already 0. Gaussian noise corrupts every dimension, so the weighting
would only rescale the loss: there (and with ``noise=none``) ``corrupted_weight`` must stay 0.5.
The corruption draws from torch's global RNG and is applied in training *and* in evaluation
(``model.eval()``), so the validation loss is the training objective; the logged ``mse`` is the
plain squared error of the reconstruction from the corrupted input against the clean image.

References:
    [1] Baldi, Hornik. Neural Networks and Principal Component Analysis: Learning from Examples
        Without Local Minima. Neural Networks 2(1), 1989.
    [2] Hinton, Salakhutdinov. Reducing the Dimensionality of Data with Neural Networks. Science
        313, 2006.
    [3] Vincent, Larochelle, Bengio, Manzagol. Extracting and Composing Robust Features with
        Denoising Autoencoders. ICML 2008.
    [4] Vincent, Larochelle, Lajoie, Bengio, Manzagol. Stacked Denoising Autoencoders: Learning
        Useful Representations in a Deep Network with a Local Denoising Criterion. JMLR 11, 2010.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, BackboneConfig, Decoder
from unsup.models.representation.base import RepresentationModel

NOISES = ("none", "gaussian", "masking", "salt-pepper")
RECONS = ("mse", "bce")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                                           "none": nn.Identity}


# ------------------------------------------------------------------------ the denoising criterion


def corrupt(x: torch.Tensor, noise: str, level: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A draw ``x~ ~ q(x~ | x)`` (module docstring) from torch's global RNG.

    Args:
        x: clean values, any shape (in ``[0, 1]`` for salt-and-pepper noise to make sense).
        noise: ``none``, ``gaussian``, ``masking`` or ``salt-pepper``.
        level: the Gaussian's standard deviation, or the probability that a dimension is corrupted.

    Returns:
        ``x~`` (same shape) and the boolean mask of the dimensions chosen for corruption, or
        ``None`` when the noise touches every dimension alike (``none``, ``gaussian``).
    """
    if noise == "none":
        return x, None
    if noise == "gaussian":
        return x + level * torch.randn_like(x), None
    chosen = torch.rand_like(x) < level  # J(x~): each dimension independently with probability nu
    if noise == "masking":
        return x.masked_fill(chosen, 0.0), chosen
    if noise == "salt-pepper":
        salt = (torch.rand_like(x) < 0.5).to(x.dtype)  # 0 or 1, a fair coin per dimension
        return torch.where(chosen, salt, x), chosen
    raise ConfigError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")


def reconstruction_error(out: torch.Tensor, target: torch.Tensor, recon: str) -> torch.Tensor:
    """Per-dimension error ``l`` of decoder outputs against targets in ``[0, 1]`` (same shape):
    ``(out - target)^2`` for ``mse``, the binary cross-entropy of ``sigmoid(out)`` for ``bce``."""
    if recon == "bce":
        return F.binary_cross_entropy_with_logits(out, target, reduction="none")
    return (out - target).pow(2)


def output_values(out: torch.Tensor, recon: str) -> torch.Tensor:
    """The reconstruction ``x^`` the decoder outputs ``out`` stand for (sigmoid for ``bce``)."""
    return torch.sigmoid(out) if recon == "bce" else out


def emphasized_error(error: torch.Tensor, chosen: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """``mean(w * error)`` with ``w = 2 alpha`` on the corrupted dimensions ``chosen`` and
    ``2 (1 - alpha)`` on the others; the plain mean when ``chosen`` is None."""
    if chosen is None:
        return error.mean()
    return (torch.where(chosen, 2 * alpha, 2 * (1 - alpha)) * error).mean()


def check_criterion(c: ReconstructionConfig) -> None:
    """Raise a :class:`ConfigError` for a bad ``recon`` / ``noise`` / ``noise_level`` /
    ``corrupted_weight``."""
    if c.recon not in RECONS:
        raise ConfigError(f"recon must be one of {', '.join(RECONS)}, got {c.recon!r}")
    if c.noise not in NOISES:
        raise ConfigError(f"noise must be one of {', '.join(NOISES)}, got {c.noise!r}")
    if c.noise in ("masking", "salt-pepper") and not 0 <= c.noise_level <= 1:
        raise ConfigError(f"noise_level of {c.noise} noise is a fraction of the dimensions, in [0, 1]; "
                          f"got {c.noise_level}")
    if c.noise == "gaussian" and not (c.noise_level >= 0 and math.isfinite(c.noise_level)):
        raise ConfigError(f"noise_level of gaussian noise is a standard deviation >= 0, got {c.noise_level}")
    if not 0 <= c.corrupted_weight <= 1:
        raise ConfigError(f"corrupted_weight must be in [0, 1], got {c.corrupted_weight}")
    if c.noise in ("none", "gaussian") and c.corrupted_weight != 0.5:
        raise ConfigError(f"corrupted_weight weights masked or salt-and-pepper dimensions; {c.noise} noise "
                          f"{'corrupts none' if c.noise == 'none' else 'corrupts every dimension'}, "
                          f"so it must stay 0.5 (got {c.corrupted_weight})")


def dense(sizes: list[int], activation: str) -> nn.Sequential:
    """``Linear`` layers of ``sizes`` with ``activation`` after *every* layer (``none``: linear)."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def check_widths(name: str, widths: list[int], activation: str) -> None:
    """Raise a :class:`ConfigError` unless ``widths`` are positive ints and ``activation`` known."""
    if any(not isinstance(w, int) or w < 1 for w in widths):
        raise ConfigError(f"{name} must be positive widths, got {widths!r}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")


def as_data(images: torch.Tensor, spec: DataSpec) -> torch.Tensor:
    """Images in ``[0, 1]`` back in the data's representation (the inverse of
    :meth:`~unsup.models.representation.base.RepresentationModel.images`): rounded levels or floats."""
    images = images.clamp(0, 1)
    if spec.levels is None:
        return images
    return (images * (spec.levels - 1)).round().long()


# ------------------------------------------------------------------------------------ the model


@dataclass
class ReconstructionConfig(BackboneConfig):
    """The (denoising) reconstruction criterion shared by the autoencoders.

    Attributes:
        recon: ``mse`` (squared error, linear outputs) or ``bce`` (cross-entropy, sigmoid outputs).
        noise: corruption of the encoder's input: ``none``, ``gaussian``, ``masking`` (set to 0) or
            ``salt-pepper`` (set to 0 or 1).
        noise_level: standard deviation (gaussian) or probability that a dimension is corrupted
            (masking, salt-pepper); ignored with noise none.
        corrupted_weight: alpha, the weight of corrupted dimensions' errors (untouched: 1 - alpha;
            0.5 = the plain mean; masking and salt-pepper only).
    """

    recon: str = "mse"
    noise: str = "none"
    noise_level: float = 0.25
    corrupted_weight: float = 0.5


@dataclass
class AutoencoderConfig(ReconstructionConfig):
    """Hyper-parameters of :class:`Autoencoder` (the backbone fields apply to ``arch=conv`` only).

    Attributes:
        arch: ``conv`` (the shared backbone, a linear code and a deconvolutional decoder) or
            ``mlp`` (dense layers on flattened pixels; the code is the representation).
        code_dim: size of the code z.
        decoder_width: channels of the conv decoder's last upsampling stage (arch conv).
        hidden: widths between the pixels and the code (arch mlp; [] = one hidden layer, the
            code; the decoder mirrors them).
        activation: ``relu``, ``sigmoid``, ``tanh`` or ``none`` after each mlp layer, the code
            included (``none``: a linear autoencoder).
    """

    arch: str = "conv"
    code_dim: int = 64
    decoder_width: int = 16
    hidden: list[int] = field(default_factory=list)
    activation: str = "relu"


class MLPEncoder(nn.Module):
    """Flattened images to codes, ``(B, C, H, W) -> (B, dim)``, through :func:`dense` layers."""

    def __init__(self, sizes: list[int], activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *dense(sizes, activation))
        self.dim = sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("autoencoder", "autoencoder: backbone (or MLP) encoder, a code, a decoder trained to "
          "reconstruct (options: denoising noise, emphasized weighting)",
          presets={"paper": {**RESNET18,
                             "code_dim": 256, "decoder_width": 64}})
class Autoencoder(RepresentationModel):
    """A (denoising) autoencoder on images (module docstring).

    Raises:
        ConfigError: an unknown arch, activation, recon or noise; non-positive sizes; a noise
            level or corrupted weight out of range.
    """

    reconstructs = True

    Config = AutoencoderConfig

    def __init__(self, spec: DataSpec, config: AutoencoderConfig | None = None) -> None:
        c = config or self.Config()
        check_criterion(c)
        sizes = [spec.dims, *c.hidden, c.code_dim]
        if c.arch == "mlp":
            check_widths("hidden", list(c.hidden), c.activation)
        # arch mlp: the dense stack is the encoder (the backbone options do not apply)
        super().__init__(spec, c, encoder=MLPEncoder(sizes, c.activation) if c.arch == "mlp" else None)
        if c.code_dim < 1 or c.decoder_width < 1:
            raise ConfigError(f"code_dim and decoder_width must be >= 1, got {c.code_dim}, {c.decoder_width}")
        C, H, W = spec.shape
        if c.arch == "conv":
            self.code: nn.Module = nn.Linear(self.encoder.dim, c.code_dim)
            self.decoder: nn.Module = Decoder(c.code_dim, C, (H, W), width=c.decoder_width)
        elif c.arch == "mlp":
            self.code = nn.Identity()
            last = nn.Linear(sizes[1], spec.dims)  # the output layer: no activation
            self.decoder = nn.Sequential(dense(sizes[::-1][:-1], c.activation), last,
                                         nn.Unflatten(1, spec.shape))  # (B, C, H, W)
        else:
            raise ConfigError(f"arch must be conv or mlp, got {c.arch!r}")

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """The code ``z`` of float images, ``(B, code_dim)`` (``mlp``: the features themselves)."""
        return self.code(self.features(images))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder outputs for codes ``(B, code_dim)``: ``(B, C, H, W)`` (logits for ``bce``)."""
        return self.decoder(z)

    @torch.no_grad()
    def reconstruction(self, images: torch.Tensor) -> torch.Tensor:
        """``g(f(x))`` of clean float images, as floats in ``[0, 1]``, ``(B, C, H, W)``."""
        return output_values(self.decode(self.codes(images)), self.config.recon).clamp(0, 1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of raw examples in the data's representation (levels or floats), as
        ``unsup train`` pictures them next to the originals."""
        return as_data(self.reconstruction(self.images(x)), self.spec)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        x = self.images(batch["x"])  # (B, C, H, W) in [0, 1]
        x_tilde, chosen = corrupt(x, c.noise, c.noise_level)
        out = self.decode(self.codes(x_tilde))  # (B, C, H, W)
        loss = emphasized_error(reconstruction_error(out, x, c.recon), chosen, c.corrupted_weight)
        mse = (output_values(out.detach(), c.recon) - x).pow(2).mean()
        return {"loss": loss, "mse": mse}


@dataclass
class DenoisingAutoencoderConfig(AutoencoderConfig):
    """Hyper-parameters of :class:`DenoisingAutoencoder`: :class:`Autoencoder`'s, with masking
    noise on 25% of the dimensions by default."""

    noise: str = "masking"
    noise_level: float = 0.25


@register("denoising-autoencoder", "denoising autoencoder (Vincent et al. 2008/2010): the "
          "autoencoder with masking noise by default",
          presets={"paper": {"arch": "mlp", "hidden": [], "code_dim": 1000, "activation": "sigmoid",
                             "recon": "bce", "noise": "masking", "noise_level": 0.25}})
class DenoisingAutoencoder(Autoencoder):
    """:class:`Autoencoder` with the denoising criterion on by default (module docstring)."""

    Config = DenoisingAutoencoderConfig
