"""Autoregressive models over the flattened elements of any discrete data.

A sequence model sees an example as ``D`` discrete elements in a fixed order -- a sequence
``(T,)`` as it is, a vector ``(D,)`` in index order, an image ``(C, H, W)`` in raster order with
the channels of a pixel in turn, ``x_1 = (0, 0, R), x_2 = (0, 0, G), ..`` (iGPT's order [1]) --
and factorises

    p(x | y) = prod_{t=1}^{D} p(x_t | x_<t, y),   p(x_t | x_<t, y) = softmax(logits_t)[x_t].

Its network reads the *shifted* sequence ``(s, x_1, .., x_{D-1})`` with a start token ``s`` (a
learned vector, or the class embedding of ``y`` for a conditional model), so the network only
has to be causal -- its output at ``t`` may see inputs ``<= t`` -- for ``logits_t`` to depend on
``x_<t`` alone, and ``x_1`` is predicted from the start token: the whole likelihood is one pass
(:class:`ShiftedEmbedding`).

:class:`SequenceModel` holds what such models share: flattening, ``log_prob``, and sampling one
element at a time. ``sample(fast=False)`` runs the network over the prefix for every new element
(``D`` passes); ``fast=True`` asks the model's :meth:`SequenceModel.incremental` for a stateful
step function that carries state between positions (a KV cache, an RNN state, convolution
queues). Both draw one :func:`~unsup.nn.layers.sample_categorical` per position in the same
order, so for the same torch seed they return the same samples (up to float rounding flipping
a draw that falls within ~1e-7 of a boundary; run the model in float64 to make that vanish).

References:
    [1] Chen, Radford, Child, Wu, Jun, Luan, Sutskever. Generative Pretraining from Pixels.
        ICML 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from unsup.errors import ConfigError
from unsup.models.autoregressive.raster import Choose
from unsup.models.base import LikelihoodModel
from unsup.nn.layers import categorical_log_prob, check_temperature, logit_width, sample_categorical

# (previous element (n,) or None at t = 0, position t) -> logits of element t, (n, L)
StepFn = Callable[[torch.Tensor | None, int], torch.Tensor]


class ShiftedEmbedding(nn.Module):
    """Embeddings of the shifted sequence: ``e_0 = s``, ``e_t = E[x_{t-1}]`` for ``t >= 1``.

    Args:
        levels: number of symbols ``L``.
        dim: embedding size.
        num_classes: if given, ``s = C[y]``, a learned embedding of the label ``y``; otherwise
            ``s`` is one learned vector.
    """

    def __init__(self, levels: int, dim: int, num_classes: int | None = None) -> None:
        super().__init__()
        self.tokens = nn.Embedding(levels, dim)
        if num_classes is None:
            self.start = nn.Parameter(torch.randn(dim))  # N(0, 1), as nn.Embedding's rows
        else:
            self.classes = nn.Embedding(num_classes, dim)
        self.conditional = num_classes is not None

    def first(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """The start token ``s`` for ``n`` sequences, ``(n, dim)``."""
        if self.conditional:
            assert y is not None
            return self.classes(y)
        return self.start.expand(n, -1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T)`` symbols -> ``(B, T, dim)``: ``[s, E[x_0], .., E[x_{T-2}]]``."""
        start = self.first(len(x), y)[:, None]  # (B, 1, dim)
        return torch.cat([start, self.tokens(x[:, :-1])], dim=1)

    def step(self, prev: torch.Tensor | None, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """The input at one position: ``s`` (``prev`` None) or ``E[prev]``, ``(n, dim)``."""
        return self.first(n, y) if prev is None else self.tokens(prev)


class SequenceModel(LikelihoodModel):
    """Base class of autoregressive models over flattened discrete data (module docstring).

    Subclasses call :meth:`setup_sequence` in ``__init__`` and implement :meth:`logits` and
    :meth:`incremental`; their output layer has ``num_logits`` units per element.

    Attributes:
        levels: symbols per element ``L``.
        num_logits: logits per element (``L``; 1 for binary data, :func:`~unsup.nn.layers.logit_width`).
        length: elements per example ``D``.
    """

    supports_fast_sampling: ClassVar[bool] = True
    completes: ClassVar[bool] = True
    codes: ClassVar[bool] = True
    levels: int
    length: int

    def setup_sequence(self, conditional: bool) -> None:
        """Validate the data (discrete, labelled if ``conditional``) and set ``levels``,
        ``length`` and ``num_classes``."""
        self.require(levels=True, kinds=("image", "vector", "sequence"), labels=conditional)
        s = self.spec
        if s.kind == "image" and len(s.shape) != 3 or s.kind != "image" and len(s.shape) != 1:
            raise ConfigError(f"{type(self).__name__} expects images (C, H, W), vectors (D,) or "
                              f"sequences (T,), got {s.kind} data of shape {s.shape}")
        assert s.levels is not None
        self.levels, self.length = s.levels, s.dims
        self.num_logits = logit_width(s.levels)  # logits per element: 1 for binary data
        self.num_classes = s.num_classes if conditional else None

    # ------------------------------------------------------------------------ element order

    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Examples ``(B, *spec.shape)`` -> ``(B, D)`` in the model's order."""
        if self.spec.kind == "image":
            return x.permute(0, 2, 3, 1).reshape(len(x), -1)  # (B, H*W*C): channels innermost
        return x.reshape(len(x), -1)

    def from_sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` in the model's order -> examples ``(B, *spec.shape)``."""
        if self.spec.kind == "image":
            c, h, w = self.spec.shape
            return seq.view(len(seq), h, w, c).permute(0, 3, 1, 2).contiguous()
        return seq.view(len(seq), *self.spec.shape)

    def to_walk(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`walk`'s layout is the model's order: :meth:`to_sequence`."""
        return self.to_sequence(x)

    def from_walk(self, z: torch.Tensor) -> torch.Tensor:
        return self.from_sequence(z)

    # ----------------------------------------------------------------------- the likelihood

    def logits(self, seq: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, L)`` of ``p(x_t | x_<t, y)`` for a sequence (or prefix) ``(B, T)``,
        ``T <= D``; row ``t`` must not depend on ``seq[:, t:]``."""
        raise NotImplementedError

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """A stateful ``(prev, t) -> logits (n, L)`` equal to ``logits(seq, y)[:, t]`` when
        called for ``t = 0, 1, ..`` in turn with ``prev = seq[:, t-1]`` (None at ``t = 0``)."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``; ``y`` is ignored if unconditional."""
        self.check_input(x)
        seq = self.to_sequence(x.to(self.device).long())
        return categorical_log_prob(self.logits(seq, self.labels(y, len(x))), seq)

    # ------------------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               fast: bool = True) -> torch.Tensor:
        """Ancestral samples, one element at a time, shape ``(n, *spec.shape)``.

        Args:
            n: number of samples.
            y: labels ``(n,)`` of a conditional model; default ``arange(n) % num_classes``.
            temperature: divides every conditional's logits (0: argmax).
            fast: carry the model's state from one element to the next (see
                :meth:`incremental`); False runs the network over the whole prefix for every
                element. Same samples for the same seed.

        Raises:
            ConfigError: ``y`` given to an unconditional model, invalid labels or temperature.
        """
        check_temperature(temperature)
        y = self.sample_labels(y, n)
        seq = torch.zeros(n, self.length, dtype=torch.long, device=self.device)
        known = torch.zeros_like(seq, dtype=torch.bool)
        return self.from_sequence(self._fill(seq, known, y, temperature, fast))

    @torch.no_grad()
    def complete(self, x: torch.Tensor, known: torch.Tensor, *, temperature: float = 1.0,
                 y: torch.Tensor | None = None, fast: bool = True) -> torch.Tensor:
        """Fill in the unknown elements of ``x`` in the model's order, keeping the known ones.

        Args:
            x: examples ``(n, *spec.shape)``; values where ``known`` is False are ignored.
            known: boolean mask broadcastable to ``x``; True keeps the value of ``x``.
            temperature: as in :meth:`sample`.
            y: labels ``(n,)``, required by a conditional model.
            fast: as in :meth:`sample`.

        Raises:
            ConfigError: invalid ``x``, mask, labels or temperature.
        """
        check_temperature(temperature)
        self.check_input(x)
        try:
            known = torch.as_tensor(known, dtype=torch.bool).expand_as(x)
        except RuntimeError as e:
            raise ConfigError(f"known mask of shape {tuple(known.shape)} does not broadcast to "
                              f"examples of shape {tuple(x.shape)}") from e
        y = self.labels(y, len(x))
        seq = self.to_sequence(x.to(self.device).long())
        known = self.to_sequence(known.to(self.device))
        seq = torch.where(known, seq, 0)
        return self.from_sequence(self._fill(seq, known, y, temperature, fast))

    def _fill(self, seq: torch.Tensor, known: torch.Tensor, y: torch.Tensor | None,
              temperature: float, fast: bool) -> torch.Tensor:
        """Sample every element where not ``known``, keep ``seq`` where it is."""
        def choose(logits: torch.Tensor, where: tuple) -> torch.Tensor:
            return torch.where(known[where], seq[where], sample_categorical(logits, temperature))

        return self.walk(seq, y, choose, fast)

    def walk(self, seq: torch.Tensor, y: torch.Tensor | None, choose: Choose,
             fast: bool = True) -> torch.Tensor:
        """The autoregressive loop over ``seq`` ``(n, D)``: for ``t = 0, 1, ..``, ``seq[where] =
        choose(logits, where)`` with ``logits`` ``(n, L)`` of ``p(x_t | x_<t)`` and ``where`` the
        index of element ``t``; as :meth:`RasterSampling.walk
        <unsup.models.autoregressive.raster.RasterSampling.walk>`."""
        step = self.incremental(len(seq), y) if fast else None
        for t in range(self.length):
            if step is not None:
                logits = step(seq[:, t - 1] if t else None, t)
            else:  # seq[:, t] is a placeholder the causal network ignores
                logits = self.logits(seq[:, :t + 1], y)[:, t]
            where = (slice(None), t)
            seq[where] = choose(logits, where)
        return seq
