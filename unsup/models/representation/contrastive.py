"""Pieces shared by the contrastive methods (:mod:`~unsup.models.representation.simclr`,
:mod:`~unsup.models.representation.moco`,
:mod:`~unsup.models.representation.instance_discrimination`).

All of them score a query ``q`` against one positive key ``k+`` and many negative keys with the
InfoNCE loss [1], a ``(1 + K)``-way classification whose right answer is the positive:

    L = -log exp(q . k+ / tau) / (exp(q . k+ / tau) + sum_j exp(q . k_j / tau)),

on L2-normalised vectors, so ``q . k`` is a cosine similarity and ``tau`` (``--temperature``) sets
how sharply the hardest negatives are weighted. Minimising it maximises a lower bound on the mutual
information between the two views, ``I(q; k) >= log(1 + K) - L`` [1], which is why the methods
differ mostly in where their ``K`` negatives come from: the rest of the batch (SimCLR), a queue of
past keys from a slowly moving encoder (MoCo), or a memory bank of every example's last embedding
(instance discrimination).

* :func:`info_nce` returns the logits with the positive in column 0 and the labels (zeros), the
  way MoCo's reference code does, so a test or a caller can apply the cross-entropy itself;
* :func:`nt_xent` is SimCLR's normalised-temperature cross-entropy over ``2N`` views, where every
  view's negatives are the other ``2N - 2`` views of the batch;
* :func:`gather` concatenates a tensor over the processes of a ``torchrun`` job (with gradients
  when asked), so negatives come from the global batch;
* :func:`projection_head` is the MLP ``g`` between the features and the loss [2]; the probes use
  the features *before* it, which [2] found far better than those after;
* :class:`ContrastiveModel` holds the augmentation and the head.

References:
    [1] van den Oord, Li, Vinyals. Representation Learning with Contrastive Predictive Coding. 2018.
    [2] Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of Visual
        Representations. ICML 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from unsup.augment import Views, pipeline
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.backbones import BackboneConfig
from unsup.models.representation.base import RepresentationModel
from unsup.nn import distributed

HEADS = ("mlp", "linear", "none")


@dataclass
class ContrastiveConfig(BackboneConfig):
    """Options every contrastive method shares.

    Attributes:
        augment: the view pipeline (:mod:`unsup.augment`): simclr, moco-v1, moco-v2, crop or none.
        jitter: colour-jitter strength of the simclr pipeline.
        blur: probability of Gaussian blur (simclr and moco-v2 pipelines; 0 disables it).
        temperature: tau of the InfoNCE loss.
        head: projection head between features and loss: mlp (Linear-BN-ReLU-Linear), linear or
            none (the loss sees the features themselves).
        head_hidden: hidden units of the mlp head.
        dim: size of the embedding the loss compares (the head's output; ignored by head none).
    """

    augment: str = "simclr"
    jitter: float = 0.5
    blur: float = 0.5
    temperature: float = 0.5
    head: str = "mlp"
    head_hidden: int = 256
    dim: int = 128


def projection_head(in_dim: int, kind: str, hidden: int, out_dim: int) -> nn.Module:
    """``g``: ``mlp`` = Linear -> BatchNorm -> ReLU -> Linear, ``linear``, or ``none`` (identity)."""
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


def gather(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """``x`` of every process concatenated in rank order, ``(W B, ...)``; ``x`` itself alone.

    With ``grad``, gradients flow back to every process's slice (each process then holds the
    gradient of its own loss with respect to all embeddings; the data-parallel average makes it the
    gradient of the global loss). Without, the result is detached (keys for a queue or a bank).
    """
    size = distributed.current().world_size
    if size == 1:
        return x if grad else x.detach()
    sizes = [torch.zeros((), dtype=torch.long, device=x.device) for _ in range(size)]
    dist.all_gather(sizes, torch.tensor(len(x), device=x.device))
    if len({int(n) for n in sizes}) > 1:
        raise ConfigError(f"contrastive negatives are gathered from equal batches on every process, "
                          f"got {[int(n) for n in sizes]}: use a --batch-size divisible by {size}")
    if grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x))
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


def info_nce(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of the InfoNCE classification.

    Args:
        q: queries, ``(B, D)``, L2-normalised.
        k: their positive keys, ``(B, D)``, L2-normalised.
        negatives: ``(K, D)`` keys shared by all queries, or ``(B, K, D)``, one set per query.
        temperature: tau.

    Returns:
        logits ``(B, 1 + K)`` (column 0: the positive) and labels ``(B,)``, all 0.
    """
    l_pos = (q * k).sum(-1, keepdim=True)  # (B, 1)
    if negatives.dim() == 2:
        l_neg = q @ negatives.t()  # (B, K)
    else:
        l_neg = torch.einsum("bd,bkd->bk", q, negatives)  # (B, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return logits, torch.zeros(len(q), dtype=torch.long, device=q.device)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCLR's loss over the two views of a batch: the mean of ``l(i, j)`` over all ``2N`` views.

    ``l(i, j) = -log exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)`` with ``s`` the cosine
    similarity, ``j`` the other view of ``i``'s image and ``k`` every view of the (global, under
    torchrun) batch but ``i`` itself; symmetric in the two views by construction.

    Args:
        z1, z2: embeddings of the two views, ``(N, D)`` each (not necessarily normalised).
        temperature: tau.

    Returns:
        the loss and the accuracy of picking ``j`` among the ``2N - 1`` candidates.
    """
    n = len(z1)
    place = distributed.current()
    rank, size = place.rank, place.world_size
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D): this process's queries
    keys = torch.cat([gather(z[:n]), gather(z[n:])])  # (2 W N, D): view 1 of all, then view 2
    sim = z @ keys.t() / temperature  # (2N, 2WN)
    i = torch.arange(n, device=z.device) + rank * n  # global index of this process's images
    own = torch.cat([i, i + size * n])  # column of each query itself
    positive = torch.cat([i + size * n, i])  # column of its other view
    sim[torch.arange(2 * n, device=z.device), own] = float("-inf")
    loss = F.cross_entropy(sim, positive)
    accuracy = (sim.argmax(1) == positive).float().mean()
    return loss, accuracy


class ContrastiveModel(RepresentationModel):
    """A backbone trained on augmented views through a projection head (``self.head``).

    Raises:
        ConfigError: an unknown head or augmentation, a non-positive temperature or head size.
    """

    loss_gathers = True  # negatives from every process (gather)

    def __init__(self, spec: DataSpec, config: Any) -> None:
        super().__init__(spec, config)
        if config.head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {config.head!r}")
        if config.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {config.temperature}")
        if config.head_hidden < 1 or config.dim < 1:
            raise ConfigError(f"head_hidden and dim must be >= 1, got {config.head_hidden} and {config.dim}")
        self.views = Views(pipeline(config.augment, spec.shape[0], tuple(spec.shape[1:]),
                                    config.jitter, config.blur))
        self.head = self.make_head()

    def make_head(self) -> nn.Module:
        c = self.config
        return projection_head(self.feature_dim, c.head, c.head_hidden, c.dim)

    @property
    def embedding_dim(self) -> int:
        """Size of the vectors the loss compares."""
        return self.feature_dim if self.config.head == "none" else self.config.dim

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``z = g(f(images))``, L2-normalised, ``(B, embedding_dim)``."""
        return F.normalize(self.head(self.features(images)), dim=1)

    def view_matching(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """NT-Xent of two views of ``images`` against the rest of the batch, with the query network.

        What validation scores for every contrastive method: unlike a queue or a memory bank,
        which start as random vectors and fill up during training, the other images of a batch
        are equally hard negatives at every step, so the number is comparable along a run (and
        selects its best checkpoint) and between methods.
        """
        z = self.head(self.features(torch.cat(self.views(images, 2))))
        loss, accuracy = nt_xent(*z.chunk(2), self.config.temperature)
        return {"loss": loss, "accuracy": accuracy}

    @torch.no_grad()
    def illustrations(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        images = self.images(x)
        return {"views": [images.cpu(), *[v.cpu() for v in self.views(images, 2)]]}
