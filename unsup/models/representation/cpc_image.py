"""Contrastive predictive coding on images: CPC (van den Oord et al. 2018) and the CPC v2 changes
(Hénaff et al. 2020).

An image is cut into a ``G_h x G_w`` grid of overlapping square patches (side ``--patch`` P,
stride P/2). The backbone encodes every patch alone, ``z_ij = f(x_ij)`` (``(B, D, G_h, G_w)``), a
context network ``g`` that sees only the rows above and the current one (a stack of masked,
PixelCNN-style convolutions over the grid [1]) summarises them, ``c_ij = g(z_{<=i, .})``, and for
each offset ``k = 1..K`` (``--steps-ahead``) a linear map ``W_k`` predicts the patch ``k`` rows
below, ``z^_{i+k, j} = W_k c_ij``. The InfoNCE loss [1] asks each prediction to pick its patch
among all the patches of the batch (other positions and other images are the negatives; under
``torchrun``, training gathers the patches of every process's images):

    L = -(1/|P|) sum_{(i,j,k) in P} log exp(z^_{i+k,j} . z_{i+k,j}) / sum_{z' in batch} exp(z^_{i+k,j} . z'),

over every position with a row ``i + k`` inside the grid; ``accuracy`` is how often the right
patch wins. The probes read the patch features averaged over the grid, ``mean_ij z_ij`` (the
linear evaluation of [1, 2]; fine-tuning trains the same).

CPC v2 [2] showed what makes this work far better, each an option here:

* **layer norm** instead of batch norm in the patch encoder (``--norm layer``): batch statistics
  over the patches of one image leak what the neighbouring patches look like, which the task can
  exploit instead of learning features;
* **patch augmentation** (``--patch-augment``): each patch gets its own random view (the
  :mod:`unsup.augment` pipelines, e.g. ``crop`` or ``simclr``), so low-level cues (colour,
  position within the patch) no longer identify the neighbours;
* **bottom-up predictions** (``--directions down,up``): a second context network reads the grid
  from the bottom and predicts rows above, doubling the predictions per image.

The ``paper`` preset is [2]'s recipe at CIFAR scale on the ResNet-18-sized backbone (layer norm,
patch augmentation, both directions); [1] used 64x64 patches of 256x256 ImageNet crops.

References:
    [1] van den Oord, Li, Vinyals. Representation Learning with Contrastive Predictive Coding. 2018.
    [2] Hénaff, Srinivas, De Fauw, Razavi, Doersch, Eslami, van den Oord. Data-Efficient Image
        Recognition with Contrastive Predictive Coding. ICML 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.augment import Views, pipeline
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, BackboneConfig
from unsup.models.representation.base import RepresentationModel
from unsup.models.representation.contrastive import gather
from unsup.nn import distributed

DIRECTIONS = ("down", "up")


@dataclass
class CPCImageConfig(BackboneConfig):
    """Hyper-parameters of :class:`CPCImage`.

    Attributes:
        patch: side P of the square patches (the grid's stride is P // 2).
        steps_ahead: K, how many rows below (or above) are predicted.
        context: channels of the context network.
        context_layers: masked convolutions in the context network.
        directions: ``down`` (predict rows below, [1]) or ``down,up`` (also bottom-up, [2]).
        patch_augment: a view pipeline applied to every patch on its own (``none``: off).
    """

    patch: int = 8
    steps_ahead: int = 2
    context: int = 128
    context_layers: int = 3
    directions: str = "down"
    patch_augment: str = "none"


class RowCausalConv(nn.Module):
    """A ``k x k`` convolution over the grid whose output at row ``i`` sees rows ``i - k + 1 .. i``
    only (zero padding above, none below): the masked convolution of a PixelCNN's vertical stack."""

    def __init__(self, c_in: int, c_out: int, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(c_in, c_out, k, padding=0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        half = self.k // 2
        return self.conv(F.pad(z, (half, half, self.k - 1, 0)))  # (left, right, top, bottom)


class ContextNetwork(nn.Module):
    """``c = g(z)``: row-causal convolutions with residual connections, ``(B, D, G, G) -> (B, C, G, G)``."""

    def __init__(self, in_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.inp = RowCausalConv(in_dim, hidden, 1)
        self.layers = nn.ModuleList(RowCausalConv(hidden, hidden) for _ in range(layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.inp(z)
        for layer in self.layers:
            c = c + layer(torch.relu(c))
        return c


def patch_grid(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Overlapping ``patch x patch`` patches at stride ``patch // 2``: ``(B, C, H, W) -> (B, G_h,
    G_w, C, patch, patch)``."""
    stride = patch // 2
    p = images.unfold(2, patch, stride).unfold(3, patch, stride)  # (B, C, G_h, G_w, P, P)
    return p.permute(0, 2, 3, 1, 4, 5)


@register("cpc-image", "CPC on images: patch grid, patch encoder, masked-convolution context, "
          "InfoNCE predictions of the rows below (v2 options: layer norm, patch augmentation, "
          "bottom-up)",
          presets={"paper": {**RESNET18, "patch": 16, "steps_ahead": 3, "context": 512,
                             "context_layers": 5, "norm": "layer", "directions": "down,up",
                             "patch_augment": "simclr"}})
class CPCImage(RepresentationModel):
    """Patch encoder (the backbone), context networks and predictors trained with InfoNCE.

    Raises:
        ConfigError: patches that do not fit, a grid with fewer than ``steps_ahead + 1`` rows,
            unknown directions or patch augmentation, or non-positive sizes.
    """

    loss_gathers = True  # negatives from every process (gather)

    Config = CPCImageConfig

    def __init__(self, spec: DataSpec, config: CPCImageConfig) -> None:
        super().__init__(spec, config)
        c = config
        if c.patch < 2 or c.steps_ahead < 1 or c.context < 1 or c.context_layers < 0:
            raise ConfigError(f"cpc-image needs patch >= 2, steps_ahead >= 1, context >= 1 and "
                              f"context_layers >= 0, got {c.patch}, {c.steps_ahead}, {c.context}, "
                              f"{c.context_layers}")
        H, W = spec.shape[1:]
        self.grid = ((H - c.patch) // (c.patch // 2) + 1, (W - c.patch) // (c.patch // 2) + 1)
        if c.patch > min(H, W) or self.grid[0] <= c.steps_ahead:
            raise ConfigError(f"cpc-image: {c.patch}-pixel patches at stride {c.patch // 2} make a "
                              f"grid of {'x'.join(map(str, self.grid))} on {H}x{W} images, which needs "
                              f"more than steps_ahead={c.steps_ahead} rows; use a smaller --patch")
        self.directions = [d.strip() for d in c.directions.split(",") if d.strip()]
        if not self.directions or any(d not in DIRECTIONS for d in self.directions) or len(
                set(self.directions)) < len(self.directions):
            raise ConfigError(f"cpc-image directions must be down or down,up, got {c.directions!r}")
        self.patch_views = Views(pipeline(c.patch_augment, spec.shape[0], (c.patch, c.patch)))
        D = self.feature_dim
        self.context_nets = nn.ModuleDict({d: ContextNetwork(D, c.context, c.context_layers)
                                           for d in self.directions})
        # W_k for k = 1..K and each direction, as one 1x1 convolution giving K D channels
        self.predictors = nn.ModuleDict({d: nn.Conv2d(c.context, c.steps_ahead * D, 1)
                                         for d in self.directions})

    def patch_features(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """``z = f(patches)`` on the grid, ``(B, D, G_h, G_w)``."""
        patches = patch_grid(images, self.config.patch)  # (B, G_h, G_w, C, P, P)
        B, Gh, Gw = patches.shape[:3]
        flat = patches.reshape(B * Gh * Gw, *patches.shape[3:])  # (B G_h G_w, C, P, P)
        if augment:
            (flat,) = self.patch_views(flat, 1)
        z = self.encoder(flat)  # (B G_h G_w, D)
        return z.view(B, Gh, Gw, -1).permute(0, 3, 1, 2)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_features(images).mean((2, 3))  # (B, D)

    def predictions(self, z: torch.Tensor, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and true patch features of every (position, k) whose target is on the grid.

        Returns:
            ``(N, D)`` predictions and the flat indices ``(N,)`` of their targets among the
            ``B G_h G_w`` patches of the batch (image-major, then row, then column).
        """
        if direction == "up":  # read the grid bottom-up: flip the rows, predict "below", flip back
            z = z.flip(2)
        B, D, Gh, Gw = z.shape
        K = self.config.steps_ahead
        pred = self.predictors[direction](self.context_nets[direction](z)).view(B, K, D, Gh, Gw)
        rows = torch.arange(Gh, device=z.device)
        preds, targets = [], []
        for k in range(1, K + 1):
            p = pred[:, k - 1, :, : Gh - k]  # (B, D, Gh - k, Gw): from rows i, targets in rows i + k
            target_rows = rows[k:] if direction == "down" else (Gh - 1 - rows[k:])  # in unflipped grid
            b, i, j = torch.meshgrid(torch.arange(B, device=z.device), target_rows,
                                     torch.arange(Gw, device=z.device), indexing="ij")
            preds.append(p.permute(0, 2, 3, 1).reshape(-1, D))
            targets.append(((b * Gh + i) * Gw + j).reshape(-1))
        return torch.cat(preds), torch.cat(targets)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        images = self.images(batch["x"])
        augment = self.config.patch_augment != "none" and self.training
        z = self.patch_features(images, augment)  # (B, D, G_h, G_w)
        candidates = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B G_h G_w, D)
        offset = 0
        if self.training and distributed.current().world_size > 1:  # every process's patches
            offset = distributed.current().rank * len(candidates)
            candidates = gather(candidates)
        losses, hits, n = [], [], 0
        for direction in self.directions:
            pred, target = self.predictions(z, direction)
            target = target + offset
            logits = pred @ candidates.t()  # (N, B G_h G_w)
            losses.append(F.cross_entropy(logits, target, reduction="sum"))
            hits.append((logits.argmax(1) == target).float().sum())
            n += len(target)
        return {"loss": sum(losses) / n, "accuracy": sum(hits) / n}
