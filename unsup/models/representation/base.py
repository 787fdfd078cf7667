"""Representation models: learn an encoder ``h = f(x)`` whose features cut the labels a task needs.

A representation model is trained by ``unsup train`` like any other model (the loop only calls
:meth:`~unsup.models.base.Model.loss`) and judged by ``unsup probe`` (:mod:`unsup.probe`), which
only calls :meth:`RepresentationModel.encode`. Each method owns a shared
:class:`~unsup.models.representation.backbones.Backbone` named by its config (``--backbone conv|resnet --width
--depth --blocks``), so that methods are compared on the same network, plus whatever heads or
decoders its pretext loss needs; the probes see the backbone's pooled features only.

Images enter as the data stores them (integer levels or floats) and are turned into floats in
``[0, 1]`` by :meth:`RepresentationModel.images`; methods that corrupt or cut their inputs do it on
those floats.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.models.base import Model
from unsup.models.representation.backbones import Backbone


class RepresentationModel(Model):
    """Base class: an image encoder ``self.encoder`` trained by a subclass's :meth:`loss`.

    Args:
        spec: image data, ``(C, H, W)``, discrete levels or continuous values in ``[0, 1]``.
        config: a dataclass deriving from :class:`~unsup.models.representation.backbones.BackboneConfig`.
        in_channels: channels the encoder takes, if not the data's (colorization encodes L only).
        encoder: a network to use instead of the configured backbone (an MLP on flat pixels);
            it must have an attribute ``dim``, the size of its output.

    Raises:
        ConfigError: data that are not images, or a bad backbone configuration.
    """

    encodes = True

    def __init__(self, spec: DataSpec, config: Any, in_channels: int | None = None,
                 encoder: nn.Module | None = None) -> None:
        super().__init__(spec, config)
        self.require(kinds=("image",))
        self.encoder = encoder if encoder is not None else Backbone(
            spec.shape[0] if in_channels is None else in_channels, config)

    @property
    def feature_dim(self) -> int:
        """``D``, the size of :meth:`encode`'s output."""
        return int(self.encoder.dim)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Checked examples as floats in ``[0, 1]`` on the model's device, ``(B, C, H, W)``:
        discrete levels are divided by ``levels - 1``."""
        self.check_input(x)
        x = x.to(self.device)
        if self.spec.levels is not None:
            return x.float() / (self.spec.levels - 1)
        return x.float()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder on float images (already through :meth:`images`), ``(B, D)``. Methods
        whose encoder sees a transformed input (colorization: the L channel) override it."""
        return self.encoder(images)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of raw examples ``x`` for probes, ``(B, D)``."""
        return self.features(self.images(x))
