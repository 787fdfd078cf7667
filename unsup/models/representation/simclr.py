"""SimCLR: a simple framework for contrastive learning of visual representations (Chen et al. 2020).

Each image ``x_i`` of a batch of ``N`` is augmented twice, ``x~_i = t(x_i)``, ``x~_{N+i} = t'(x_i)``
(:mod:`unsup.augment`), encoded by the backbone ``h = f(x~)`` and projected by an MLP head
``z = g(h)`` [1]. The loss (:func:`~unsup.models.representation.contrastive.nt_xent`) asks each of the ``2N``
views to pick its partner among the other ``2N - 1``:

    L = (1 / 2N) sum_i -log exp(sim(z_i, z_j(i)) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau),

with cosine similarity ``sim`` and temperature ``tau``: the negatives are simply the rest of the
batch, so quality grows with the batch size (4096 in [1], with the LARS optimiser that keeps such
batches stable: ``unsup train --optimizer lars``). Under ``torchrun`` the embeddings of all
processes are gathered, so the negatives are the global batch, and batch norm should be synchronised
(``--sync-bn``), since per-device statistics leak which views share a device.

What [1] found to matter, and what the options expose: the composition of random crops with colour
distortion (``--augment simclr``, strength ``--jitter``), a non-linear projection head whose
*input* is the representation (``--head mlp``; the probes read ``h``), the temperature (0.5 on
CIFAR-10), large batches and long training.

The ``paper`` preset is the CIFAR-10 configuration of [1]: ResNet-18-sized backbone, 2048-unit head
to 128 dimensions, ``tau = 0.5``, jitter strength 0.5 without blur; train it with
``--batch-size 512 --optimizer lars --lr 1.0 --schedule cosine --warmup 500`` or more.

References:
    [1] Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of Visual
        Representations. ICML 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18
from unsup.models.representation.contrastive import ContrastiveConfig, ContrastiveModel


@dataclass
class SimCLRConfig(ContrastiveConfig):
    """Hyper-parameters of :class:`SimCLR` (all shared with the other contrastive methods)."""


@register("simclr", "SimCLR: two augmented views of each image, MLP projection head, NT-Xent loss "
          "against the rest of the batch",
          presets={"paper": {**RESNET18, "head_hidden": 2048, "dim": 128, "temperature": 0.5,
                             "jitter": 0.5, "blur": 0.0}})
class SimCLR(ContrastiveModel):
    """Backbone + projection head trained with the NT-Xent loss on pairs of views."""

    Config = SimCLRConfig

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        # SimCLR's training task is the view matching every contrastive method validates with
        # (both views in one pass, so batch norm sees them together)
        return self.view_matching(self.images(batch["x"]))

