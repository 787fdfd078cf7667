"""Instance discrimination with a memory bank (Wu, Xiong, Yu, Lin 2018).

Every training image is its own class [1]. An augmented view of image ``i`` is embedded as
``v = g(f(t(x_i)))`` (L2-normalised, ``--dim`` 128), and the classifier's "weights" are a memory
bank ``V`` holding one embedding per training example, so the class probability is non-parametric:

    P(i | v) = exp(V_i . v / tau) / sum_j exp(V_j . v / tau).

The sum over all ``n`` examples is too costly, so it is estimated from ``--negatives`` rows drawn
uniformly from the bank: the loss is the InfoNCE classification of ``V_i`` against them
(:func:`~unsup.models.representation.contrastive.info_nce`; [1] used noise-contrastive estimation with
the same
negatives, [2] showed the two are interchangeable here). The bank receives no gradient; after
each step the rows of the batch move toward the new embeddings,

    V_i <- normalise(mu V_i + (1 - mu) v),

(``--bank-momentum`` mu, 0.5 in [1]), so the bank lags the network by about an epoch: the
inconsistency MoCo's momentum encoder was designed to remove. Temperature 0.07 and the
augmentation (crop, colour jitter, greyscale, flip: ``--augment moco-v1``) follow [1].

Validation scores two views of each held-out image against the rest of its batch
(:meth:`~unsup.models.representation.contrastive.ContrastiveModel.view_matching`): held-out images have
no bank
row, and the bank starts as random vectors.

The bank has a row for every training example: ``examples`` is the training-set size, filled in
by ``unsup train`` (and stored with the run's config); the batches carry each example's index.

References:
    [1] Wu, Xiong, Yu, Lin. Unsupervised Feature Learning via Non-Parametric Instance
        Discrimination. CVPR 2018.
    [2] He, Fan, Wu, Xie, Girshick. Momentum Contrast for Unsupervised Visual Representation
        Learning. CVPR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unsup.data.base import Dataset, DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18
from unsup.models.representation.contrastive import ContrastiveConfig, ContrastiveModel, gather, info_nce


@dataclass
class InstanceDiscriminationConfig(ContrastiveConfig):
    """Hyper-parameters of :class:`InstanceDiscrimination`.

    Attributes:
        examples: rows of the memory bank, one per training example (0: set by ``unsup train``
            to the training-set size).
        negatives: bank rows drawn per step as negatives.
        bank_momentum: mu of the bank update.
    """

    augment: str = "moco-v1"
    head: str = "linear"
    temperature: float = 0.07
    examples: int = 0
    negatives: int = 4096
    bank_momentum: float = 0.5


@register("instance-discrimination", "instance discrimination: every image its own class, "
          "scored against a memory bank of all examples' embeddings",
          presets={"paper": {**RESNET18}})
class InstanceDiscrimination(ContrastiveModel):
    """Backbone + linear head trained to pick each example's bank row among sampled negatives.

    Raises:
        ConfigError: ``examples < 1`` (a model built without its training data), ``negatives <
            1`` or ``bank_momentum`` outside ``[0, 1)``.
    """

    @classmethod
    def fit_config(cls, config: InstanceDiscriminationConfig, data: Dataset) -> None:
        """A bank row per training example: ``examples`` left at 0 becomes the set's size."""
        if config.examples == 0:
            config.examples = len(data)

    Config = InstanceDiscriminationConfig

    def __init__(self, spec: DataSpec, config: InstanceDiscriminationConfig) -> None:
        super().__init__(spec, config)
        if config.examples < 1:
            raise ConfigError("instance-discrimination needs examples, the number of training "
                              "examples (the memory bank's rows); build it with unsup.create(name, "
                              "data=TRAIN_SET) or pass examples=N")
        if config.negatives < 1:
            raise ConfigError(f"negatives must be >= 1, got {config.negatives}")
        if not 0 <= config.bank_momentum < 1:
            raise ConfigError(f"bank_momentum must be in [0, 1), got {config.bank_momentum}")
        self.register_buffer("bank", F.normalize(torch.randn(config.examples, self.embedding_dim), dim=1))

    @torch.no_grad()
    def update_bank(self, index: torch.Tensor, v: torch.Tensor) -> None:
        """``V_i <- normalise(mu V_i + (1 - mu) v)`` for the rows ``index`` ``(B,)`` of ``v`` ``(B, D)``."""
        mu = self.config.bank_momentum
        self.bank[index] = F.normalize(mu * self.bank[index] + (1 - mu) * v, dim=1)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        images = self.images(batch["x"])
        if not (self.training and torch.is_grad_enabled()):
            return self.view_matching(images)  # held-out examples have no bank row
        if "index" not in batch:
            raise ConfigError("instance-discrimination trains on batches that carry each "
                              "example's index (batch['index'], as Dataset.batch gives them)")
        index = batch["index"].to(self.device).long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.config.examples):
            raise ConfigError(f"instance-discrimination has a bank of {self.config.examples} rows, "
                              f"got example indices in [{int(index.min())}, {int(index.max())}]: "
                              f"train it on the data it was built for")
        (view,) = self.views(images, 1)
        v = self.embed(view)  # (B, D)
        drawn = torch.randint(self.config.examples, (self.config.negatives,), device=v.device)
        logits, labels = info_nce(v, self.bank[index], self.bank[drawn], self.config.temperature)
        self.update_bank(gather(index, grad=False), gather(v, grad=False))
        return {"loss": F.cross_entropy(logits, labels),
                "accuracy": (logits.argmax(1) == labels).float().mean()}
