"""ByteNet decoder: dilated causal 1-D convolutions with residual blocks (Kalchbrenner et al. 2016).

The data is flattened to ``D`` discrete elements (:mod:`unsup.models.autoregressive.sequence`; bytes or chars
of text above all) and

    p(x | y) = prod_t softmax(logits_t)[x_t],   logits_t = f(x_{t-R} .. x_{t-1}, y),

with a receptive field of ``R`` elements. The network reads the shifted sequence ``(s, x_1, ..)``
embedded in ``2d`` channels (start token ``s``; with class conditioning the label's embedding is
``s`` and is also added at every position, since ``s`` leaves the receptive field after ``R``
steps) and applies ``num_sets x blocks_per_set`` residual blocks [1, Fig. 3 left]:

    h <- h + W_3 ReLU(LN(CausalConv_{k, r}(ReLU(LN(W_1 ReLU(LN(h))))))),

``W_1``: ``1 x 1`` from ``2d`` to ``d``; the masked (causal) ``1 x k`` convolution with
dilation ``r`` on ``d`` channels; ``W_3``: ``1 x 1`` back to ``2d`` (each after a layer norm and
a ReLU). Dilations double within a set, ``r = 1, 2, .., 2^(blocks_per_set - 1)``, and the sets
repeat, so ``R = 1 + (k - 1) num_sets (2^blocks_per_set - 1)``
(:attr:`ByteNet.receptive_field`). Output: ``logits = W_o ReLU(LN(h))``.

The paper's character-level language model [1, Sec. 6] used residual blocks with multiplicative
units; this module keeps the simpler ReLU block of [1, Fig. 3 left] (used by its translation
model), and has no encoder: it is the decoder on its own, a language model.

Sampling. ``fast=True`` keeps, for every dilated convolution, a queue of its last ``(k - 1) r``
inputs (:meth:`unsup.nn.layers.CausalConv1d.step`), so a new element costs one time step of
every block; ``fast=False`` re-runs the network over the whole prefix for every element. Both
draw identically, so the same seed gives the same samples.

References:
    [1] Kalchbrenner, Espeholt, Simonyan, van den Oord, Graves, Kavukcuoglu. Neural Machine
        Translation in Linear Time. arXiv:1610.10099, 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.sequence import SequenceModel, ShiftedEmbedding, StepFn
from unsup.nn.layers import CausalConv1d


@dataclass
class ByteNetConfig:
    """Hyper-parameters of :class:`ByteNet`.

    Attributes:
        hidden: ``d``: channels inside a residual block; ``2d`` flow between blocks.
        num_sets: repetitions of the dilation cycle.
        blocks_per_set: residual blocks per set, with dilations 1, 2, .., 2^(blocks_per_set-1).
        kernel_size: ``k``, taps of the masked dilated convolutions (>= 2).
        conditional: condition on the class label (start token and a bias at every position).
    """

    hidden: int = 128
    num_sets: int = 2
    blocks_per_set: int = 5
    kernel_size: int = 3
    conditional: bool = False


class ResidualBlock(nn.Module):
    """ByteNet's ReLU residual block on ``(B, T, 2d)`` features, with a one-step form."""

    def __init__(self, d: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(2 * d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.reduce = nn.Linear(2 * d, d)  # 1 x 1 convolutions act on each position alone
        self.conv = CausalConv1d(d, d, kernel_size, dilation)
        self.expand = nn.Linear(d, 2 * d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.reduce(F.relu(self.ln1(h)))  # (B, T, d)
        a = self.conv(F.relu(self.ln2(a)).transpose(1, 2)).transpose(1, 2)  # (B, T, d)
        return h + self.expand(F.relu(self.ln3(a)))

    def step(self, h: torch.Tensor, queue: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step ``(n, 2d) -> (n, 2d)``, with the convolution's queue."""
        a = self.reduce(F.relu(self.ln1(h)))  # (n, d)
        a, queue = self.conv.step(F.relu(self.ln2(a)), queue)
        return h + self.expand(F.relu(self.ln3(a))), queue


@register(
    "bytenet",
    "ByteNet decoder: dilated causal 1-D convolutions over bytes/chars or any discrete data",
    presets={
        # Kalchbrenner et al. 2016, Sec. 6 (Hutter Prize Wikipedia, 1.31 bits/char): 30 residual
        # blocks in six sets of five (dilations 1, 2, 4, 8, 16), masked kernel size 3, d = 512
        # hidden units. (The paper's blocks use multiplicative units; ours are ReLU blocks.)
        "paper": {"hidden": 512, "num_sets": 6, "blocks_per_set": 5, "kernel_size": 3},
    },
)
class ByteNet(SequenceModel):
    """ByteNet decoder over discrete sequences, vectors or images.

    Attributes:
        receptive_field: ``R``: the elements ``x_{t-R} .. x_{t-1}`` that ``logits_t`` sees.
        dilations: the dilation of every block, in order.

    Raises:
        ConfigError: continuous data, ``conditional`` on unlabelled data, or invalid sizes.
    """

    Config = ByteNetConfig

    def __init__(self, spec: DataSpec, config: ByteNetConfig | None = None) -> None:
        c = config or ByteNetConfig()
        super().__init__(spec, c)
        self.setup_sequence(c.conditional)
        for name in ("hidden", "num_sets", "blocks_per_set"):
            if getattr(c, name) < 1:
                raise ConfigError(f"ByteNet {name} must be >= 1, got {getattr(c, name)}")
        if c.kernel_size < 2:
            raise ConfigError(f"ByteNet kernel_size must be >= 2, got {c.kernel_size}")
        d = c.hidden
        self.dilations = [2**i for _ in range(c.num_sets) for i in range(c.blocks_per_set)]
        self.receptive_field = 1 + (c.kernel_size - 1) * sum(self.dilations)
        self.embed = ShiftedEmbedding(self.levels, 2 * d, self.num_classes)
        if self.num_classes is not None:
            self.label_bias = nn.Embedding(self.num_classes, 2 * d)
        self.blocks = nn.ModuleList(ResidualBlock(d, c.kernel_size, r) for r in self.dilations)
        self.ln_out = nn.LayerNorm(2 * d)
        self.head = nn.Linear(2 * d, self.num_logits)

    def inputs(self, seq: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Shifted input embeddings ``(B, T, 2d)`` of ``(B, T)`` symbols, with the label bias."""
        e = self.embed(seq, y)
        return e if self.num_classes is None else e + self.label_bias(y)[:, None]

    def features(self, e: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, L)`` of input embeddings ``e`` ``(B, T, 2d)``; row ``t`` depends on
        ``e[:, t-R+1 : t+1]`` only."""
        h = e
        for block in self.blocks:
            h = block(h)
        return self.head(F.relu(self.ln_out(h)))

    def logits(self, seq: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, L)`` of ``p(x_t | x_<t, y)`` for a sequence or prefix ``(B, T)``."""
        return self.features(self.inputs(seq, y))

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """One time step per call, with a queue of past inputs per dilated convolution."""
        queues: list[torch.Tensor | None] = [None] * len(self.blocks)
        bias = None if self.num_classes is None else self.label_bias(y)  # (n, 2d)

        def step(prev: torch.Tensor | None, t: int) -> torch.Tensor:
            h = self.embed.step(prev, n, y)  # (n, 2d)
            if bias is not None:
                h = h + bias
            for i, block in enumerate(self.blocks):
                h, queues[i] = block.step(h, queues[i])
            return self.head(F.relu(self.ln_out(h)))  # (n, L)

        return step
