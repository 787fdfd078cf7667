"""Supervised training of the shared backbone: the upper reference every probe table needs.

The network is the representation methods' encoder followed by one linear layer, trained with
cross-entropy on the labels,

    L = -(1/B) sum_i log softmax(W f(x_i) + b)[y_i],

so its frozen features, probed like any method's, show what the same backbone reaches when it is
*given* the labels. ``unsup probe --finetune`` trains this same classifier from scratch on a label
subset (the baseline that label-efficient pretraining must beat).

The checkpoint kept is the one of lowest validation ``error``: its own classification error on the
whole validation set, the usual early stopping of supervised training (and what ``unsup probe
--finetune`` keeps), rather than the self-supervised methods' kNN probe on a validation slice;
``knn_accuracy`` is still logged, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import Dataset, DataSpec
from unsup.models import register
from unsup.models.base import Batch, Selection, check_labels
from unsup.models.representation.backbones import RESNET18, BackboneConfig
from unsup.models.representation.base import RepresentationModel


@dataclass
class SupervisedConfig(BackboneConfig):
    """Hyper-parameters of :class:`Supervised`: the backbone only."""


@register("supervised", "the shared backbone + a linear classifier trained on the labels "
          "(the supervised reference of the probe tables)",
          presets={"paper": RESNET18})
class Supervised(RepresentationModel):
    """Backbone + linear classifier with cross-entropy.

    Raises:
        ConfigError: unlabelled data.
    """

    Config = SupervisedConfig

    def __init__(self, spec: DataSpec, config: SupervisedConfig) -> None:
        super().__init__(spec, config)
        self.require(labels=True)
        assert spec.num_classes is not None
        self.head = nn.Linear(self.feature_dim, spec.num_classes)

    def checkpoint_selection(self, val: Dataset | None) -> Selection:
        """The lowest validation ``error`` (the data are labelled: the model requires it)."""
        return Selection("error")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of raw examples, ``(B, classes)``."""
        return self.head(self.encode(x))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        logits = self.logits(x)  # checks x first: a bad batch is named before missing labels
        y = check_labels(batch.get("y"), self.head.out_features, len(x), "supervised").to(self.device)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "error": (logits.argmax(1) != y).float().mean()}
