"""Discretized mixture of logistics over one discrete dimension.

A parametric alternative to the histogram [1, HW1 Q1(b)]: ``K`` logistic components with weights
``pi = softmax(logit_pi)``, locations ``mu`` and scales ``s`` put a smooth density on the value
rescaled to ``[-1, 1]``, and each of the ``L`` levels takes the mass of its bin (PixelCNN++ [2]):

    v = 2x/(L-1) - 1,   h = 1/(L-1),   sigma = logistic CDF,
    P(x) = sum_k pi_k [sigma((v + h - mu_k)/s_k) - sigma((v - h - mu_k)/s_k)]   (0 < x < L-1),
    P(0)   = sum_k pi_k sigma((-1 + h - mu_k)/s_k)          (all mass below the first bin edge),
    P(L-1) = sum_k pi_k [1 - sigma((1 - h - mu_k)/s_k)]    (all mass above the last bin edge),

so the probabilities of the ``L`` levels telescope to exactly 1. With ``3K`` parameters instead of
``L - 1`` it generalises across neighbouring levels that the histogram treats as unrelated. The
likelihood itself is :func:`unsup.nn.layers.discretized_logistic_mixture_log_prob`, shared
with PixelCNN++.

Sampling draws from the exact level probabilities ``P(x)`` (cheap: ``L`` values), with
temperature ``T`` applied to their logarithms (``softmax(log P / T)``; ``T = 0`` is the mode).

References:
    [1] CS294-158 Deep Unsupervised Learning, UC Berkeley, homework 1 (2020).
    [2] Salimans, Karpathy, Chen, Kingma. PixelCNN++. ICLR 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import LikelihoodModel
from unsup.nn.layers import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_table,
    sample_categorical,
)


@dataclass
class LogisticMixtureConfig:
    """Hyper-parameters of :class:`LogisticMixture`.

    Attributes:
        num_components: number of logistic components ``K``.
    """

    num_components: int = 4


@register("logistic-mixture", "discretized mixture of K logistics over 1-D discrete data",
          presets={"course": {"num_components": 4}})
class LogisticMixture(LikelihoodModel):
    """Discretized mixture of logistics over data of shape ``(1,)`` with ``L`` levels.

    Components start with equal weights, locations evenly spread over ``[-1, 1]`` and scales of
    one component's share of that range, so every level has mass from the first step.

    Raises:
        ConfigError: continuous data, a shape other than ``(1,)``, or ``num_components < 1``.
    """

    Config = LogisticMixtureConfig

    def __init__(self, spec: DataSpec, config: LogisticMixtureConfig | None = None) -> None:
        config = config or LogisticMixtureConfig()
        super().__init__(spec, config)
        self.require(levels=True)
        if tuple(spec.shape) != (1,):
            raise ConfigError(f"LogisticMixture models 1-D discrete data (shape (1,)), got "
                              f"{spec.kind} data of shape {spec.shape}")
        if config.num_components < 1:
            raise ConfigError(f"num_components must be >= 1, got {config.num_components}")
        assert spec.levels is not None
        self.levels = spec.levels
        k = config.num_components
        self.logit_pi = nn.Parameter(torch.zeros(k))
        self.mu = nn.Parameter(torch.linspace(-1 + 1 / k, 1 - 1 / k, k))
        self.log_s = nn.Parameter(torch.full((k,), math.log(1.0 / k)))

    def log_prob_table(self) -> torch.Tensor:
        """log P(x) of every level, shape ``(L,)``."""
        return discretized_logistic_mixture_table(self.logit_pi, self.mu, self.log_s, self.levels)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log P(x) in nats, shape ``(B,)``; ``y`` is ignored."""
        self.check_input(x)
        x = x.to(self.device)[:, 0]  # (B,)
        return discretized_logistic_mixture_log_prob(
            x, self.logit_pi, self.mu, self.log_s, self.levels
        )

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` draws of shape ``(n, 1)`` from ``softmax(log P / T)``.

        Raises:
            ConfigError: ``y`` given (the mixture is not class-conditional).
        """
        self.sample_labels(y, n)  # raises: not class-conditional
        table = self.log_prob_table().expand(n, -1)  # (n, L)
        return sample_categorical(table, temperature)[:, None]
