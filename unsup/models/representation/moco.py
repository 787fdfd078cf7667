"""MoCo: momentum contrast, v1 (He et al. 2020) and v2 (Chen et al. 2020).

Contrastive learning as dictionary look-up [1]: a query ``q = g(f(t(x)))`` must match its key
``k+ = g_k(f_k(t'(x)))`` among ``K`` negative keys, with the InfoNCE loss
(:func:`~unsup.models.representation.contrastive.info_nce`)

    L = -log exp(q . k+ / tau) / (exp(q . k+ / tau) + sum_{j=1..K} exp(q . k_j / tau)).

Two ideas make the dictionary large and consistent:

* a **queue**: the negatives are the keys of the last ``K`` (``--queue``) examples, far more
  than a batch; each step enqueues the batch's keys (of every process under torchrun) and drops
  the oldest, so ``K`` is decoupled from the batch size;
* a **momentum key encoder**: keys come from a copy of the network that is not trained by
  back-propagation but follows the query network slowly, ``xi <- m xi + (1 - m) theta``
  (``--key-momentum``; 0.999 in [1]), so that keys in the queue, computed at different steps,
  remain comparable. Keys receive no gradient.

**Shuffling BN** [1]: with batch norm, a query and its key normalised with the same batch
statistics can be matched through those statistics rather than their content. MoCo computes keys
on a shuffled batch split across devices; here the batch is split into ``--shuffle-groups`` groups
that are normalised separately (the queries in order, the keys after a random permutation), which
does the same on one device.

The update of ``xi`` is done at the start of each training step from the current ``theta``; it
gives the same sequence of key encoders as updating after each optimiser step. Nothing of this
happens during validation (``model.eval()`` / no gradients), which scores two views of each image
against the rest of the batch
(:meth:`~unsup.models.representation.contrastive.ContrastiveModel.view_matching`):
the queue starts as random vectors, so a loss against it would not be comparable along a run.

v2 [2] keeps the method and changes what [2] showed matters: an MLP projection head (``--head
mlp``), stronger augmentation with blur (``--augment moco-v2``), ``tau = 0.2`` and a cosine
learning-rate schedule (``unsup train --schedule cosine``). The defaults are v2 for 2 CPU cores
(``K = 4096``, ``m = 0.99`` (``--key-momentum``), which suits runs of a few thousand steps);
preset ``v1`` is [1]'s head, augmentation and temperature; ``paper`` is [2]'s ImageNet
configuration on the ResNet-18-sized backbone (``K = 65536``, ``m = 0.999``, 2048-unit head,
``tau = 0.2``).

References:
    [1] He, Fan, Wu, Xie, Girshick. Momentum Contrast for Unsupervised Visual Representation
        Learning. CVPR 2020.
    [2] Chen, Fan, Girshick, He. Improved Baselines with Momentum Contrastive Learning. 2020.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18
from unsup.models.representation.contrastive import ContrastiveConfig, ContrastiveModel, gather, info_nce


@dataclass
class MoCoConfig(ContrastiveConfig):
    """Hyper-parameters of :class:`MoCo` (v2 defaults sized for a CPU).

    Attributes:
        queue: K, the number of negative keys kept.
        key_momentum: m of the key encoder's moving average (0 makes it a copy of the query encoder).
        shuffle_groups: batch-norm groups for the shuffled keys (1: no shuffling).
    """

    augment: str = "moco-v2"
    temperature: float = 0.2
    queue: int = 4096
    key_momentum: float = 0.99
    shuffle_groups: int = 2


V1 = {"augment": "moco-v1", "head": "linear", "temperature": 0.07}


@register("moco", "MoCo v1/v2: momentum key encoder, a FIFO queue of negative keys, shuffled BN "
          "(v2: MLP head, blur, tau 0.2)",
          presets={"v1": V1, "v2": {},
                   "paper": {**RESNET18, "queue": 65536, "key_momentum": 0.999, "head_hidden": 2048}})
class MoCo(ContrastiveModel):
    """Query network (backbone + head) trained against a momentum key network and a queue.

    Raises:
        ConfigError: ``queue < 1``, ``key_momentum`` outside ``[0, 1)`` or ``shuffle_groups < 1``.
    """

    Config = MoCoConfig

    def __init__(self, spec: DataSpec, config: MoCoConfig) -> None:
        super().__init__(spec, config)
        if config.queue < 1:
            raise ConfigError(f"moco queue must be >= 1, got {config.queue}")
        if not 0 <= config.key_momentum < 1:
            raise ConfigError(f"moco key_momentum must be in [0, 1), got {config.key_momentum}")
        if config.shuffle_groups < 1:
            raise ConfigError(f"moco shuffle_groups must be >= 1, got {config.shuffle_groups}")
        # xi: the key encoder and head, initialised as copies of the query network (theta)
        self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(config.queue, self.embedding_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def _pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        return [*zip(self.encoder.parameters(), self.key_encoder.parameters(), strict=True),
                *zip(self.head.parameters(), self.key_head.parameters(), strict=True)]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``xi <- m xi + (1 - m) theta`` for every parameter of the key network."""
        for theta, xi in self._pairs():
            xi.lerp_(theta.detach(), 1 - self.config.key_momentum)

    @torch.no_grad()
    def keys(self, views: torch.Tensor) -> torch.Tensor:
        """``k = g_k(f_k(views))``, L2-normalised, ``(B, dim)``, with shuffled batch-norm groups."""
        perm = torch.randperm(len(views), device=views.device)
        groups = views[perm].chunk(self.config.shuffle_groups)
        k = torch.cat([self.key_head(self.key_encoder(g)) for g in groups])  # (B, dim), shuffled
        return F.normalize(k[torch.argsort(perm)], dim=1)

    def queries(self, views: torch.Tensor) -> torch.Tensor:
        """``q = g(f(views))``, L2-normalised, ``(B, dim)``, batch norm in the same groups' sizes."""
        groups = views.chunk(self.config.shuffle_groups)
        return F.normalize(torch.cat([self.head(self.encoder(g)) for g in groups]), dim=1)

    @torch.no_grad()
    def enqueue(self, k: torch.Tensor) -> None:
        """Replace the oldest keys of the queue by ``k`` ``(n, dim)`` (the newest ``K`` if ``n > K``)."""
        k = k[-self.config.queue:]
        idx = (self.queue_ptr + torch.arange(len(k), device=k.device)) % self.config.queue
        self.queue[idx] = k
        self.queue_ptr.copy_((self.queue_ptr + len(k)) % self.config.queue)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        images = self.images(batch["x"])
        if not (self.training and torch.is_grad_enabled()):
            return self.view_matching(images)
        self.momentum_update()
        x_q, x_k = self.views(images, 2)
        q, k = self.queries(x_q), self.keys(x_k)
        logits, labels = info_nce(q, k, self.queue.clone(), self.config.temperature)
        self.enqueue(gather(k, grad=False))
        return {"loss": F.cross_entropy(logits, labels),
                "accuracy": (logits.argmax(1) == labels).float().mean()}
