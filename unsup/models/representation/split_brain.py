"""Split-brain autoencoders [1]: two networks, each predicting one part of the channels from the other.

An RGB image is converted to CIE Lab (:mod:`unsup.models.representation.color`) and split into ``X1 = L`` and
``X2 = ab``. Two disjoint sub-networks are trained by cross-channel prediction:

* ``F1: L -> ab`` -- the shared backbone ``self.encoder`` on ``L / 100`` and a decoder from its
  feature map classifying each pixel's ab bin (the quantisation of
  :mod:`unsup.models.representation.colorization`,
  one-hot nearest bin);
* ``F2: ab -> L`` -- a second backbone ``self.encoder2`` of the same configuration on ``ab / 110``
  and a decoder classifying each pixel's ``L`` into ``l_bins`` equal bins of ``[0, 100]``.

Both use classification ([1] finds cross-entropy better than regression for both directions),
without class rebalancing:

    L = CE(F1(X1), Q_ab(X2)) + CE(F2(X2), Q_L(X1)),

each a per-pixel mean, at ``1 / resolution`` of the image size against average-pooled targets
(as in colorization). The representation is the concatenation of the two pooled codes,
``f(x) = [f1(L), f2(ab)]``, so ``D`` is twice the backbone's; neither half ever sees the channels it
predicts.

References:
    [1] Zhang, Isola, Efros. Split-Brain Autoencoders: Unsupervised Learning by Cross-Channel
        Prediction. CVPR 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, Backbone, BackboneConfig
from unsup.models.representation.base import RepresentationModel
from unsup.models.representation.color import rgb_to_lab
from unsup.models.representation.colorization import (
    ab_bin_centres,
    check_resolution,
    decoder_to,
    nearest_bins,
    require_colour,
)

AB_SCALE = 110.0  # |a|, |b| < 110 for sRGB colours: the ab input in about [-1, 1]


@dataclass
class SplitBrainConfig(BackboneConfig):
    """Hyper-parameters of :class:`SplitBrain`.

    Attributes:
        grid: side of the ab quantisation grid of F1's targets (10 in the paper).
        l_bins: equal bins of L in [0, 100] that F2 classifies into (50 in the paper).
        decoder_width: channels of each decoder's last upsampling stage.
        resolution: both halves predict at 1/resolution of the image size (must divide it).
    """

    grid: float = 10.0
    l_bins: int = 10
    decoder_width: int = 16
    resolution: int = 2


@register("split-brain", "Split-brain autoencoder: one backbone predicts ab bins from L, a second "
          "predicts L bins from ab; features = both pooled codes; RGB data",
          presets={"paper": {**RESNET18, "l_bins": 50,
                             "decoder_width": 64, "resolution": 4}})
class SplitBrain(RepresentationModel):
    """Two backbones on disjoint channel groups of Lab, each with a per-pixel classifier.

    Raises:
        ConfigError: data that are not RGB images, or an option out of range.
    """

    Config = SplitBrainConfig

    def __init__(self, spec: DataSpec, config: SplitBrainConfig) -> None:
        super().__init__(spec, config, in_channels=1)
        require_colour(self)
        if not 2 <= config.grid <= 50:
            raise ConfigError(f"split-brain grid must be in [2, 50] ab units, got {config.grid}")
        if config.l_bins < 2:
            raise ConfigError(f"split-brain l_bins must be >= 2, got {config.l_bins}")
        self.encoder2 = Backbone(2, config)
        self.register_buffer("centres", ab_bin_centres(config.grid))  # (Q, 2)
        size = check_resolution(self, config.resolution)
        self.decoder1 = decoder_to(size, config, self.encoder.dim, len(self.centres), config.decoder_width)
        self.decoder2 = decoder_to(size, config, self.encoder2.dim, config.l_bins, config.decoder_width)

    @property
    def feature_dim(self) -> int:
        return self.encoder.dim + self.encoder2.dim

    @staticmethod
    def inputs(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two halves' scaled inputs ``(L / 100, ab / 110)``, ``(B, 1, H, W)`` and ``(B, 2, H, W)``."""
        return lab[:, :1] / 100, lab[:, 1:] / AB_SCALE

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.inputs(rgb_to_lab(images))
        return torch.cat([self.encoder(x1), self.encoder2(x2)], 1)  # (B, 2D)

    def predictions(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel scores of Lab images at ``1 / resolution`` of their size: F1's over ab bins
        ``(B, Q, h, w)`` (from L only) and F2's over L bins ``(B, l_bins, h, w)`` (from ab only)."""
        x1, x2 = self.inputs(lab)
        return (self.decoder1(self.encoder.feature_map(x1)),
                self.decoder2(self.encoder2.feature_map(x2)))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        lab = rgb_to_lab(self.images(batch["x"]))  # (B, 3, H, W)
        small = F.avg_pool2d(lab, self.config.resolution)  # (B, 3, h, w): targets at the output size
        ab_target = nearest_bins(small[:, 1:], self.centres)  # (B, h, w)
        l_bins = self.config.l_bins
        l_target = (small[:, 0] * l_bins / 100).long().clamp(0, l_bins - 1)  # (B, h, w)
        ab_logits, l_logits = self.predictions(lab)
        ce1 = F.cross_entropy(ab_logits, ab_target)
        ce2 = F.cross_entropy(l_logits, l_target)
        return {"loss": ce1 + ce2, "ab_cross_entropy": ce1, "l_cross_entropy": ce2,
                "ab_accuracy": (ab_logits.argmax(1) == ab_target).float().mean(),
                "l_accuracy": (l_logits.argmax(1) == l_target).float().mean()}
