"""Histogram: a tabular density over discrete data with one or two dimensions.

For data with ``D in {1, 2}`` dimensions of ``L`` levels each, the model keeps one logit per cell
of the ``L`` (``D = 1``) or ``L x L`` (``D = 2``) table and sets

    p(x) = softmax(theta)[x] = exp(theta_x) / sum_x' exp(theta_x').

Trained by maximum likelihood with the shared training loop, the gradient of the mean negative
log-likelihood on a batch is ``softmax(theta) - empirical frequencies``, so gradient descent
drives the table to the closed-form maximum-likelihood estimate

    p_hat(x) = n_x / N,     or with add-alpha (Laplace) smoothing   (n_x + alpha) / (N + alpha L^D),

which :meth:`Histogram.fit` computes directly. The histogram is the baseline every later model
is compared with [1, lecture 1]: exact and flexible, but it needs ``L^D`` parameters and
generalises to no cell it has not seen -- the curse of dimensionality that motivates the
autoregressive and latent-variable models.

References:
    [1] Abbeel, Chen, Ho, Srinivas et al. CS294-158 Deep Unsupervised Learning, UC Berkeley,
        lecture 1 and homework 1 (2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import LikelihoodModel
from unsup.nn.layers import sample_categorical

MAX_CELLS = 2**22  # 4M logits: a 2048 x 2048 table


@dataclass
class HistogramConfig:
    """The histogram has no hyper-parameters: its parameters are the table itself."""


def histogram_mle(x: torch.Tensor, levels: int, alpha: float = 0.0) -> torch.Tensor:
    """Closed-form maximum-likelihood (or add-alpha smoothed) probability table.

    Args:
        x: long tensor of shape ``(N, D)`` with ``D`` in ``{1, 2}`` and values in ``[0, levels)``.
        levels: levels ``L`` per dimension.
        alpha: pseudo-count added to every cell (0: the plain MLE ``counts / N``).

    Returns:
        Probabilities of shape ``(L,)`` or ``(L, L)``, summing to 1.
    """
    if alpha < 0:
        raise ConfigError(f"smoothing alpha must be >= 0, got {alpha}")
    d = x.shape[1]
    x = x.long()  # in a narrower integer dtype x1 * levels could overflow
    flat = x[:, 0] * levels + x[:, 1] if d == 2 else x[:, 0]  # (N,) cell index
    counts = torch.bincount(flat.long(), minlength=levels**d).double() + alpha
    if counts.sum() == 0:
        raise ConfigError("the histogram MLE needs at least one example or alpha > 0")
    return (counts / counts.sum()).float().reshape((levels,) * d)


@register("histogram", "tabular density of 1-D or 2-D discrete data (one logit per cell)",
          presets={"course": {}})
class Histogram(LikelihoodModel):
    """Tabular density over ``L`` or ``L x L`` cells, parameterised by softmax logits.

    Args:
        spec: discrete data of shape ``(1,)`` or ``(2,)``.
        config: :class:`HistogramConfig` (empty).

    Raises:
        ConfigError: continuous data, another shape, or a table of more than ``MAX_CELLS`` cells.
    """

    Config = HistogramConfig

    def __init__(self, spec: DataSpec, config: HistogramConfig | None = None) -> None:
        super().__init__(spec, config or HistogramConfig())
        self.require(levels=True)
        if len(spec.shape) != 1 or spec.shape[0] not in (1, 2):
            raise ConfigError(f"Histogram models 1-D or 2-D discrete data (shape (1,) or (2,)), "
                              f"got {spec.kind} data of shape {spec.shape}; use made or pixelcnn")
        assert spec.levels is not None
        self.levels, self.d = spec.levels, spec.shape[0]
        if self.levels**self.d > MAX_CELLS:
            raise ConfigError(f"a histogram of {self.levels}^{self.d} cells is too large "
                              f"(max {MAX_CELLS}); quantise with --represent levels:K")
        self.logits = nn.Parameter(torch.zeros((self.levels,) * self.d))  # (L,) or (L, L)

    @classmethod
    def fit(cls, spec: DataSpec, x: torch.Tensor, alpha: float = 0.0) -> Histogram:
        """A histogram set to the closed-form (smoothed) MLE of ``x``; no training needed.

        Cells with zero count and ``alpha = 0`` get probability 0 (logit ``-inf``).
        """
        model = cls(spec)
        model.check_input(x)
        with torch.no_grad():
            model.logits.copy_(histogram_mle(x, model.levels, alpha).log())
        return model

    def log_prob_table(self) -> torch.Tensor:
        """log p(x) of every cell, shape ``(L,)`` or ``(L, L)``."""
        return torch.log_softmax(self.logits.flatten(), 0).reshape(self.logits.shape)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) in nats, shape ``(B,)``; ``y`` is ignored."""
        self.check_input(x)
        x = x.to(self.device, torch.long)  # uint8 would index as a mask, and overflow below
        flat = x[:, 0] * self.levels + x[:, 1] if self.d == 2 else x[:, 0]  # (B,)
        return self.log_prob_table().flatten()[flat]

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` draws from ``softmax(logits / T)``, shape ``(n, D)``.

        Raises:
            ConfigError: ``y`` given (the histogram is not class-conditional).
        """
        self.sample_labels(y, n)  # raises: not class-conditional
        cells = sample_categorical(self.logits.flatten().expand(n, -1), temperature)  # (n,)
        if self.d == 1:
            return cells[:, None]
        return torch.stack([cells // self.levels, cells % self.levels], dim=1)  # (n, 2)
