"""NADE: the Neural Autoregressive Distribution Estimator (Larochelle & Murray 2011).

An example is flattened to ``D`` discrete dimensions with ``L`` levels each and, in an ordering
``o`` (``o_t`` = the dimension at position ``t``; natural or a fixed random permutation),
factorised as ``p(x) = prod_t p(x_{o_t} | x_{o_<t})``. Every conditional is a one-hidden-layer
network, and all ``D`` networks share one input weight matrix ``W`` [1, 2]:

    a_1 = c,   a_{t+1} = a_t + W[:, o_t] e(x_{o_t}),   h_t = sigmoid(a_t)   (or ReLU),
    p(x_{o_t} | x_{o_<t}) = softmax(b_{o_t} + V_{o_t} h_t)[x_{o_t}].

Binary data (``L = 2``) is the original NADE [1]: ``e(x) = x`` (``W`` has ``D`` columns) and a
logistic output ``p(x_d = 1 | .) = sigmoid(b_d + V_d h)``, computed as the 2-way softmax of
``[0, b_d + V_d h]``. With ``L > 2`` levels ``e(x)`` is one-hot (``W`` has ``D L`` columns) and
the output a softmax over ``L`` logits ([2, Sec. 4] for categorical observations).

The weight sharing is what makes NADE cheap: ``a_t`` is ``c`` plus an exclusive cumulative sum
of the columns ``W[:, o_t'] e(x_{o_t'})``, ``t' < t``, so the likelihood of all ``D``
conditionals is one vectorised pass of ``O(D H)`` (``O(D H L)`` with the softmax), against
``O(D^2 H)`` for ``D`` separate networks. Sampling is sequential; the cached sampler
(``fast=True``) carries ``a_t`` from one position to the next (``O(D H)`` in all), the naive one
(``fast=False``) recomputes it from the whole prefix at every step (``O(D^2 H)``); both draw the
same random numbers (:mod:`unsup.models.autoregressive.sequence`), so they return the same samples.

A class-conditional NADE starts from ``a_1 = c + U y`` for the one-hot label ``y``, so every
conditional sees the label.

References:
    [1] Larochelle, Murray. The Neural Autoregressive Distribution Estimator. AISTATS 2011.
    [2] Uria, Cote, Gregor, Murray, Larochelle. Neural Autoregressive Distribution Estimation.
        JMLR 17(205), 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.sequence import SequenceModel, StepFn

ORDERINGS = ("natural", "random")
ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": F.relu}
MAX_OUTPUTS = 2**20  # D * L logits, as MADE


@dataclass
class NADEConfig:
    """Hyper-parameters of :class:`NADE`.

    Attributes:
        hidden: hidden units ``H`` shared by all conditionals.
        activation: ``"sigmoid"`` (the paper's) or ``"relu"``.
        ordering: ``"natural"`` (the flattened example) or ``"random"`` (a fixed permutation).
        order_seed: seed of the random ordering (independent of the run's seed).
        conditional: condition on the class label (needs labelled data).
    """

    hidden: int = 500
    activation: str = "sigmoid"
    ordering: str = "natural"
    order_seed: int = 0
    conditional: bool = False


@register(
    "nade",
    "NADE: weight-shared autoregressive network over any discrete data (O(DH) likelihood)",
    presets={
        # Larochelle & Murray 2011, binarised MNIST: 500 sigmoid hidden units, natural ordering.
        "paper": {"hidden": 500, "activation": "sigmoid", "ordering": "natural"},
    },
)
class NADE(SequenceModel):
    """NADE over data of any shape, flattened to ``D`` dimensions with ``L`` levels.

    Raises:
        ConfigError: continuous data, more than ``MAX_OUTPUTS`` logits (too many levels), an
            unknown activation or ordering, ``hidden < 1``, or ``conditional`` on unlabelled
            data.
    """

    Config = NADEConfig
    order: torch.Tensor

    def __init__(self, spec: DataSpec, config: NADEConfig | None = None) -> None:
        c = config or NADEConfig()
        super().__init__(spec, c)
        self.setup_sequence(c.conditional)
        if c.activation not in ACTIVATIONS:
            raise ConfigError(f"NADE activation must be one of {', '.join(ACTIVATIONS)}, "
                              f"got {c.activation!r}")
        if c.ordering not in ORDERINGS:
            raise ConfigError(f"NADE ordering must be one of {', '.join(ORDERINGS)}, "
                              f"got {c.ordering!r}")
        if c.hidden < 1:
            raise ConfigError(f"NADE hidden must be >= 1, got {c.hidden}")
        d, levels = self.length, self.levels
        if d * levels > MAX_OUTPUTS:
            raise ConfigError(f"NADE would need {d} x {levels} output logits (max {MAX_OUTPUTS});"
                              f" use fewer levels (--represent levels:K)")
        self.act = ACTIVATIONS[c.activation]
        self.binary = levels == 2
        per_dim = 1 if self.binary else levels  # input columns and output logits per dimension
        # Parameters are indexed by dimension d, as in the paper (W[:, d] is a filter of x_d).
        self.W = nn.Parameter(torch.randn(d, per_dim, c.hidden) / math.sqrt(d))  # (D, in, H)
        self.c = nn.Parameter(torch.zeros(c.hidden))
        self.V = nn.Parameter(torch.randn(d, per_dim, c.hidden) / math.sqrt(c.hidden))  # (D, out, H)
        self.b = nn.Parameter(torch.zeros(d, per_dim))
        if self.num_classes is not None:
            self.U = nn.Linear(self.num_classes, c.hidden, bias=False)
        if c.ordering == "natural":
            order = torch.arange(d)
        else:
            order = torch.randperm(d, generator=torch.Generator().manual_seed(c.order_seed))
        self.register_buffer("order", order)  # (D,): o_t, the dimension at position t

    # ------------------------------------------------------------------------ element order

    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Examples ``(B, *spec.shape)`` -> ``(B, D)`` in the model's ordering."""
        return x.reshape(len(x), -1)[:, self.order]

    def from_sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` in the model's ordering -> examples ``(B, *spec.shape)``."""
        x = torch.empty_like(seq)
        x[:, self.order] = seq
        return x.view(len(seq), *self.spec.shape)

    # ----------------------------------------------------------------------- the likelihood

    def start(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """``a_1 = c`` (``c + U y`` if conditional), ``(n, H)``."""
        if self.num_classes is None:
            return self.c.expand(n, -1)
        assert y is not None
        return self.c + self.U(F.one_hot(y, self.num_classes).to(self.c.dtype))

    def columns(self, seq: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``W[:, o_t] e(x_{o_t})`` for symbols ``seq`` ``(B, T)`` at ``positions`` ``(T,)``:
        ``(B, T, H)``. A column selection, not a product with the one-hot code, so it is exact."""
        w = self.W[self.order[positions]]  # (T, in, H)
        if self.binary:
            return seq[:, :, None].to(w.dtype) * w[:, 0]  # (B, T, H)
        index = torch.arange(len(positions), device=seq.device)[None, :]  # (1, T)
        return w[index, seq]  # (B, T, H): row e(x) of each position's W

    def output(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, L)`` of hidden states ``h`` ``(B, T, H)`` at ``positions``."""
        dims = self.order[positions]
        out = torch.einsum("bth,toh->bto", h, self.V[dims]) + self.b[dims]  # (B, T, 1 or L)
        return out

    def logits(self, seq: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, L)`` of ``p(x_{o_t} | x_{o_<t})`` for a prefix ``(B, T)``, all ``T``
        positions at once: ``a_t = c + sum_{t' < t} W[:, o_t'] e(x_{o_t'})`` is an exclusive
        cumulative sum."""
        b, t = seq.shape
        positions = torch.arange(t, device=seq.device)
        cumulative = self.columns(seq, positions).cumsum(1)  # (B, T, H)
        a = self.start(b, y)[:, None] + F.pad(cumulative[:, :-1], (0, 0, 1, 0))  # (B, T, H)
        return self.output(self.act(a), positions)

    # ---------------------------------------------------------------------------- sampling

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """Carry ``a_t`` between positions: one column added per step, ``O(H L)`` each."""
        state = {"a": self.start(n, y)}  # (n, H)

        def step(prev: torch.Tensor | None, t: int) -> torch.Tensor:
            if prev is not None:
                before = self.order.new_tensor([t - 1])
                state["a"] = state["a"] + self.columns(prev[:, None], before)[:, 0]  # (n, H)
            here = self.order.new_tensor([t])
            return self.output(self.act(state["a"])[:, None], here)[:, 0]  # (n, L)

        return step
