"""Rotation prediction, RotNet (Gidaris, Singh, Komodakis 2018).

Every image ``x`` of the batch is rotated by each of ``K`` angles ``phi_k = k * 360 / K``
(``k = 0 .. K-1``; ``K`` = ``angles``, 2, 4 or 8), and the backbone ``f`` followed by a classifier
``g`` must tell which rotation it sees [1]:

    L = -(1 / (K B)) sum_i sum_k log softmax(g(f(rot(x_i, phi_k))))[k],

the cross-entropy averaged over all ``K B`` rotated copies (all copies of an image are in the same
batch, as in [1]; ``accuracy`` is the fraction of copies whose angle is recognised). To say which
way is up the network must find the objects and their parts, which is the representation that the
probes reward; [1] found 4 angles best (2 is too easy a task, 8 adds 45-degree rotations whose
interpolation and black corners are low-level cues), an ablation that ``--angles 2|4|8`` repeats.

Rotations are counter-clockwise as displayed (row 0 at the top). Multiples of 90 degrees are
exact permutations of the pixels (``torch.rot90``) and need square images; 45-degree rotations
resample the image bilinearly (``affine_grid`` / ``grid_sample``), taking the output pixel at
normalised coordinates ``p = (u, v)`` (``v`` pointing down) from the input at

    R(phi) p,   R(phi) = [[cos phi, -sin phi], [sin phi, cos phi]],

with ``align_corners=False``, so that at 90 degrees pixel centres land exactly on pixel centres
and the sampled rotation equals ``rot90`` (a test checks it). The corners of a 45-degree rotation
come from outside the image: ``padding="zeros"`` (default) fills them with black, the background
of Fashion-MNIST and a visible cue on natural images; ``"reflection"`` mirrors the image into them
and ``"border"`` repeats the edge pixels.

References:
    [1] Gidaris, Singh, Komodakis. Unsupervised Representation Learning by Predicting Image
        Rotations. ICLR 2018.
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
from unsup.models.representation.patches import classifier

ANGLES = (2, 4, 8)
PADDINGS = ("zeros", "reflection", "border")


@dataclass
class RotationConfig(BackboneConfig):
    """Hyper-parameters of :class:`Rotation`.

    Attributes:
        angles: number of rotations K, multiples of 360/K degrees: 2 (0/180), 4 (0/90/180/270)
            or 8 (multiples of 45).
        hidden: units of the classifier's hidden layer (0: a linear classifier on the features).
        padding: what fills the corners of 45-degree rotations: zeros, reflection or border.
    """

    angles: int = 4
    hidden: int = 0
    padding: str = "zeros"


def rotate_by_sampling(images: torch.Tensor, degrees: float, padding: str = "zeros") -> torch.Tensor:
    """Rotate counter-clockwise by any angle with bilinear resampling, ``(B, C, H, W)`` -> same."""
    phi = math.radians(degrees)
    c, s = math.cos(phi), math.sin(phi)
    theta = images.new_tensor([[c, -s, 0.0], [s, c, 0.0]]).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def rotate(images: torch.Tensor, degrees: float, padding: str = "zeros") -> torch.Tensor:
    """Rotate counter-clockwise: exactly by ``torch.rot90`` for multiples of 90 degrees, else by
    :func:`rotate_by_sampling`."""
    if degrees % 90 == 0:
        return torch.rot90(images, int(degrees // 90) % 4, dims=(2, 3))
    return rotate_by_sampling(images, degrees, padding)


@register("rotation", "RotNet: the backbone + a classifier predict by which of 2/4/8 angles each "
          "image was rotated",
          presets={"paper": {**RESNET18, "angles": 4}})
class Rotation(RepresentationModel):
    """Backbone + angle classifier trained on all ``angles`` rotations of every image.

    Raises:
        ConfigError: ``angles`` not 2, 4 or 8, an unknown padding, a negative ``hidden``, or
            non-square images with 90-degree rotations (``angles`` 4 or 8).
    """

    Config = RotationConfig

    def __init__(self, spec: DataSpec, config: RotationConfig) -> None:
        super().__init__(spec, config)
        if config.angles not in ANGLES:
            raise ConfigError(f"rotation angles must be one of {', '.join(map(str, ANGLES))}, "
                              f"got {config.angles}")
        if config.padding not in PADDINGS:
            raise ConfigError(f"rotation padding must be one of {', '.join(PADDINGS)}, "
                              f"got {config.padding!r}")
        if config.hidden < 0:
            raise ConfigError(f"rotation hidden must be >= 0 (0: linear classifier), got {config.hidden}")
        H, W = spec.shape[1:]
        if config.angles > 2 and H != W:
            raise ConfigError(f"rotation by 90 degrees needs square images, got {H}x{W}; use "
                              f"--angles 2 (0/180 degrees) or crop the images square")
        self.head = classifier(self.feature_dim, config.angles, config.hidden)

    @property
    def degrees(self) -> list[float]:
        """The angles ``phi_k = k * 360 / K`` in degrees, label ``k`` first to last."""
        return [k * 360 / self.config.angles for k in range(self.config.angles)]

    def rotations(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All rotated copies of float images and their angle labels.

        Args:
            images: ``(B, C, H, W)``.

        Returns:
            copies ``(K B, C, H, W)``, angle-major (copy ``k B + i`` is image ``i`` rotated by
            ``phi_k``), and labels ``(K B,)``.
        """
        copies = torch.cat([rotate(images, d, self.config.padding) for d in self.degrees])  # (K B, C, H, W)
        labels = torch.arange(self.config.angles, device=images.device).repeat_interleave(len(images))
        return copies, labels

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        copies, labels = self.rotations(self.images(batch["x"]))
        logits = self.head(self.features(copies))  # (K B, K)
        return {"loss": F.cross_entropy(logits, labels),
                "accuracy": (logits.argmax(1) == labels).float().mean()}
