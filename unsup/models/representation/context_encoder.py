"""Context encoders [1]: learn features by inpainting a removed region from its surroundings.

A region ``M`` (mask ``m``, 1 where removed) of an image ``x`` in ``[0, 1]`` is replaced by the
constant 0.5 (the middle grey; [1] fills with the dataset's mean pixel, which needs a statistic of
the data the model does not get), the backbone encodes the corrupted image, and a
:class:`~unsup.models.representation.backbones.Decoder` predicts the whole image ``x^ = sigmoid(Dec(f(x')))``
from the backbone's *pooled* code -- the vector the probes see, standing in for [1]'s channel-wise
fully connected bottleneck -- so everything the decoder knows about the context passes through the
representation. The reconstruction loss is the mean squared error on the removed pixels, plus
``context_weight`` times that on the visible ones ([1] instead weights a 7-pixel overlap band
10x; 0 here by default):

    L_rec = sum m (x^ - x)^2 / sum m  +  context_weight * sum (1 - m)(x^ - x)^2 / sum (1 - m).

Masks (``mask``): ``center`` removes a central square of ``block`` times the side (0.5 in [1]);
``random`` removes ``rectangles`` squares per image at uniform positions (torch's global RNG), each
of side ``sqrt(1 - (1 - block_fraction)^(1 / rectangles))`` times the image side, so that
independently placed squares cover about ``block_fraction`` of the image ([1]'s random blocks cover
up to a quarter).

**Adversarial loss** (``adversarial = λ > 0``). A small convolutional discriminator ``D`` judges
the *completed* image ``x~ = m x^ + (1 - m) x`` (the known pixels pasted back, which works for any
mask) against the real one, with the non-saturating GAN losses

    L_D = -log σ(D(x)) - log(1 - σ(D(sg[x~]))),    L_G = -log σ(D_sg(x~)),

where ``sg`` stops gradients: ``D``'s loss sees detached completions and the generator term is
evaluated with ``torch.func.functional_call`` on *detached* copies of ``D``'s parameters. The
model returns ``loss = L_rec + λ L_G + L_D``: since ``L_D`` does not reach the generator and
``L_G`` does not reach ``D``, one optimiser step on ``loss`` gives ``D`` exactly ``∇ L_D`` and the
encoder/decoder exactly ``∇ (L_rec + λ L_G)`` -- the alternating GAN updates of [1] done at once,
with one optimiser. [1] weights ``0.999 L_rec + 0.001 L_adv``, i.e. ``λ ≈ 0.001`` (the ``paper``
preset).

References:
    [1] Pathak, Krähenbühl, Donahue, Darrell, Efros. Context Encoders: Feature Learning by
        Inpainting. CVPR 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, BackboneConfig, Decoder
from unsup.models.representation.base import RepresentationModel

MASKS = ("center", "random")
FILL = 0.5


@dataclass
class ContextEncoderConfig(BackboneConfig):
    """Hyper-parameters of :class:`ContextEncoder`.

    Attributes:
        mask: ``center`` (a central square) or ``random`` (random squares per image).
        block: side of the central square as a fraction of the image side (``center``), in (0, 1).
        block_fraction: expected fraction of the image the random squares cover (``random``), in (0, 1).
        rectangles: squares per image (``random``).
        context_weight: weight of the squared error on the visible pixels relative to the removed ones.
        adversarial: λ of the adversarial loss (0 = L2 only; the paper's 0.999/0.001 is about 0.001).
        decoder_width: channels of the decoder's last upsampling stage.
        disc_width: channels of the discriminator's first layer (``adversarial > 0``).
    """

    mask: str = "center"
    block: float = 0.5
    block_fraction: float = 0.25
    rectangles: int = 3
    context_weight: float = 0.0
    adversarial: float = 0.0
    decoder_width: int = 32
    disc_width: int = 32


def center_mask(n: int, size: tuple[int, int], block: float) -> torch.Tensor:
    """``(n, 1, H, W)`` bool, True on the central ``round(block H) x round(block W)`` rectangle."""
    H, W = size
    h, w = max(1, round(block * H)), max(1, round(block * W))
    m = torch.zeros(n, 1, H, W, dtype=torch.bool)
    m[:, :, (H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w] = True
    return m


def random_mask(n: int, size: tuple[int, int], fraction: float, rectangles: int) -> torch.Tensor:
    """``(n, 1, H, W)`` bool: the union of ``rectangles`` uniformly placed rectangles per image, sides
    chosen so that independent placements cover ``fraction`` of the image in expectation."""
    H, W = size
    side = math.sqrt(1 - (1 - fraction) ** (1 / rectangles))
    h, w = max(1, round(side * H)), max(1, round(side * W))
    top = torch.randint(0, H - h + 1, (n, rectangles, 1))
    left = torch.randint(0, W - w + 1, (n, rectangles, 1))
    rows = (torch.arange(H) >= top) & (torch.arange(H) < top + h)  # (n, R, H)
    cols = (torch.arange(W) >= left) & (torch.arange(W) < left + w)  # (n, R, W)
    return (rows[:, :, :, None] & cols[:, :, None, :]).any(1, keepdim=True)  # (n, 1, H, W)


class Discriminator(nn.Module):
    """Strided ``4x4`` convolutions with leaky ReLUs (no batch norm, so a functional call with other
    parameters needs no buffers), global average pooling and a linear logit: ``(B, C, H, W) -> (B,)``."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), nn.LeakyReLU(0.2))
        self.out = nn.Linear(4 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x).mean((2, 3))).squeeze(1)


