"""Encoders, decoders and observation likelihoods ``p(x | z)`` for latent-variable models.

A decoder maps a batch of latents ``z`` to the parameters of ``p(x | z)``, laid out as
``(N, P, *shape)`` (``P`` parameters per data dimension); a :class:`Likelihood` turns them into
log-probabilities, samples and modes. Each likelihood is a normalised distribution over the data
space (a test sums or integrates it):

* :class:`Bernoulli` -- binary data: ``log p(x | z) = sum_d x_d log s(l_d) + (1 - x_d) log s(-l_d)``
  with ``s`` the sigmoid of the logits ``l`` (``P = 1``).
* :class:`Gaussian` -- continuous data: ``N(x; mu, diag sigma^2)`` with a learned per-dimension
  ``log sigma`` (clamped below at -7 so the density cannot collapse onto a training point;
  ``P = 2``).
* :class:`DiscretizedLogistic` -- ``L``-level data: one logistic per dimension on the value rescaled
  to ``[-1, 1]``, each level taking the mass of its bin (the PixelCNN++ likelihood with one
  component, :func:`~unsup.nn.layers.discretized_logistic_mixture_log_prob`; ``P = 2``).

Networks: ``arch="mlp"`` flattens the example (any shape); ``arch="conv"`` is a DCGAN-style pair of
stride-2 convolutions (images whose height and width are multiples of 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.nn.layers import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_table,
    sample_categorical,
)

LOG_2PI = math.log(2 * math.pi)
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}

# ------------------------------------------------------------------------------ likelihoods


class Likelihood:
    """``p(x | z)`` given decoder outputs ``params`` of shape ``(N, P, *shape)``."""

    name = ""
    num_params = 1

    def check(self, spec: DataSpec) -> None:
        """Raise a :class:`ConfigError` if this likelihood cannot model ``spec``'s data."""

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` summed over the dimensions of each example, shape ``(N,)``."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """One draw ``x ~ p(x | z)`` of the data's dtype, shape ``(N, *shape)``."""
        raise NotImplementedError

    def table(self, params: torch.Tensor) -> torch.Tensor:
        """``log p(x_d = v | z)`` for every dimension ``d`` and level ``v``, shape ``(N, *shape, L)``
        (discrete data only: what an entropy coder needs, :mod:`unsup.codec.bitsback`)."""
        raise ConfigError(f"the {self.name} likelihood is not over discrete levels: it has no "
                          f"probability table to code with")

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """A representative ``x`` for pictures and ``T = 0`` sampling, shape ``(N, *shape)``: the
        most likely value (binary), the mean (Gaussian), the level nearest the mean (logistic)."""
        raise NotImplementedError


class Bernoulli(Likelihood):
    name = "bernoulli"

    def check(self, spec: DataSpec) -> None:
        if spec.levels != 2:
            raise ConfigError(f"the bernoulli decoder models binary data (levels == 2), got "
                              f"{'continuous data' if spec.levels is None else f'{spec.levels} levels'}"
                              f"; use --represent binary, or --decoder logistic / gaussian")

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = params[:, 0]
        nll = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
        return -nll.flatten(1).sum(1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(params[:, 0])).long()

    def table(self, params: torch.Tensor) -> torch.Tensor:
        logits = params[:, 0, ..., None]
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], -1)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return (params[:, 0] > 0).long()


class Gaussian(Likelihood):
    name = "gaussian"
    num_params = 2

    def check(self, spec: DataSpec) -> None:
        if spec.levels is not None:
            raise ConfigError(f"the gaussian decoder models continuous data, got {spec.levels} "
                              f"discrete levels; use --represent float, or --decoder bernoulli / "
                              f"logistic")

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_s = params[:, 0], params[:, 1].clamp(min=-7.0)
        lp = -0.5 * ((x - mu) * torch.exp(-log_s)).pow(2) - log_s - 0.5 * LOG_2PI
        return lp.flatten(1).sum(1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        mu, log_s = params[:, 0], params[:, 1].clamp(min=-7.0)
        return mu + torch.exp(log_s) * torch.randn_like(mu)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return params[:, 0]


class DiscretizedLogistic(Likelihood):
    name = "logistic"
    num_params = 2

    def __init__(self, levels: int = 2) -> None:
        self.levels = levels

    def check(self, spec: DataSpec) -> None:
        if spec.levels is None:
            raise ConfigError("the logistic decoder (discretized logistic) models discrete levels, "
                              "got continuous data; use --represent levels:K or uint8, or "
                              "--decoder gaussian")

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, log_s = params[:, 0, ..., None], params[:, 1, ..., None]  # (N, *shape, 1)
        return torch.zeros_like(mu), mu, log_s

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        lp = discretized_logistic_mixture_log_prob(x, *self._split(params), self.levels)
        return lp.flatten(1).sum(1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return sample_categorical(self.table(params))

    def table(self, params: torch.Tensor) -> torch.Tensor:
        return discretized_logistic_mixture_table(*self._split(params), self.levels).log_softmax(-1)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The level nearest the mean (for pictures): the most likely bin of a wide logistic is
        an end level, which collects the whole tail."""
        p = self.table(params).exp()
        mean = (p * torch.arange(self.levels, device=p.device, dtype=p.dtype)).sum(-1)
        return mean.round().long()


def make_likelihood(name: str, spec: DataSpec) -> Likelihood:
    """The likelihood called ``name`` for ``spec``'s data; ``"auto"`` picks bernoulli for binary,
    logistic for other discrete and gaussian for continuous data.

    Raises:
        ConfigError: an unknown name, or data the likelihood cannot model.
    """
    if name == "auto":
        name = "gaussian" if spec.levels is None else "bernoulli" if spec.levels == 2 else "logistic"
    table = {"bernoulli": Bernoulli, "gaussian": Gaussian, "logistic": DiscretizedLogistic}
    if name not in table:
        raise ConfigError(f"decoder must be auto, {', '.join(table)}; got {name!r}")
    lik = DiscretizedLogistic(spec.levels or 2) if name == "logistic" else table[name]()
    lik.check(spec)
    return lik


# --------------------------------------------------------------------------------- networks


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def mlp_pair(dims: int, z_dim: int, num_params: int, hidden: list[int], activation: str
             ) -> tuple[nn.Module, nn.Module]:
    """Encoder ``(N, D) -> (N, 2 z)`` and decoder ``(N, z) -> (N, P D)`` MLPs (mirrored widths)."""
    return (mlp([dims, *hidden, 2 * z_dim], activation),
            mlp([z_dim, *hidden[::-1], num_params * dims], activation))


def conv_pair(shape: tuple[int, ...], z_dim: int, num_params: int, channels: int, activation: str
              ) -> tuple[nn.Module, nn.Module]:
    """Encoder ``(N, C, H, W) -> (N, 2 z)`` and decoder ``(N, z) -> (N, P C, H, W)``: two stride-2
    (transposed) convolutions with kernel 4 and a linear map to and from the ``H/4 x W/4`` grid."""
    c, h, w = shape
    act = ACTIVATIONS[activation]
    grid = (2 * channels, h // 4, w // 4)
    enc = nn.Sequential(
        nn.Conv2d(c, channels, 4, 2, 1), act(),                  # (N, ch, H/2, W/2)
        nn.Conv2d(channels, 2 * channels, 4, 2, 1), act(),       # (N, 2ch, H/4, W/4)
        nn.Flatten(), nn.Linear(math.prod(grid), 2 * z_dim))     # (N, 2z)
    dec = nn.Sequential(
        nn.Linear(z_dim, math.prod(grid)), act(), nn.Unflatten(1, grid),  # (N, 2ch, H/4, W/4)
        nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), act(),        # (N, ch, H/2, W/2)
        nn.ConvTranspose2d(channels, num_params * c, 4, 2, 1))             # (N, P C, H, W)
    return enc, dec
