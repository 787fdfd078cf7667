"""Relative patch position (Doersch, Gupta, Efros 2015): where is this patch relative to that one?

A ``3 x 3`` grid of ``patch x patch`` cells, ``gap`` pixels apart, is placed at a random position
inside each image. The centre cell and one of its 8 neighbours, ``y ~ U{0..7}`` in reading order

    0 1 2
    3 . 4
    5 6 7

are cropped, each moved by its own uniform integer offset in ``[-jitter, jitter]`` in both
directions; the shared encoder ``f`` (the backbone, applied to each patch) gives two feature
vectors and an MLP ``g`` on their concatenation classifies the position [1]:

    L = -(1/B) sum_i log softmax(g([f(c_i), f(n_i)]))[y_i].

Solving it needs to recognise objects and their parts (an eye is above a nose). The gap and the
jitter forbid the trivial solutions: without them, lines and textures continuing across the
boundary between two patches give the answer away. The whole grid with its jitter needs
``3 patch + 2 gap + 2 jitter`` pixels per side; the CPU defaults (7, 2, 1) need 27, fitting
28x28 Fashion-MNIST and 32x32 CIFAR with room to move the grid. The probes encode whole images
with the same backbone (it ends in global pooling, so any size works).

Chromatic aberration [1]: camera lenses focus colours differently, so the colour fringes tell how
far a patch is from the lens centre, hence where it lies in the image. ``channel_drop`` (colour
images only; a no-op on grayscale data):

* ``noise`` (default), as in the paper: in each patch, all channels but one chosen at random are
  replaced by Gaussian noise ``N(0, (s / 100)^2)``, ``s`` the standard deviation of the kept
  channel in that patch;
* ``projection``, the paper's alternative: every pixel loses its component along the
  green-magenta axis ``a = (-1, 2, -1) / sqrt(6)``, ``x <- x - a a^T x`` (needs RGB);
* ``none``.

References:
    [1] Doersch, Gupta, Efros. Unsupervised Visual Representation Learning by Context Prediction.
        ICCV 2015.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, BackboneConfig
from unsup.models.representation.base import RepresentationModel
from unsup.models.representation.patches import classifier, crop_patches

# (row, column) offset of neighbour y from the centre cell, in reading order
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
CHANNEL_DROPS = ("none", "noise", "projection")


@dataclass
class RelativePatchConfig(BackboneConfig):
    """Hyper-parameters of :class:`RelativePatch`.

    Attributes:
        patch: side of the square patches in pixels.
        gap: pixels between neighbouring cells of the 3x3 grid.
        jitter: each patch moves by up to this many pixels in each direction.
        hidden: units of the hidden layer of the MLP on the two concatenated features.
        channel_drop: against chromatic aberration, for colour images: noise (keep one random
            channel per patch, the others become faint noise), projection (remove the
            green-magenta component) or none.
    """

    patch: int = 7
    gap: int = 2
    jitter: int = 1
    hidden: int = 256
    channel_drop: str = "noise"


def drop_channels(patches: torch.Tensor) -> torch.Tensor:
    """Keep one random channel per patch, replace the others by ``N(0, (s/100)^2)`` noise, ``s``
    the kept channel's standard deviation in the patch; ``(..., C, h, w)`` -> same."""
    C = patches.shape[-3]
    keep = torch.randint(C, patches.shape[:-3], device=patches.device)
    mask = F.one_hot(keep, C).bool()[..., None, None]  # (..., C, 1, 1)
    s = (patches * mask).sum(-3, keepdim=True).std((-2, -1), keepdim=True)  # (..., 1, 1, 1)
    return torch.where(mask, patches, torch.randn_like(patches) * s / 100)


def project_out_green_magenta(patches: torch.Tensor) -> torch.Tensor:
    """``x - a a^T x`` per pixel with ``a = (-1, 2, -1) / sqrt(6)``; ``(..., 3, h, w)`` -> same."""
    a = patches.new_tensor([-1.0, 2.0, -1.0]) / math.sqrt(6)
    along = (patches * a[:, None, None]).sum(-3, keepdim=True)  # (..., 1, h, w)
    return patches - along * a[:, None, None]


@register("relative-patch", "context prediction: the backbone encodes a centre patch and a "
          "neighbour, an MLP tells which of the 8 neighbours it is",
          presets={"paper": {**RESNET18,
                             "patch": 96, "gap": 48, "jitter": 7, "hidden": 4096}})
