"""Colorful image colorization [1]: predict the colours of a greyscale image; the encoder is what is learned.

An RGB image is converted to CIE Lab (:mod:`unsup.models.representation.color`); the backbone sees the
lightness
``L`` only (as ``L / 100``), and a :class:`~unsup.models.representation.backbones.Decoder` from its
feature map
predicts, at every pixel, a distribution ``Z^ = softmax(logits)`` over ``Q`` quantised ``ab`` bins:

* **Bins.** A square grid of side ``grid`` (10 in [1]) over the ab plane, centres ``grid * (i, j)``;
  only the cells that sRGB colours reach are kept (found once by converting a 64^3 lattice of the
  RGB cube; grid 10 keeps ``Q = 261`` in-gamut cells, where [1] keeps 313 by a looser test).
* **Targets.** The true ``ab`` of a pixel is soft-encoded [1, Sec. 2.1] over its ``neighbours``
  nearest centres with Gaussian weights ``exp(-d^2 / 2 sigma^2)``, ``sigma = 5``, normalised to sum
  to 1 (``neighbours = 1``: the one-hot nearest bin, the CPU default).
* **Class rebalancing** [1, Eq. 3-4]. Natural images are mostly unsaturated, so the loss at a pixel
  whose target's most likely bin is ``q*`` is weighted by ``w_{q*}`` with

      w ∝ ((1 - λ) p~ + λ / Q)^-1,   normalised so that  E_p~[w] = sum_q p~_q w_q = 1,

  ``p~`` the empirical distribution of bins smoothed by a Gaussian kernel (``sigma = 5``) in ab
  space, ``λ = rebalance`` (0.5 in [1]; ``λ = 1`` gives ``w = 1``, plain cross-entropy). [1]
  estimates ``p~`` on all of ImageNet beforehand; here the model only sees batches, so it keeps a
  running histogram of bin counts (the buffer ``ab_counts``, saved with the model), adds each
  training batch's counts *before* computing that batch's loss, and weights by the histogram so
  far. The weights therefore drift during the first few hundred steps and then settle.

      L = -(1 / BHW) sum_{b,h,w} w_{q*} sum_q Z_q log Z^_q.

* **Colour from the distribution** [1, Eq. 5]: the *annealed mean*
  ``ab = sum_q c_q softmax(logits / T)_q``; ``T = 1`` is the mean (desaturated), ``T -> 0`` the
  mode (vivid but patchy), ``T = 0.38`` the paper's compromise.

Probes see the backbone's pooled features of the ``L`` channel (:meth:`Colorization.features`).
The decoder predicts at ``1 / resolution`` of the image size (2 by default, 4 in [1]) against
targets whose ab is average-pooled to that size, and :meth:`Colorization.colorize` upsamples the
predicted ab bilinearly under the full-resolution ``L``, as [1] does.

References:
    [1] Zhang, Isola, Efros. Colorful Image Colorization. ECCV 2016.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, BackboneConfig, Decoder
from unsup.models.representation.base import RepresentationModel
from unsup.models.representation.color import lab_to_rgb, rgb_to_lab

SIGMA = 5.0  # ab units: soft-encoding and histogram smoothing kernel of [1]


@functools.lru_cache(maxsize=8)
def _in_gamut_cells(grid: float) -> torch.Tensor:
    steps = torch.linspace(0, 1, 64)
    rgb = torch.cartesian_prod(steps, steps, steps).T.reshape(1, 3, -1, 1)  # (1, 3, 64^3, 1)
    ab = rgb_to_lab(rgb.double())[0, 1:, :, 0].T  # (64^3, 2)
    return torch.unique(torch.round(ab / grid), dim=0).float()  # (Q, 2) integer cell coordinates


def ab_bin_centres(grid: float = 10.0) -> torch.Tensor:
    """Centres of the in-gamut ab bins, ``(Q, 2)``: the cells of a ``grid``-spaced square grid that
    some sRGB colour falls in (nearest centre)."""
    return _in_gamut_cells(float(grid)) * grid


def soft_encode(ab: torch.Tensor, centres: torch.Tensor, neighbours: int = 1,
                sigma: float = SIGMA) -> torch.Tensor:
    """Target distributions over bins for ab values ``(B, 2, H, W)`` -> ``(B, Q, H, W)``: Gaussian
    weights on the ``neighbours`` nearest centres, summing to 1 (one-hot for ``neighbours = 1``)."""
    B, _, H, W = ab.shape
    d2 = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), centres).pow(2)  # (BHW, Q)
    near, idx = d2.topk(neighbours, dim=1, largest=False)  # (BHW, k)
    wts = torch.softmax(-near / (2 * sigma ** 2), dim=1)  # normalised exp(-d^2 / 2 sigma^2)
    z = torch.zeros_like(d2).scatter_(1, idx, wts)
    return z.view(B, H, W, -1).permute(0, 3, 1, 2)  # (B, Q, H, W)


def nearest_bins(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest bin centre, ``(B, 2, H, W)`` -> ``(B, H, W)``."""
    B, _, H, W = ab.shape
    d2 = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), centres)  # (BHW, Q)
    return d2.argmin(1).view(B, H, W)


