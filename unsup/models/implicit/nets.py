"""Generators and discriminators shared by the implicit models.

* ``mlp`` (any data, flattened): ``layers`` linear layers of ``hidden`` units; ReLU (after batch
  norm unless ``g_norm`` is ``none``) in the generator, leaky ReLU (0.2) in the discriminator.
* ``dcgan`` (images; Radford et al. 2016): the generator maps ``z`` linearly to a ``4h x s x s``
  grid (``s = ceil(H / 4)``) and doubles it twice with stride-2 transposed convolutions (batch
  norm and ReLU between, ``tanh`` out), cropping to ``H x W``; the discriminator mirrors it with
  stride-2 convolutions and leaky ReLUs.

Class conditioning follows the usual practice: the generator gets a learned class embedding
concatenated to ``z``; the discriminator is a *projection* discriminator (Miyato & Koyama 2018),
``D(x, y) = w . phi(x) + e_y . phi(x)``, so the class enters as an inner product with the features
rather than as an input channel. ``spectral_norm`` reparametrises every weight of the
discriminator by ``W / sigma(W)`` (torch's power-iteration parametrisation; SN-GAN).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from unsup.data.base import DataSpec
from unsup.errors import ConfigError

ARCHS = ("auto", "mlp", "dcgan")
NORMS = ("none", "batch", "layer")


def resolve_arch(arch: str, spec: DataSpec) -> str:
    """``auto``: ``dcgan`` for images, ``mlp`` otherwise; ``dcgan`` needs images."""
    if arch not in ARCHS:
        raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if arch == "auto":
        return "dcgan" if spec.kind == "image" else "mlp"
    if arch == "dcgan" and (spec.kind != "image" or len(spec.shape) != 3):
        raise ConfigError(f"arch dcgan takes images (C, H, W), got {spec.kind} data of shape "
                          f"{spec.shape}; use arch mlp")
    return arch


def _norm(kind: str, channels: int, image: bool) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if image else nn.BatchNorm1d(channels)
    if kind == "layer":  # over all of an example's features (GroupNorm with one group for images)
        return nn.GroupNorm(1, channels) if image else nn.LayerNorm(channels)
    return nn.Identity()


class Generator(nn.Module):
    """``G(z, y)``: noise ``(N, latent)`` (and labels) to unconstrained outputs of the data's
    shape (``tanh``-squashed when ``bounded``)."""

    def __init__(self, spec: DataSpec, arch: str, latent: int, hidden: int, layers: int,
                 num_classes: int | None = None, bounded: bool = False, norm: str = "batch") -> None:
        super().__init__()
        if norm not in ("none", "batch"):
            raise ConfigError(f"g_norm must be none or batch, got {norm!r}")
        self.shape = tuple(spec.shape)
        self.embed = nn.Embedding(num_classes, latent) if num_classes else None
        inp = latent * (2 if num_classes else 1)
        if arch == "mlp":
            dims = math.prod(self.shape)
            body: list[nn.Module] = []
            for i in range(layers - 1):
                body += [nn.Linear(inp if i == 0 else hidden, hidden), _norm(norm, hidden, False), nn.ReLU()]
            body.append(nn.Linear(hidden if layers > 1 else inp, dims))
            self.net = nn.Sequential(*body)
        else:
            c, h, w = self.shape
            grid = (4 * hidden, math.ceil(h / 4), math.ceil(w / 4))
            self.net = nn.Sequential(
                nn.Linear(inp, math.prod(grid)), nn.Unflatten(1, grid),
                _norm(norm, 4 * hidden, True), nn.ReLU(),
                nn.ConvTranspose2d(4 * hidden, 2 * hidden, 4, 2, 1), _norm(norm, 2 * hidden, True), nn.ReLU(),
                nn.ConvTranspose2d(2 * hidden, c, 4, 2, 1))  # (N, C, 4s, 4s), cropped to (H, W)
        self.bounded = bounded
        self.crop = arch == "dcgan"  # its grid of 4 ceil(H/4) rows is cropped to H

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        out = self.net(z)
        if self.crop:
            h, w = self.shape[1:]
            top, left = (out.shape[2] - h) // 2, (out.shape[3] - w) // 2
            out = out[:, :, top:top + h, left:left + w]
        out = out.reshape(len(z), *self.shape)
        return torch.tanh(out) if self.bounded else out


def body(spec: DataSpec, arch: str, hidden: int, layers: int, norm: str = "none"
         ) -> tuple[nn.Sequential, int]:
    """The discriminator's (and a BiGAN encoder's) feature network and its output width: leaky
    ReLUs after linear layers (``mlp``) or after two stride-2 convolutions (``dcgan``)."""
    if norm not in NORMS:
        raise ConfigError(f"d_norm must be one of {', '.join(NORMS)}, got {norm!r}")
    shape = tuple(spec.shape)
    if arch == "mlp":
        sizes = [math.prod(shape)] + [hidden] * (layers - 1)
        layers_: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers_ += [nn.Linear(a, b), _norm(norm if i else "none", b, False), nn.LeakyReLU(0.2)]
        return nn.Sequential(*layers_), sizes[-1]
    c, h, w = shape
    return nn.Sequential(
        nn.Conv2d(c, hidden, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(hidden, 2 * hidden, 4, 2, 1), _norm(norm, 2 * hidden, True), nn.LeakyReLU(0.2),
        nn.Flatten()), 2 * hidden * (h // 4) * (w // 4)


def spectrally_normalise(module: nn.Module) -> None:
    """Spectral normalisation of every linear, convolution and embedding weight in ``module``."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            _spectral_norm(m)


