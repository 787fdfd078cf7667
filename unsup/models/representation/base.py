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

Which checkpoint a run keeps (``best.safetensors``) is chosen by a measure of the representation,
not by the pretext loss (a contrastive loss against a moving queue or a memory bank says little
about the features, and can bottom out before they stop improving: step 500 of 693 in a SimCLR
run whose final weights probed better). When the validation
set is labelled, every validation also runs a cheap kNN probe, :func:`knn_accuracy`, on a fixed
labelled slice of it -- the first ``min(2000, n)`` validation examples, their :meth:`encode`
features (eval mode, no gradients) L2-normalised, each example classified by the majority label of
its ``k = 20`` nearest others by cosine similarity (leave-one-out) -- logged as the validation
metric ``knn_accuracy``, and the checkpoint with the highest one is kept. Without labels there is
nothing to measure the features by: ``best`` is then the last checkpoint. The rule is the mixin
:class:`KnnSelection`, which CPC on audio (not an image method) uses too. The supervised reference
(:class:`~unsup.models.representation.supervised.Supervised`) keeps its checkpoint of lowest
validation error instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import Dataset, DataSpec
from unsup.models.base import Model, Selection
from unsup.models.representation.backbones import Backbone

KNN_EXAMPLES = 2000  # the labelled validation slice of the kNN probe that selects checkpoints
KNN_K = 20


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = KNN_K,
                 chunk: int = 512) -> float:
    """Leave-one-out cosine k-nearest-neighbour accuracy of labelled features.

    Each of the ``m`` examples is classified by the majority label of the ``min(k, m - 1)`` other
    examples most similar to it by cosine similarity (features L2-normalised, computed in float64);
    a tie between labels goes to the smallest label (as scikit-learn's uniform-weight vote). The
    result is the share of examples whose vote is their own label.

    Args:
        features: ``(m, D)`` features (flattened if more dimensions), ``m >= 2``.
        labels: ``(m,)`` integer labels >= 0.
        k: neighbours that vote.
        chunk: queries per similarity block, which bounds memory to ``chunk x m``.

    Raises:
        ValueError: fewer than two examples, or labels that do not match the features.
    """
    m = len(features)
    if m < 2 or labels.shape != (m,):
        raise ValueError(f"knn_accuracy needs >= 2 examples with one label each, got {m} examples "
                         f"and labels of shape {tuple(labels.shape)}")
    f = F.normalize(features.detach().flatten(1).double().cpu(), dim=1)
    y = labels.detach().long().cpu()
    k = min(k, m - 1)
    classes = int(y.max()) + 1
    correct = 0
    for start in range(0, m, chunk):
        sim = f[start:start + chunk] @ f.T  # (c, m)
        rows = torch.arange(len(sim))
        sim[rows, rows + start] = -torch.inf  # leave the query itself out
        neighbours = sim.topk(k, dim=1).indices  # (c, k)
        votes = F.one_hot(y[neighbours], classes).sum(1)  # (c, classes)
        correct += int((votes.argmax(1) == y[start:start + chunk]).sum())  # first max: smallest label
    return correct / m


def labelled_slice(val: Dataset, n: int = KNN_EXAMPLES) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first ``min(n, len(val))`` validation examples and their labels, the same at every call
    (a dynamically binarised split is drawn with seed 0); ``None`` when ``val`` is unlabelled or
    holds fewer than two examples."""
    if len(val) < 2:
        return None
    batch = val.batch(torch.arange(min(n, len(val))), generator=torch.Generator().manual_seed(0))
    if batch.get("y") is None:
        return None
    return batch["x"], batch["y"]


class KnnSelection:
    """Mixin of a :class:`~unsup.models.base.Model` with ``encode(x) -> (B, D)``: its checkpoints
    are selected by the kNN probe of the module docstring (highest validation ``knn_accuracy``;
    the last checkpoint on unlabelled data). Put it before ``Model`` among the bases.

    Attributes:
        knn_examples: size of the labelled validation slice.
        knn_k: neighbours that vote.
    """

    knn_examples: ClassVar[int] = KNN_EXAMPLES
    knn_k: ClassVar[int] = KNN_K

    def checkpoint_selection(self, val: Dataset | None) -> Selection:
        """The highest validation ``knn_accuracy`` when the validation set is labelled; else the
        last checkpoint (there is nothing to judge the features by)."""
        if val is None or labelled_slice(val, 2) is None:
            return Selection(None, reason="no labelled validation examples to probe the features with")
        return Selection("knn_accuracy", higher_is_better=True)

    def validation_scores(self, val: Dataset, batch_size: int) -> dict[str, float]:
        """``knn_accuracy``: :func:`knn_accuracy` of the ``encode`` features of
        :func:`labelled_slice` (eval mode, no gradients); nothing for unlabelled data."""
        data = labelled_slice(val, self.knn_examples)
        if data is None:
            return {}
        x, y = data
        model: Any = self
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                h = torch.cat([model.encode(xb).flatten(1).float().cpu()
                               for xb in x.split(max(batch_size, 1))])
        finally:
            model.train(was_training)
        return {"knn_accuracy": knn_accuracy(h, y, self.knn_k)}


class RepresentationModel(KnnSelection, Model):
    """Base class: an image encoder ``self.encoder`` trained by a subclass's :meth:`loss`, its
    checkpoints selected by a kNN probe of :meth:`encode` (:class:`KnnSelection`).

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
