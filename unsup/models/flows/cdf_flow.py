"""Flows with a uniform base for low-dimensional data: mixture-CDF flows (1-D) and a 2-D
autoregressive flow (CS294-158 HW2, part 1).

**Mixture-CDF flow** (``cdf-flow``). The CDF of a ``K``-component Gaussian mixture,

    z = F(x) = sum_k pi_k Phi((x - mu_k) / sigma_k),        pi = softmax(w),

is a smooth, strictly increasing bijection from the real line onto ``(0, 1)``. With a
``Uniform(0, 1)`` base the change of variables has ``log p_Z(z) = 0``, so

    log p(x) = log |dF/dx| = log sum_k pi_k N(x; mu_k, sigma_k^2):

the flow's density *is* the mixture density, and it is exact. On ``D``-dimensional data the flow
acts on each dimension independently with its own mixture, ``log p(x) = sum_d log F_d'(x_d)``.

**Autoregressive flow** (``ar-flow``), for 2-D data [1, Sec. 2.1]:

    z_1 = F_1(x_1),    z_2 = F_2(x_2 | x_1),

where ``F_1`` is a mixture CDF with free parameters and the mixture parameters
``(w, mu, log sigma)`` of ``F_2`` come from an MLP of ``x_1``. The Jacobian is triangular
(``z_1`` does not depend on ``x_2``), so with a uniform base on ``[0, 1]^2``

    log p(x) = log F_1'(x_1) + log F_2'(x_2 | x_1),

exact again. Both maps are monotone, so :meth:`decode` (and sampling, ``decode(u)`` with
``u ~ U[0, 1]^D``) inverts them by bisection -- vectorised over the batch, in float64, to
``1e-6`` -- in the order ``x_1`` then ``x_2``.

**Discrete data** (``x`` in ``{0, .., L-1}``, e.g. ``toy-1d-bimodal`` with ``L = 100``) needs no
dequantisation noise. The value ``x`` is the bin of ``v = x / L`` in ``[0, 1)`` -- the model
describes the continuous ``v`` whose discretisation ``floor(L clip(v, 0, 1))`` (the toys' own
recipe) gives ``x`` -- and the flow's CDF gives the bin's probability exactly:

    P(x) = F((x + 1) / L) - F(x / L),

with the tails added to the end bins (``F(0) := 0`` for ``x = 0``, ``F(1) := 1`` for
``x = L - 1``) so that the ``L`` probabilities sum to one. This is the exact discrete likelihood,
not a dequantisation bound. Sampling draws ``v`` by inverting ``F`` and returns its bin;
:meth:`encode` maps ``x`` to ``F`` at its bin centre ``(x + 1/2) / L``, and the autoregressive
flow conditions ``x_2`` on ``x_1``'s bin centre.

Numerics: a bin's mass ``Phi(b) - Phi(a)`` is computed in log space,
``log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b)))``, after reflecting intervals in the right
tail (``Phi(b) - Phi(a) = Phi(-a) - Phi(-b)``), so that no probability underflows to zero.

The mixtures are initialised with means spread over ``[0, 1]`` (the range of the 2-D toys and of
discrete data after scaling) and ``sigma = 0.5 / K``; there is no ``temperature``: the uniform
base has no natural one.

References:
    [1] Papamakarios, Nalisnick, Rezende, Mohamed, Lakshminarayanan. Normalizing Flows for
        Probabilistic Modeling and Inference. JMLR 2021 (autoregressive flows, Sec. 3.1).
    [2] Berkeley CS294-158 Deep Unsupervised Learning, Lecture 3 (flows) and Homework 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import LikelihoodModel
from unsup.nn.layers import check_temperature

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
LN2 = math.log(2.0)
MIN_LOG_SIGMA = -9.0  # sigma >= 1.2e-4: keeps the densities finite on a collapsing component
INVERSE_TOL = 1e-6  # bisection stops when the bracket is this narrow

# Mixture parameters (logits w, means mu, log sigma), each of shape (..., K).
Mixture = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# ------------------------------------------------------------------------- mixture functions

def _standardise(v: torch.Tensor, mix: Mixture) -> torch.Tensor:
    _, mu, log_sigma = mix
    return (v.unsqueeze(-1) - mu) / log_sigma.exp()  # (..., K)


def mixture_log_density(v: torch.Tensor, mix: Mixture) -> torch.Tensor:
    """``log sum_k pi_k N(v; mu_k, sigma_k^2)``, shape of ``v``."""
    logits, _, log_sigma = mix
    s = _standardise(v, mix)
    return torch.logsumexp(F.log_softmax(logits, -1) - log_sigma - 0.5 * s * s - LOG_SQRT_2PI, -1)


def mixture_cdf(v: torch.Tensor, mix: Mixture) -> torch.Tensor:
    """``F(v) = sum_k pi_k Phi((v - mu_k) / sigma_k)`` in ``[0, 1]``, shape of ``v``."""
    return (F.softmax(mix[0], -1) * torch.special.ndtr(_standardise(v, mix))).sum(-1)


def _log1mexp(t: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(t))`` for ``t < 0``, accurate near 0 and far below it (each branch is
    evaluated only where it is accurate, so neither produces an infinite gradient)."""
    t = t.clamp(max=-1e-30)  # t = 0: an interval narrower than float resolution
    near = t > -LN2
    a = torch.log(-torch.expm1(torch.where(near, t, -LN2)))
    b = torch.log1p(-torch.exp(torch.where(near, -LN2, t)))
    return torch.where(near, a, b)