def decoder_to(size: tuple[int, int], config: BackboneConfig, in_dim: int, out_channels: int,
               width: int) -> Decoder:
    """A :class:`Decoder` from the backbone's feature map (each of its ``depth - 1`` strided stages
    maps ``n -> ceil(n / 2)``) with just enough doublings to reach ``size``."""
    h = max(size)
    for _ in range(config.depth - 1):
        h = -(-h // 2)
    return Decoder(in_dim, out_channels, size, width, ups=max(0, math.ceil(math.log2(max(size) / h))))


def check_resolution(model: RepresentationModel, resolution: int) -> tuple[int, int]:
    """The ``(H / resolution, W / resolution)`` size of the per-pixel predictions.

    Raises:
        ConfigError: a resolution that does not divide the image size.
    """
    _, H, W = model.spec.shape
    if resolution < 1 or H % resolution or W % resolution:
        raise ConfigError(f"{type(model).__name__} resolution must be >= 1 and divide the image size "
                          f"{H}x{W}, got {resolution}")
    return H // resolution, W // resolution


def smoothed_distribution(counts: torch.Tensor, centres: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """``p~``: bin counts ``(Q,)`` normalised and smoothed by a Gaussian kernel over the centres."""
    kernel = torch.exp(-torch.cdist(centres, centres).pow(2) / (2 * sigma ** 2))  # (Q, Q)
    p = kernel @ (counts / counts.sum().clamp_min(1e-12))
    return p / p.sum()


def rebalancing_weights(p: torch.Tensor, lam: float) -> torch.Tensor:
    """``w ∝ ((1 - λ) p + λ / Q)^-1`` normalised so that ``sum_q p_q w_q = 1``, ``(Q,)``."""
    w = 1.0 / ((1 - lam) * p + lam / len(p))
    return w / (p * w).sum()


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float) -> torch.Tensor:
    """``sum_q c_q softmax(logits / T)_q`` over the bin axis: ``(B, Q, H, W) -> (B, d, H, W)`` for
    centres ``(Q, d)``; ``T = 0`` takes the mode's centre."""
    if temperature == 0:
        return centres[logits.argmax(1)].permute(0, 3, 1, 2)
    return torch.einsum("bqhw,qd->bdhw", torch.softmax(logits / temperature, 1), centres.to(logits))


def require_colour(model: RepresentationModel) -> None:
    """Raise a ConfigError unless the model's data are RGB images."""
    if model.spec.shape[0] != 3:
        raise ConfigError(f"{type(model).__name__} needs RGB images (3 channels), got "
                          f"{model.spec.shape[0]} channel(s); use e.g. --data cifar10-jpeg")


@dataclass
class ColorizationConfig(BackboneConfig):
    """Hyper-parameters of :class:`Colorization`.

    Attributes:
        grid: side of the ab quantisation grid (10 in the paper; grid 10 keeps 261 in-gamut bins).
        rebalance: λ of the class-rebalancing weights w ∝ ((1-λ) p~ + λ/Q)^-1, in [0, 1]
            (0.5 in the paper; 1 disables rebalancing).
        temperature: T of the annealed mean that turns a bin distribution into a colour
            (0.38 in the paper; 0 = the mode, 1 = the mean).
        neighbours: nearest bins the target ab is soft-encoded over (5 in the paper; 1 = one-hot).
        decoder_width: channels of the decoder's last upsampling stage.
        resolution: the colours are predicted at 1/resolution of the image size and upsampled
            (4 in the paper; must divide the image size).
    """

    grid: float = 10.0
    rebalance: float = 0.5
    temperature: float = 0.38
    neighbours: int = 1
    decoder_width: int = 16
    resolution: int = 2


@register("colorization", "Colorful image colorization: the backbone sees L, a decoder classifies each "
          "pixel's ab bin (class-rebalanced cross-entropy); RGB data",
          presets={"paper": {**RESNET18,
                             "neighbours": 5, "decoder_width": 64, "resolution": 4}})
class Colorization(RepresentationModel):
    """Backbone on ``L`` + per-pixel ab-bin classifier.

    Raises:
        ConfigError: data that are not RGB images, or an option out of range.
    """

    Config = ColorizationConfig

    def __init__(self, spec: DataSpec, config: ColorizationConfig) -> None:
        super().__init__(spec, config, in_channels=1)
        require_colour(self)
        if not 2 <= config.grid <= 50:
            raise ConfigError(f"colorization grid must be in [2, 50] ab units, got {config.grid}")
        if not 0 <= config.rebalance <= 1:
            raise ConfigError(f"colorization rebalance must be in [0, 1], got {config.rebalance}")
        if config.temperature < 0:
            raise ConfigError(f"colorization temperature must be >= 0, got {config.temperature}")
        self.register_buffer("centres", ab_bin_centres(config.grid))  # (Q, 2)
        Q = len(self.centres)
        if not 1 <= config.neighbours <= Q:
            raise ConfigError(f"colorization neighbours must be in [1, {Q}], got {config.neighbours}")
        self.register_buffer("ab_counts", torch.zeros(Q))
        size = check_resolution(self, config.resolution)
        self.decoder = decoder_to(size, config, self.feature_dim, Q, config.decoder_width)

    def lightness(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's input: ``L / 100`` of RGB images in [0, 1], ``(B, 1, H, W)``."""
        return rgb_to_lab(images)[:, :1] / 100

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.lightness(images))

    def ab_logits(self, L: torch.Tensor) -> torch.Tensor:
        """Per-pixel scores over the ab bins from ``L / 100``, ``(B, 1, H, W) -> (B, Q, h, w)`` at
        ``1 / resolution`` of the size."""
        return self.decoder(self.encoder.feature_map(L))

    def class_weights(self) -> torch.Tensor:
        """The rebalancing weights from the bin histogram so far, ``(Q,)`` (all 1 before any)."""
        if self.ab_counts.sum() == 0:
            return torch.ones_like(self.ab_counts)
        p = smoothed_distribution(self.ab_counts, self.centres)
        return rebalancing_weights(p, self.config.rebalance)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        lab = rgb_to_lab(self.images(batch["x"]))  # (B, 3, H, W)
        logits = self.ab_logits(lab[:, :1] / 100)  # (B, Q, h, w)
        ab = F.avg_pool2d(lab[:, 1:], self.config.resolution)  # (B, 2, h, w): targets at that size
        if self.config.neighbours == 1:
            q_star = nearest_bins(ab, self.centres)  # (B, h, w)
            ce = F.cross_entropy(logits, q_star, reduction="none")  # (B, h, w)
        else:
            z = soft_encode(ab, self.centres, self.config.neighbours)  # (B, Q, h, w)
            q_star = z.argmax(1)
            ce = -(z * F.log_softmax(logits, 1)).sum(1)
        if self.training:
            self.ab_counts += torch.bincount(q_star.flatten(), minlength=len(self.centres)).float()
        loss = (self.class_weights()[q_star] * ce).mean()
        return {"loss": loss, "cross_entropy": ce.mean(),
                "accuracy": (logits.argmax(1) == q_star).float().mean()}

    @torch.no_grad()
    @torch.no_grad()
    def illustrations(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """``colorization``: the images, their lightness (what the network sees), colourings at
        T = 0 (the mode), the config's temperature, and T = 1 (the mean)."""
        grey = (rgb_to_lab(self.images(x))[:, :1] / 100).expand(-1, 3, -1, -1)
        T = self.config.temperature
        return {"colorization": [self.images(x), grey, self.colorize(x, 0.0), self.colorize(x, T),
                                 self.colorize(x, 1.0)]}

    def colorize(self, x: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """RGB images in [0, 1] coloured from the lightness of ``x`` alone, ``(B, 3, H, W)``.

        Args:
            x: raw examples.
            temperature: of the annealed mean; default the config's.
        """
        L = rgb_to_lab(self.images(x))[:, :1]
        T = self.config.temperature if temperature is None else temperature
        ab = annealed_mean(self.ab_logits(L / 100), self.centres, T)  # (B, 2, h, w)
        ab = F.interpolate(ab, size=L.shape[2:], mode="bilinear", align_corners=False)
        return lab_to_rgb(torch.cat([L, ab], 1))
