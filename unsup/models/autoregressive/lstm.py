"""Recurrent language model: an LSTM (or GRU / tanh RNN) over the elements of any discrete data.

The data is flattened to ``D`` discrete elements (text bytes or chars; images in raster order
with the channels of a pixel in turn -- the "RNN over pixels" baseline; :mod:`unsup.models.
sequence`) and

    p(x | y) = prod_t softmax(W_o z_t + b_o)[x_t],   z_t = RNN(z_{t-1}, e_t),

where ``e_t`` is the embedding of the previous element ``x_{t-1}`` (``e_0``: a start token, or
the class embedding of ``y`` for a conditional model) and ``z_t`` the top layer's output of a
``num_layers`` stacked LSTM [1] (``cell="gru"`` or ``"rnn"`` for a GRU or Elman tanh RNN). The
state ``z_t`` summarises the whole prefix: unlike a convolution or a windowed attention, an RNN's
context is unbounded, but it passes through one fixed-size vector and ``D`` sequential steps.

Sampling carries the recurrent state from step to step (``fast=True``: one cell update per
element); ``fast=False`` re-runs the RNN over the whole prefix for every element. Both draw
identically, so the same seed gives the same samples.

References:
    [1] Hochreiter, Schmidhuber. Long Short-Term Memory. Neural Computation 1997.
    [2] Graves. Generating Sequences With Recurrent Neural Networks. arXiv:1308.0850, 2013.
    [3] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.sequence import SequenceModel, ShiftedEmbedding, StepFn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class LSTMConfig:
    """Hyper-parameters of :class:`LSTM`.

    Attributes:
        hidden: units per recurrent layer.
        num_layers: stacked recurrent layers.
        embedding_dim: size of the input embedding of each element (default: ``hidden``).
        cell: ``lstm``, ``gru`` or ``rnn`` (tanh).
        dropout: dropout between recurrent layers (training only).
        conditional: condition on the class label (its embedding is the start token).
    """

    hidden: int = 256
    num_layers: int = 2
    embedding_dim: int | None = None
    cell: str = "lstm"
    dropout: float = 0.0
    conditional: bool = False


@register(
    "lstm",
    "LSTM/GRU/RNN language model over bytes/chars, or any discrete data (RNN over pixels)",
    presets={
        # Graves 2013, Sec. 3.2 (Hutter Prize Wikipedia): seven hidden layers of 700 LSTM cells
        # (the paper also feeds the input to every layer and every layer to the output; this
        # stack does not).
        "paper": {"hidden": 700, "num_layers": 7, "cell": "lstm"},
    },
)
class LSTM(SequenceModel):
    """Recurrent autoregressive model over discrete sequences, vectors or images.

    Raises:
        ConfigError: continuous data, ``conditional`` on unlabelled data, unknown cell, or
            invalid sizes.
    """

    Config = LSTMConfig

    def __init__(self, spec: DataSpec, config: LSTMConfig | None = None) -> None:
        c = config or LSTMConfig()
        super().__init__(spec, c)
        self.setup_sequence(c.conditional)
        if c.cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(CELLS)}, got {c.cell!r}")
        emb = c.embedding_dim or c.hidden
        if c.hidden < 1 or c.num_layers < 1 or emb < 1:
            raise ConfigError(f"LSTM hidden, num_layers and embedding_dim must be >= 1, got "
                              f"{c.hidden}, {c.num_layers}, {emb}")
        if not 0 <= c.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {c.dropout}")
        self.embed = ShiftedEmbedding(self.levels, emb, self.num_classes)
        for p in self.embed.parameters():  # small inputs keep the gates out of saturation
            nn.init.normal_(p, std=0.1)
        self.rnn = CELLS[c.cell](emb, c.hidden, c.num_layers, batch_first=True,
                                 dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.head = nn.Linear(c.hidden, self.num_logits)

    def features(self, e: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, L)`` of input embeddings ``e`` ``(B, T, E)`` (row ``t``: ``e[:, :t+1]``)."""
        z, _ = self.rnn(e)  # (B, T, hidden)
        return self.head(z)

    def logits(self, seq: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, L)`` of ``p(x_t | x_<t, y)`` for a sequence or prefix ``(B, T)``."""
        return self.features(self.embed(seq, y))

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """One cell update per call, carrying the recurrent state."""
        state = None

        def step(prev: torch.Tensor | None, t: int) -> torch.Tensor:
            nonlocal state
            e = self.embed.step(prev, n, y)[:, None]  # (n, 1, E)
            z, state = self.rnn(e, state)
            return self.head(z[:, 0])  # (n, L)

        return step