def mixture_log_mass(lo: torch.Tensor, hi: torch.Tensor, mix: Mixture, first: torch.Tensor,
                     last: torch.Tensor) -> torch.Tensor:
    """``log (F(hi) - F(lo))``, with ``F(lo) := 0`` where ``first`` and ``F(hi) := 1`` where
    ``last`` (the end bins take the tails), computed without underflow; shape of ``lo``."""
    a, b = _standardise(lo, mix), _standardise(hi, mix)  # (..., K)
    first, last = first.unsqueeze(-1).expand_as(a), last.unsqueeze(-1).expand_as(a)
    # Interior bins, reflected into the left tail where the whole interval is right of the mean.
    right = a > 0
    lo_s, hi_s = torch.where(right, -b, a), torch.where(right, -a, b)
    log_hi = torch.special.log_ndtr(hi_s)
    interior = log_hi + _log1mexp(torch.special.log_ndtr(lo_s) - log_hi)
    log_phi = torch.where(first, torch.special.log_ndtr(b), interior)
    log_phi = torch.where(last, torch.special.log_ndtr(-a), log_phi)
    log_phi = torch.where(first & last, torch.zeros_like(a), log_phi)  # a single level
    return torch.logsumexp(F.log_softmax(mix[0], -1) + log_phi, -1)


@torch.no_grad()
def invert_mixture_cdf(u: torch.Tensor, mix: Mixture, tol: float = INVERSE_TOL) -> torch.Tensor:
    """The ``v`` with ``F(v) = u`` by bisection, in float64, to ``tol``; shape of ``u``.

    The bracket ``[min_k mu_k - 9 sigma_k, max_k mu_k + 9 sigma_k]`` holds every solution for
    ``u`` in ``[Phi(-9), 1 - Phi(-9)] ~ [1e-19, 1 - 1e-19]``, beyond float64 uniform draws.
    """
    mix = tuple(p.double() for p in mix)  # type: ignore[assignment]
    u = u.double()
    _, mu, log_sigma = mix
    sigma = log_sigma.exp()
    lo = (mu - 9 * sigma).amin(-1).expand_as(u).clone()
    hi = (mu + 9 * sigma).amax(-1).expand_as(u).clone()
    width = (hi - lo).max().item() if u.numel() else 0.0
    for _ in range(max(0, math.ceil(math.log2(max(width, tol) / tol)))):
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(mid, mix) < u
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _initial_mixture(k: int) -> torch.Tensor:
    """``(w, mu, log sigma)`` stacked, ``(3, K)``: equal weights, means across ``[0, 1]``."""
    return torch.stack([torch.zeros(k), (torch.arange(k) + 0.5) / k,
                        torch.full((k,), math.log(0.5 / k))])


