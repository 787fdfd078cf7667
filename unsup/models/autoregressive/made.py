"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al. 2015).

MADE turns an MLP into an autoregressive density model. An example is flattened to ``D`` discrete
dimensions with ``L`` levels each, and for an ordering ``pi`` (``pi(d)`` = position of dimension
``d``, from 1 to ``D``)

    p(x) = prod_d p(x_d | x_{d'} : pi(d') < pi(d)),   p(x_d | .) = softmax(logits_d),

where all ``D x L`` logits come from one masked forward pass [1]. Each unit gets a degree ``m``:
input units of dimension ``d`` have ``m = pi(d)``; hidden units draw ``m`` uniformly from
``[min m of the previous layer, D - 1]``; output units of dimension ``d`` have ``m = pi(d)``. A
hidden weight from unit ``i`` to unit ``j`` is kept iff ``m_j >= m_i``, an output weight iff
``m_j > m_i``. The product of the masks is then strictly triangular in the ordering, so the logits
of ``x_d`` depend only on dimensions earlier in ``pi`` and the product of the conditionals is a
normalised distribution.

Inputs are one-hot (``D L`` input units, each level of a dimension with that dimension's degree)
or the scaled value ``2x/(L-1) - 1`` (``D`` units; the default for binary data, where it is the
same model at half the first layer). Binary data get one output logit ``l_d`` per dimension, the
two-way logits ``(0, l_d)``: ``p(x_d = 1 | .) = sigmoid(l_d)``
(:func:`~unsup.nn.layers.logit_width`). A class-conditional MADE adds a linear map
of the one-hot label, unmasked, to the first hidden layer and to the output logits (without the
latter the first dimension in the ordering could not depend on the label).

With no hidden layer (``hidden = []``; preset ``fvsbn``) the one masked layer connects every input
of an earlier dimension straight to the logits: on binary data this is the fully visible sigmoid
belief net [3], one logistic regression per dimension on the dimensions before it,

    p(x_d = 1 | x_<d) = sigmoid(b_d + sum_{d' < d} W_{d d'} (2 x_{d'} - 1)),

``D (D - 1) / 2`` weights in use (the inputs' scaling ``2x - 1`` only moves the biases).

Order- and connectivity-agnostic training [1, Sec. 4]: with ``num_masks = M > 1`` the model
holds ``M`` orderings (``ordering = "random"``; all natural otherwise) and hidden degree
assignments, drawn from generators seeded with ``mask_seed + k`` and stored as buffers so a
checkpoint restores them. Each training step draws one of the ``M`` masks with torch's global RNG
and minimises its negative log-likelihood. At evaluation :meth:`MADE.log_prob` is the log of the
*average probability* over the ``M`` masks,

    log p(x) = log (1/M) sum_k p_k(x),

the density of the uniform mixture of the ``M`` autoregressive models that share weights. It is
exactly normalised (each ``p_k`` is), at least as good as the average member by Jensen, and
costs ``M`` forward passes. :meth:`MADE.sample` draws from the same mixture: a member uniformly
at random per sample, then ``D`` sequential passes in that member's ordering (:meth:`MADE.walk`,
the loop that also codes data losslessly with a single-mask MADE, :mod:`unsup.codec`).

References:
    [1] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for Distribution
        Estimation. ICML 2015.
    [2] Uria, Murray, Larochelle. A Deep and Tractable Density Estimator (order-agnostic
        training of NADE). ICML 2014.
    [3] Frey. Graphical Models for Machine Learning and Digital Communication. MIT Press 1998
        (the fully visible sigmoid belief network).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.raster import Choose
from unsup.models.base import Batch, LikelihoodModel
from unsup.nn.layers import (
    MaskedLinear,
    categorical_log_prob,
    check_temperature,
    logit_width,
    sample_categorical,
)

ORDERINGS = ("natural", "random")
ENCODINGS = ("auto", "onehot", "scaled")
MAX_OUTPUTS = 2**20  # D * L logits
SMALL_OUTPUT = 4096  # binary dimensions up to which the defaults are hidden [8000], random order


@dataclass
class MADEConfig:
    """Hyper-parameters of :class:`MADE`.

    Attributes:
        hidden: widths of the masked hidden layers (ReLU); may be empty. Default: one layer of
            8000 for binary data of at most 4096 dimensions (on binarised Fashion-MNIST the best
            test NLL of four sizes at 5 CPU-minutes, benchmarks/defaults.py), else 512 512.
        ordering: natural (raster order of the flattened example) or random. Default: random
            for binary data of at most 4096 dimensions (on binarised Fashion-MNIST at 5 CPU-minutes,
            104.00 test nats against 107.06 for the natural order, benchmarks/peers), else natural.
        num_masks: number of orderings/connectivities trained together (1: a single MADE).
        input_encoding: ``"onehot"`` (``D*L`` inputs), ``"scaled"`` (``D`` inputs in [-1, 1]) or
            ``"auto"``: scaled for binary data (where the one-hot code ``(1 - x, x)`` feeds the first
            layer the same affine function of ``x`` at twice the cost), one-hot otherwise.
        conditional: condition on the class label (needs labelled data).
        mask_seed: seed of the orderings and hidden degrees (independent of the run's seed).
    """

    hidden: list[int] | None = None
    ordering: str | None = None
    num_masks: int = 1
    input_encoding: str = "auto"
    conditional: bool = False
    mask_seed: int = 0


@register(
    "made",
    "MADE: masked MLP autoregressive model over any discrete data (orderings, mask ensembles; "
    "no hidden layer: the fully visible sigmoid belief net, preset fvsbn)",
    presets={
        # CS294-158 HW1: two hidden layers of 512 units, natural ordering, one mask.
        "course": {"hidden": [512, 512], "ordering": "natural", "num_masks": 1},
        # Germain et al. 2015, binarised MNIST: 2 x 8000 hidden units, 32 order/connectivity masks.
        "paper": {"hidden": [8000, 8000], "ordering": "random", "num_masks": 32},
        # The fully visible sigmoid belief net (Frey 1998): no hidden layer, raster order.
        "fvsbn": {"hidden": [], "ordering": "natural", "num_masks": 1},
    },
)
class MADE(LikelihoodModel):
    """MADE over data of any shape, flattened to ``D`` dimensions with ``L`` levels.

    It codes data losslessly (``codes``, :mod:`unsup.codec`) in its ordering when it holds a
    single mask; a mixture of several is refused (:meth:`to_walk`).

    Raises:
        ConfigError: continuous data, more than ``MAX_OUTPUTS`` logits (too many levels),
            unknown ordering or encoding, ``num_masks < 1``, a hidden size < 1, or
            ``conditional`` on unlabelled data.
    """

    Config = MADEConfig
    codes = True

    def __init__(self, spec: DataSpec, config: MADEConfig | None = None) -> None:
        config = config or MADEConfig()
        if spec.levels is not None:  # the defaults for this data
            binary_and_small = spec.levels == 2 and spec.dims <= SMALL_OUTPUT
            if config.hidden is None:
                config = replace(config, hidden=[8000] if binary_and_small else [512, 512])
            if config.ordering is None:
                config = replace(config, ordering="random" if binary_and_small else "natural")
        super().__init__(spec, config)
        self.require(levels=True, labels=config.conditional)
        if config.ordering not in ORDERINGS:
            raise ConfigError(f"MADE ordering must be one of {', '.join(ORDERINGS)}, "
                              f"got {config.ordering!r}")
        if config.input_encoding not in ENCODINGS:
            raise ConfigError(f"MADE input_encoding must be one of {', '.join(ENCODINGS)}, "
                              f"got {config.input_encoding!r}")
        if config.num_masks < 1:
            raise ConfigError(f"num_masks must be >= 1, got {config.num_masks}")
        if not isinstance(config.hidden, (list, tuple)) or any(
                not isinstance(h, int) or h < 1 for h in config.hidden):
            raise ConfigError(f"MADE hidden must be a list of positive layer widths such as "
                              f"[512, 512], got {config.hidden!r}")
        assert spec.levels is not None
        self.d, self.levels = spec.dims, spec.levels
        if self.d * self.levels > MAX_OUTPUTS:
            raise ConfigError(f"MADE would need {self.d} x {self.levels} output logits (max "
                              f"{MAX_OUTPUTS}); use fewer levels (--represent levels:K)")
        self.num_logits = logit_width(self.levels)  # per dimension: 1 for binary data
        self.num_classes = spec.num_classes if config.conditional else None
        self.onehot = config.input_encoding == "onehot" or (
            config.input_encoding == "auto" and self.levels > 2)
        per_dim_in = self.levels if self.onehot else 1
        sizes = [self.d * per_dim_in, *map(int, config.hidden), self.d * self.num_logits]
        # Masks are rebuilt from the saved degrees, so they stay out of checkpoints.
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, persistent_mask=False)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        if self.num_classes is not None:
            self.label_out = nn.Linear(self.num_classes, sizes[-1], bias=False)
            self.label_hidden = (nn.Linear(self.num_classes, sizes[1], bias=False)
                                 if len(sizes) > 2 else None)

        # Orderings and hidden degrees of each mask, drawn once and kept as buffers.
        orders, degrees = self._draw_degrees()
        self.register_buffer("orderings", orders)  # (M, D): position pi(d) in 1..D
        for i, m in enumerate(degrees):
            self.register_buffer(f"hidden_degrees_{i}", m)  # (M, H_i)
        # The layers' own mask buffers hold mask 0, the only one when num_masks == 1; with
        # several masks each forward pass builds its masks from the degrees instead.
        self._set_layer_masks()
        self.register_load_state_dict_post_hook(_rebuild_masks)

    # ------------------------------------------------------------------------------- masks

    def _draw_degrees(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        c = self.config
        orders, hidden = [], [[] for _ in c.hidden]
        for k in range(c.num_masks):
            g = torch.Generator().manual_seed(c.mask_seed + k)
            if c.ordering == "natural":
                order = torch.arange(1, self.d + 1)
            else:
                order = torch.randperm(self.d, generator=g) + 1
            orders.append(order)
            for i, m in enumerate(draw_hidden_degrees(self.d, c.hidden, g)):
                hidden[i].append(m)
        return torch.stack(orders), [torch.stack(m) for m in hidden]

    def degrees(self, k: int) -> list[torch.Tensor]:
        """Degrees of the input, hidden and output units of mask ``k`` (input first)."""
        order = self.orderings[k]  # (D,)
        rep = self.levels if self.onehot else 1
        m_in = order.repeat_interleave(rep)  # (D*rep,), dimension-major like the one-hot input
        hidden = [getattr(self, f"hidden_degrees_{i}")[k] for i in range(len(self.layers) - 1)]
        m_out = order.repeat_interleave(self.num_logits)  # (D*L,), or (D,) for binary data
        return [m_in, *hidden, m_out]

    @torch.no_grad()
    def _set_layer_masks(self) -> None:
        for layer, mask in zip(self.layers, self.masks(0), strict=True):
            layer.set_mask(mask)

    def masks(self, k: int) -> list[torch.Tensor]:
        """0/1 masks ``(out, in)`` of every layer for mask ``k``."""
        return degree_masks(self.degrees(k))

    # ----------------------------------------------------------------------------- forward

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Input features of a long batch ``(B, *shape)``: ``(B, D*L)`` one-hot or ``(B, D)``."""
        flat = x.reshape(len(x), self.d).long()  # (B, D)
        if self.onehot:
            return F.one_hot(flat, self.levels).float().reshape(len(x), -1)  # (B, D*L)
        return 2.0 * flat.float() / (self.levels - 1) - 1.0

    def logits_from_features(self, h: torch.Tensor, y: torch.Tensor | None, k: int) -> torch.Tensor:
        """Logits ``(B, D, L)`` of input features ``h`` (see :meth:`encode`) under mask ``k``."""
        return self._forward(h, y, self._layer_masks(k))

    def _layer_masks(self, k: int) -> list[torch.Tensor | None]:
        # One mask: the layers' buffers already hold it. Several: build mask k from its degrees.
        return self.masks(k) if self.config.num_masks > 1 else [None] * len(self.layers)

    def _forward(self, h: torch.Tensor, y: torch.Tensor | None,
                 masks: list[torch.Tensor | None]) -> torch.Tensor:
        onehot_y = None
        if self.num_classes is not None:
            assert y is not None
            onehot_y = F.one_hot(y, self.num_classes).float()  # (B, num_classes)
        for i, layer in enumerate(self.layers):
            h = layer(h, masks[i])
            if onehot_y is not None and i == 0 and self.label_hidden is not None:
                h = h + self.label_hidden(onehot_y)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        if onehot_y is not None:
            h = h + self.label_out(onehot_y)
        return h.view(len(h), self.d, self.num_logits)  # (B, D, L), (B, D, 1) for binary data

    def _prepare(
        self, x: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        self.check_input(x)
        x = x.to(self.device)
        return x, self.encode(x), self.labels(y, len(x))

    def log_prob_mask(self, x: torch.Tensor, y: torch.Tensor | None, k: int) -> torch.Tensor:
        """log p_k(x) under the single mask ``k``, shape ``(B,)``."""
        x, h, y = self._prepare(x, y)
        return categorical_log_prob(self.logits_from_features(h, y, k), x.reshape(len(x), self.d))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) in nats, shape ``(B,)``: the log-mean-exp over the ``num_masks`` masks."""
        x, h, y = self._prepare(x, y)
        target = x.reshape(len(x), self.d)  # (B, D)
        m = self.config.num_masks
        per_mask = torch.stack([
            categorical_log_prob(self.logits_from_features(h, y, k), target) for k in range(m)
        ])  # (M, B)
        return torch.logsumexp(per_mask, 0) - math.log(m)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """NLL per dimension; in training with several masks, of one mask drawn at random."""
        if self.training and self.config.num_masks > 1:
            k = int(torch.randint(self.config.num_masks, ()))
            lp = self.log_prob_mask(batch["x"], batch.get("y"), k)
        else:
            lp = self.log_prob(batch["x"], batch.get("y"))
        return self.nll_loss(lp)

    # ---------------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """Ancestral samples, shape ``(n, *spec.shape)``.

        Args:
            n: number of samples.
            y: labels ``(n,)`` of a conditional model; default ``arange(n) % num_classes``.
            temperature: divides every conditional's logits (0: argmax).

        Raises:
            ConfigError: ``y`` given to an unconditional model, or invalid labels.
        """
        check_temperature(temperature)
        y = self.sample_labels(y, n)
        x = torch.zeros(n, self.d, dtype=torch.long, device=self.device)  # (n, D)
        member = torch.randint(self.config.num_masks, (n,)).to(self.device)

        def draw(logits: torch.Tensor, where: tuple) -> torch.Tensor:
            return sample_categorical(logits, temperature)

        for k in range(self.config.num_masks):
            rows = (member == k).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            x[rows] = self.walk(x[rows], y[rows] if y is not None else None, draw, member=k)
        return x.view(n, *self.spec.shape)

    # ------------------------------------------------------------------- lossless coding

    def to_walk(self, x: torch.Tensor) -> torch.Tensor:
        """Examples ``(B, *spec.shape)`` as the flat ``(B, D)`` that :meth:`walk` fills.

        Raises:
            ConfigError: a mixture of several masks, whose likelihood no single ordering gives.
        """
        if self.config.num_masks > 1:
            raise ConfigError(f"this MADE is a mixture of num_masks={self.config.num_masks} orderings: "
                              f"p(x) averages their likelihoods, which no single autoregressive order "
                              f"codes; compress with a run trained with --num-masks 1")
        return x.reshape(len(x), self.d)

    def from_walk(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_walk`."""
        return z.reshape(len(z), *self.spec.shape)

    def walk(self, x: torch.Tensor, y: torch.Tensor | None, choose: Choose, fast: bool = True,
             member: int = 0) -> torch.Tensor:
        """The autoregressive loop of mask ``member`` over flat ``x`` ``(n, D)``: for every
        dimension ``d`` in its ordering, ``x[:, d] = choose(logits, (:, d))`` with ``logits``
        ``(n, L)`` of ``p(x_d | x_<d)`` given ``x`` as filled so far; as :meth:`RasterSampling.walk
        <unsup.models.autoregressive.raster.RasterSampling.walk>`. Every step is one full masked
        pass (MADE has no cache, so ``fast`` changes nothing)."""
        masks = self._layer_masks(member)
        for d in torch.argsort(self.orderings[member]).tolist():  # dimensions in order
            logits = self._forward(self.encode(x), y, masks)  # (n, D, L)
            where = (slice(None), d)
            x[where] = choose(logits[:, d], where)
        return x


def draw_hidden_degrees(d: int, hidden: Sequence[int], generator: torch.Generator) -> list[torch.Tensor]:
    """Degrees of the hidden units of a MADE over ``d`` dimensions (module docstring).

    Layer ``i`` draws its ``hidden[i]`` degrees uniformly from ``[min degree of layer i-1, d - 1]``
    (the inputs' minimum is 1), so every unit has a path to some output.

    Args:
        d: number of dimensions (input degrees are the positions ``1..d``).
        hidden: widths of the hidden layers.
        generator: the source of randomness (MADE seeds one per mask).

    Returns:
        One ``(hidden[i],)`` long tensor of degrees per hidden layer.
    """
    out, low = [], 1
    for h in hidden:
        high = d - 1  # a unit of degree d could feed no output
        low = min(low, high)
        m = torch.randint(low, high + 1, (int(h),), generator=generator)
        out.append(m)
        low = int(m.min())
    return out


def degree_masks(degrees: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """0/1 float masks ``(out, in)`` of a masked MLP from the degrees of its units.

    Args:
        degrees: degrees of the input, hidden and output units, input first. A hidden weight
            ``i -> j`` is kept iff ``m_j >= m_i``, an output weight iff ``m_j > m_i``, so an
            output of degree ``k`` sees only inputs of degree ``< k``.
    """
    m = list(degrees)
    out = [(m[i + 1][:, None] >= m[i][None, :]) for i in range(len(m) - 2)]
    out.append(m[-1][:, None] > m[-2][None, :])  # strict: output d never sees input d
    return [x.float() for x in out]


def _rebuild_masks(module: MADE, incompatible_keys: object) -> None:
    """After ``load_state_dict``: rebuild the layers' masks from the loaded degrees."""
    module._set_layer_masks()