class RelativePatch(RepresentationModel):
    """Shared patch encoder + MLP classifying the neighbour's position.

    Raises:
        ConfigError: the grid does not fit the images, a non-positive patch, a negative gap,
            jitter or hidden size, an unknown ``channel_drop``, or ``projection`` on non-RGB data.
    """

    Config = RelativePatchConfig

    def __init__(self, spec: DataSpec, config: RelativePatchConfig) -> None:
        super().__init__(spec, config)
        c = config
        if c.patch < 1 or c.gap < 0 or c.jitter < 0 or c.hidden < 1:
            raise ConfigError(f"relative-patch needs patch >= 1, gap >= 0, jitter >= 0 and hidden >= 1, "
                              f"got patch={c.patch}, gap={c.gap}, jitter={c.jitter}, hidden={c.hidden}")
        if c.channel_drop not in CHANNEL_DROPS:
            raise ConfigError(f"relative-patch channel_drop must be one of {', '.join(CHANNEL_DROPS)}, "
                              f"got {c.channel_drop!r}")
        if c.channel_drop == "projection" and spec.shape[0] != 3:
            raise ConfigError(f"channel_drop=projection needs RGB images, got {spec.shape[0]} channel(s); "
                              f"use noise or none")
        H, W = spec.shape[1:]
        need = 3 * c.patch + 2 * c.gap + 2 * c.jitter
        if need > min(H, W):
            largest = (min(H, W) - 2 * c.gap - 2 * c.jitter) // 3
            fix = f"patch <= {largest} fits" if largest >= 1 else "reduce gap or jitter"
            raise ConfigError(f"relative-patch's grid needs 3*patch + 2*gap + 2*jitter = 3*{c.patch} + "
                              f"2*{c.gap} + 2*{c.jitter} = {need} pixels per side, the images are {H}x{W}: "
                              f"use images of at least {need}x{need}, or (gap {c.gap}, jitter {c.jitter}) "
                              f"{fix}")
        self.head = classifier(2 * self.feature_dim, len(NEIGHBOURS), c.hidden)

    def positions(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random corners of ``n`` (centre, neighbour) pairs and the neighbours' labels.

        Returns:
            top ``(n, 2)`` and left ``(n, 2)`` (column 0 the centre patch, 1 the neighbour),
            labels ``(n,)`` in ``0..7``.
        """
        c, dev = self.config, self.device
        H, W = self.spec.shape[1:]
        step, extent = c.patch + c.gap, 3 * c.patch + 2 * c.gap
        # grid corner such that every jittered patch stays inside the image
        origin_top = torch.randint(c.jitter, H - extent - c.jitter + 1, (n,), device=dev)
        origin_left = torch.randint(c.jitter, W - extent - c.jitter + 1, (n,), device=dev)
        labels = torch.randint(len(NEIGHBOURS), (n,), device=dev)
        offsets = torch.tensor(NEIGHBOURS, device=dev)[labels]  # (n, 2): rows, columns
        cell_row = torch.stack([torch.ones_like(labels), 1 + offsets[:, 0]], 1)  # (n, 2)
        cell_col = torch.stack([torch.ones_like(labels), 1 + offsets[:, 1]], 1)
        jitter_top, jitter_left = torch.randint(-c.jitter, c.jitter + 1, (2, n, 2), device=dev)
        top = origin_top[:, None] + step * cell_row + jitter_top
        left = origin_left[:, None] + step * cell_col + jitter_left
        return top, left, labels

    def pairs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random (centre, neighbour) patch pairs of float images, colour-dropped, with labels.

        Args:
            images: ``(B, C, H, W)``.

        Returns:
            patches ``(B, 2, C, patch, patch)`` (centre first) and labels ``(B,)``.
        """
        top, left, labels = self.positions(len(images))
        patches = crop_patches(images, top, left, self.config.patch)  # (B, 2, C, p, p)
        if self.config.channel_drop == "noise" and patches.shape[2] > 1:
            patches = drop_channels(patches)
        elif self.config.channel_drop == "projection":
            patches = project_out_green_magenta(patches)
        return patches, labels

    def logits(self, patches: torch.Tensor) -> torch.Tensor:
        """Scores of the 8 positions for patch pairs ``(B, 2, C, p, p)``, ``(B, 8)``."""
        B = len(patches)
        h = self.features(patches.flatten(0, 1)).view(B, -1)  # (B, 2 D): [f(centre), f(neighbour)]
        return self.head(h)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        patches, labels = self.pairs(self.images(batch["x"]))
        logits = self.logits(patches)
        return {"loss": F.cross_entropy(logits, labels),
                "accuracy": (logits.argmax(1) == labels).float().mean()}