def _as_mixture(p: torch.Tensor) -> Mixture:
    """``(..., 3, K)`` -> three ``(..., K)``, with ``log sigma`` bounded below."""
    return p[..., 0, :], p[..., 1, :], p[..., 2, :].clamp(min=MIN_LOG_SIGMA)


# ------------------------------------------------------------------------------ the models

class _UniformBaseFlow(LikelihoodModel):
    """Shared by both models: data checks, the scale of discrete data, a coordinate's exact
    log-likelihood under a mixture, and sampling by inversion."""

    latent_map = True

    def __init__(self, spec: DataSpec, config) -> None:
        super().__init__(spec, config)
        name = type(self).__name__
        self.require(kinds=("vector",))
        if config.num_components < 1:
            raise ConfigError(f"{name} needs num_components >= 1, got {config.num_components}")
        self.levels = spec.levels

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """The real value the flow sees: ``x`` itself, or the bin centre ``(x + 1/2) / L``."""
        return x.float() if self.levels is None else (x.float() + 0.5) / self.levels

    def to_data(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of the data scale: ``v`` itself, or its bin ``floor(L clip(v, 0, 1))``."""
        if self.levels is None:
            return v.float()
        return torch.floor(v * self.levels).clamp(0, self.levels - 1).long()

    def coordinate_log_likelihood(self, x: torch.Tensor, mix: Mixture) -> torch.Tensor:
        """``log F'(x)`` (continuous) or ``log P(x)`` of the bin (discrete), shape of ``x``."""
        if self.levels is None:
            return mixture_log_density(x.float(), mix)
        L = self.levels
        xf = x.float()
        return mixture_log_mass(xf / L, (xf + 1) / L, mix, x == 0, x == L - 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - each model's own
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``decode(u)`` with ``u ~ U[0, 1]^D`` (float64 draws)."""
        if check_temperature(temperature) != 1.0:
            raise ConfigError(f"{type(self).__name__} samples by inverting its CDF from a uniform "
                              f"base, which has no temperature; use temperature 1")
        self.sample_labels(y, n)  # rejects labels: these models are unconditional
        return self.decode(torch.rand(n, *self.spec.shape, dtype=torch.float64, device=self.device))


@dataclass
class CDFFlowConfig:
    """Hyper-parameters of :class:`CDFFlow`.

    Attributes:
        num_components: Gaussians ``K`` in each dimension's mixture CDF.
    """

    num_components: int = 5


@register("cdf-flow", "mixture-of-Gaussians CDF flow to a uniform base, per dimension (1-D flow)")
class CDFFlow(_UniformBaseFlow):
    """``z_d = F_d(x_d)``, an independent mixture-CDF flow per dimension (module docstring).

    Raises:
        ConfigError: non-vector data, or ``num_components < 1``.
    """

    Config = CDFFlowConfig

    def __init__(self, spec: DataSpec, config: CDFFlowConfig | None = None) -> None:
        c = config or CDFFlowConfig()
        super().__init__(spec, c)
        self.params = nn.Parameter(_initial_mixture(c.num_components).repeat(spec.dims, 1, 1))  # (D, 3, K)

    def mixture(self) -> Mixture:
        return _as_mixture(self.params)  # three (D, K)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x)`` (continuous) or ``log P(x)`` (discrete) in nats, ``(B,)``."""
        self.check_input(x)
        return self.coordinate_log_likelihood(x.to(self.device), self.mixture()).sum(1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z = F(x)`` in ``[0, 1]^D`` (discrete data: at the bin centres), ``(B, D)``."""
        self.check_input(x)
        return mixture_cdf(self.value(x.to(self.device)), self.mixture())

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``x = F^{-1}(z)`` by bisection (discrete data: the bin of the value), ``(B, D)``."""
        return self.to_data(invert_mixture_cdf(z.to(self.device), self.mixture()))


@dataclass
class ARFlowConfig:
    """Hyper-parameters of :class:`ARFlow`.

    Attributes:
        num_components: Gaussians ``K`` in each of the two mixture CDFs.
        hidden: widths of the ReLU MLP from ``x_1`` to the mixture parameters of ``x_2``.
    """

    num_components: int = 5
    hidden: list[int] = field(default_factory=lambda: [64, 64])


@register("ar-flow", "2-D autoregressive flow: mixture CDFs F1(x1), F2(x2 | x1) to a uniform base")
class ARFlow(_UniformBaseFlow):
    """``z_1 = F_1(x_1)``, ``z_2 = F_2(x_2 | x_1)`` over 2-D data (module docstring).

    Raises:
        ConfigError: data that is not 2-D vectors, ``num_components < 1``, or a hidden width < 1.
    """

    Config = ARFlowConfig

    def __init__(self, spec: DataSpec, config: ARFlowConfig | None = None) -> None:
        c = config or ARFlowConfig()
        super().__init__(spec, c)
        if tuple(spec.shape) != (2,):
            raise ConfigError(f"ARFlow models 2-D data (x1, x2), got examples of shape {spec.shape}; "
                              f"use cdf-flow for other dimensions")
        if not isinstance(c.hidden, (list, tuple)) or any(
                not isinstance(h, int) or h < 1 for h in c.hidden):
            raise ConfigError(f"ARFlow hidden must be a list of positive layer widths such as "
                              f"[64, 64], got {c.hidden!r}")
        k = c.num_components
        init = _initial_mixture(k)
        self.params1 = nn.Parameter(init.clone())  # (3, K)
        sizes = [1, *c.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(sizes[-1], 3 * k)
        # Start with F_2(. | x_1) = F_1 for every x_1; training brings in the dependence.
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(init.flatten())
        self.net = nn.Sequential(*layers, last)

    def mixture1(self) -> Mixture:
        return _as_mixture(self.params1)  # three (K,)

    def mixture2(self, v1: torch.Tensor) -> Mixture:
        """The mixture of ``x_2`` given the value ``v1`` of ``x_1`` (``(B,)``): three ``(B, K)``."""
        k = self.config.num_components
        return _as_mixture(self.net(v1.float()[:, None]).view(-1, 3, k))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x_1) + log p(x_2 | x_1)`` in nats (probabilities for discrete data)."""
        self.check_input(x)
        x = x.to(self.device)
        mix2 = self.mixture2(self.value(x[:, 0]))
        return (self.coordinate_log_likelihood(x[:, 0], self.mixture1())
                + self.coordinate_log_likelihood(x[:, 1], mix2))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(F_1(x_1), F_2(x_2 | x_1))`` of real values ``x`` ``(B, 2)``, differentiable."""
        z1 = mixture_cdf(x[:, 0], self.mixture1())
        z2 = mixture_cdf(x[:, 1], self.mixture2(x[:, 0]))
        return torch.stack([z1, z2], 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z`` in ``[0, 1]^2`` (discrete data: at the bin centres), ``(B, 2)``."""
        self.check_input(x)
        return self.forward_map(self.value(x.to(self.device)))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``x_1 = F_1^{-1}(z_1)``, then ``x_2 = F_2^{-1}(z_2 | x_1)``, by bisection, ``(B, 2)``."""
        z = z.to(self.device)
        x1 = self.to_data(invert_mixture_cdf(z[:, 0], self.mixture1()))
        x2 = self.to_data(invert_mixture_cdf(z[:, 1], self.mixture2(self.value(x1))))
        return torch.stack([x1, x2], 1)