@register("context-encoder", "Context encoder: inpaint a removed block (centre or random squares) from "
          "the backbone's pooled code; L2 loss, optional adversarial loss",
          presets={"paper": {**RESNET18,
                             "adversarial": 0.001, "decoder_width": 64, "disc_width": 64}})
class ContextEncoder(RepresentationModel):
    """Backbone on the corrupted image + decoder from its pooled code (+ a discriminator).

    Raises:
        ConfigError: an unknown mask, an option out of range or a block smaller than a pixel.
    """

    Config = ContextEncoderConfig

    def __init__(self, spec: DataSpec, config: ContextEncoderConfig) -> None:
        super().__init__(spec, config)
        if config.mask not in MASKS:
            raise ConfigError(f"context-encoder mask must be one of {', '.join(MASKS)}, got {config.mask!r}")
        for name in ("block", "block_fraction"):
            if not 0 < getattr(config, name) < 1:
                raise ConfigError(f"context-encoder {name} must be in (0, 1), got {getattr(config, name)}")
        if config.rectangles < 1:
            raise ConfigError(f"context-encoder rectangles must be >= 1, got {config.rectangles}")
        if config.context_weight < 0 or config.adversarial < 0:
            raise ConfigError("context-encoder context_weight and adversarial must be >= 0, got "
                              f"{config.context_weight} and {config.adversarial}")
        C, H, W = spec.shape
        if config.mask == "center" and min(H, W) * config.block < 1:
            raise ConfigError(f"a {H}x{W} image has no central block of {config.block} of its side; "
                              f"raise --block")
        self.decoder = Decoder(self.feature_dim, C, (H, W), config.decoder_width)
        self.disc = Discriminator(C, config.disc_width) if config.adversarial > 0 else None

    def mask(self, n: int) -> torch.Tensor:
        """Removed pixels for ``n`` images, ``(n, 1, H, W)`` bool on the model's device."""
        size = self.spec.shape[1:]
        c = self.config
        m = center_mask(n, size, c.block) if c.mask == "center" else \
            random_mask(n, size, c.block_fraction, c.rectangles)
        return m.to(self.device)

    def complete(self, images: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The corrupted input ``x'`` and the decoder's whole-image prediction ``x^``, both
        ``(B, C, H, W)``, for float images and a mask ``m``."""
        corrupted = torch.where(m, FILL, images)
        return corrupted, torch.sigmoid(self.decoder(self.encoder(corrupted)))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.images(batch["x"])
        m = self.mask(len(x))
        _, pred = self.complete(x, m)
        se = (pred - x).pow(2)  # (B, C, H, W)
        mf = m.float().expand_as(se)
        rec = (se * mf).sum() / mf.sum()
        if self.config.context_weight > 0:
            rec = rec + self.config.context_weight * (se * (1 - mf)).sum() / (1 - mf).sum().clamp_min(1)
        out = {"loss": rec, "reconstruction": rec}
        if self.disc is not None:
            g, d = self.adversarial_losses(x, torch.where(m, pred, x))
            out.update(loss=rec + self.config.adversarial * g + d, generator=g, discriminator=d)
        return out

    def adversarial_losses(self, real: torch.Tensor, completed: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_G, L_D)``: ``L_G`` reaches only ``completed`` (the discriminator's parameters are
        detached), ``L_D`` only the discriminator (``completed`` is detached)."""
        assert self.disc is not None
        frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
        g = F.softplus(-functional_call(self.disc, frozen, (completed,))).mean()  # -log σ(D(x~))
        d = F.softplus(-self.disc(real)).mean() + F.softplus(self.disc(completed.detach())).mean()
        return g, d

    @torch.no_grad()
    @torch.no_grad()
    def illustrations(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """``inpainting``: the images, the masked inputs, the completions."""
        return {"inpainting": [self.images(x), *self.inpaint(x)]}

    def inpaint(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masked input, completed image)`` of raw examples, floats in [0, 1], ``(B, C, H, W)``
        each: the removed region (a fresh mask) shown as grey, then filled by the prediction."""
        images = self.images(x)
        m = self.mask(len(images))
        corrupted, pred = self.complete(images, m)
        return corrupted, torch.where(m, pred, images)