class Discriminator(nn.Module):
    """``D(x, y)``: one real score (a logit or a critic value) per example.

    ``features(x)`` is the body's output ``phi(x)`` before the final linear map; ``extra`` widens
    the head's input for features concatenated to it (a BiGAN's code features).
    """

    def __init__(self, spec: DataSpec, arch: str, hidden: int, layers: int, norm: str = "none",
                 num_classes: int | None = None, spectral_norm: bool = False,
                 extra: int = 0) -> None:
        super().__init__()
        self.body, self.width = body(spec, arch, hidden, layers, norm)
        head_in = self.width + extra
        self.head = nn.Linear(head_in, 1)
        self.embed = nn.Embedding(num_classes, head_in) if num_classes else None
        if spectral_norm:
            spectrally_normalise(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def score(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The score of features ``h`` (with the class projection of a conditional model)."""
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(self.features(x), y)


class Encoder(nn.Module):
    """``E(x)``: examples to codes ``(N, latent)`` through the discriminator's kind of body."""

    def __init__(self, spec: DataSpec, arch: str, hidden: int, layers: int, latent: int,
                 norm: str = "none") -> None:
        super().__init__()
        self.body, width = body(spec, arch, hidden, layers, norm)
        self.out = nn.Linear(width, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.InstanceNorm2d(channels, affine=True), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Translator(nn.Module):
    """Image-to-image network of CycleGAN's kind, scaled down: a 3x3 convolution, one stride-2
    convolution, ``res_blocks`` residual blocks, one stride-2 transposed convolution and a 3x3
    convolution to ``c_out`` channels in ``tanh``; instance norm and ReLU between. Keeps the height
    and width (which must be even)."""

    def __init__(self, c_in: int, c_out: int, hidden: int, res_blocks: int) -> None:
        super().__init__()
        h2 = 2 * hidden
        self.net = nn.Sequential(
            nn.Conv2d(c_in, hidden, 3, 1, 1), nn.InstanceNorm2d(hidden, affine=True), nn.ReLU(),
            nn.Conv2d(hidden, h2, 4, 2, 1), nn.InstanceNorm2d(h2, affine=True), nn.ReLU(),
            *[_Residual(h2) for _ in range(res_blocks)],
            nn.ConvTranspose2d(h2, hidden, 4, 2, 1), nn.InstanceNorm2d(hidden, affine=True), nn.ReLU(),
            nn.Conv2d(hidden, c_out, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
