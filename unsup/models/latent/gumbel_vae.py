"""A VAE with categorical latents, trained through the Gumbel-softmax (Concrete) relaxation.

The latent is ``N = latents`` categorical variables with ``K = categories`` values each, stored
one-hot as ``z`` of ``N K`` entries; the prior is uniform, ``p(z) = K^-N``, and the decoder
``p(x | z)`` is a :mod:`~unsup.models.latent.parts` likelihood. The encoder gives
``q(z | x) = prod_n Cat(z_n; pi_n(x))``. The marginal ``p(x) = K^-N sum_z p(x | z)`` is a finite
mixture of ``K^N`` components.

**Training** [1, 2]. A categorical sample has no reparameterisation gradient; its relaxation does.
With ``g_nk = -log(-log U_nk)`` i.i.d. Gumbel noise and temperature ``tau``,

    y_nk = exp((log pi_nk + g_nk) / tau) / sum_j exp((log pi_nj + g_nj) / tau),

a point in the simplex that tends to the one-hot ``argmax_k (log pi_nk + g_nk)`` as ``tau -> 0``
(which is distributed exactly as ``Cat(pi_n)``, the Gumbel-max trick). Gradients flow through
``y``; with ``hard`` the decoder sees the one-hot ``argmax`` in the forward pass and the gradient
of ``y`` in the backward pass (the straight-through estimator [1, 4]). The objective is the
relaxed ELBO

    E_g[log p(x | y)] - KL(q(z | x) || p(z)),   KL = sum_n (sum_k pi_nk log pi_nk + log K),

the KL in closed form (as in [1]), with the VAE's ``beta``, ``kl_anneal_steps`` and ``free_bits``
(per categorical variable). The temperature follows

    tau(t) = max(tau_min, tau_start exp(-anneal_rate * t')),   t' = anneal_every * floor(t / anneal_every),

``t`` the training step (a buffer, so a resumed run continues the schedule [1]). ``bpd`` during
training is the relaxed objective, which is not a bound on the discrete model's likelihood: the
decoder is fed points inside the simplex.

**Evaluation** is of the discrete model. In evaluation mode (or with gradients off)
``draw_posterior`` draws exact one-hot ``z ~ q(z | x)`` and returns the exact categorical
``log q(z | x) = sum_n log pi_{n, z_n}``, so ``log w = log p(x | z) - N log K - log q(z | x)``,
``p^(x) = (1/K) sum_i w_i`` is unbiased for ``p(x)`` and the VAE's importance-sampled ``log p^(x)``
with its standard error, and the bounds ``L_k`` [3], are honest. ``loss`` in evaluation mode
scores the exact ELBO (one-hot samples). The training objective itself has ``k = 1``: the closed-
form KL has no ``k``-sample counterpart.

``encode(x)`` is the posterior probabilities ``pi(x)`` as ``(B, N K)``; ``sample`` draws uniform
categories (temperature 0: category 0 everywhere, the first of the uniform prior's tied modes) and
then ``x ~ p(x | z)``.

References:
    [1] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017.
    [2] Maddison, Mnih, Teh. The Concrete Distribution: A Continuous Relaxation of Discrete Random
        Variables. ICLR 2017.
    [3] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
    [4] Bengio, Léonard, Courville. Estimating or Propagating Gradients Through Stochastic Neurons
        for Conditional Computation. arXiv:1308.3432, 2013.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.latent.vae import VAE, VAEConfig
from unsup.nn.layers import sample_categorical


@dataclass
class GumbelVAEConfig(VAEConfig):
    """Hyper-parameters of :class:`GumbelVAE`.

    Attributes:
        arch: ``mlp`` (any data, flattened) or ``conv`` (images, height and width multiples of 4).
        z_dim: not used (give latents and categories); must stay unset.
        latents: number N of categorical latent variables.
        categories: values K of each latent variable.
        hidden: widths of the MLP encoder's hidden layers (the decoder mirrors them).
        channels: channels of the conv encoder's first layer (the second has twice as many).
        activation: ``relu``, ``tanh`` or ``elu``.
        decoder: ``auto`` (by the data), ``bernoulli``, ``gaussian`` or ``logistic``.
        k: samples of the training bound; must be 1 (the ELBO with the closed-form KL).
        beta: weight of the KL term.
        free_bits: KL floor in nats per categorical latent (0: off).
        kl_anneal_steps: steps of linear warm-up of the KL weight from 0 to beta.
        tau_start: Gumbel-softmax temperature at step 0.
        tau_min: the temperature's floor.
        anneal_rate: r of tau = max(tau_min, tau_start exp(-r step)).
        anneal_every: update the temperature every this many steps.
        hard: straight-through: one-hot samples forward, relaxed gradients backward.
        eval_samples: importance samples K of the log p(x) estimate used for evaluation.
        eval_chunk: max (example, sample) pairs per decoder pass during evaluation.
    """

    latents: int = 20
    categories: int = 10
    tau_start: float = 1.0
    tau_min: float = 0.5
    anneal_rate: float = 1e-4
    anneal_every: int = 1
    hard: bool = False


# Jang et al. 2017, MNIST VAE: 784-512-256-(20 x 10)-256-512-784, tau = max(0.5, exp(-r t)) updated
# every 500 steps (r = 1e-4 of their two rates).
PAPER = {"arch": "mlp", "hidden": [512, 256], "latents": 20, "categories": 10, "tau_start": 1.0,
         "tau_min": 0.5, "anneal_rate": 1e-4, "anneal_every": 500, "eval_samples": 5000}


@register("gumbel-vae", "Gumbel-softmax VAE: categorical latents, uniform prior, annealed "
          "relaxation (optionally straight-through); exact-sample importance-sampled log p(x)",
          presets={"paper": PAPER})
class GumbelVAE(VAE):
    """A VAE with ``latents`` categorical variables of ``categories`` values (module docstring).

    Raises:
        ConfigError: everything :class:`~unsup.models.latent.vae.VAE` rejects; ``z_dim`` set; ``k != 1``;
            fewer than 1 latent or 2 categories; temperatures not ``0 < tau_min <= tau_start``;
            a negative ``anneal_rate`` or ``anneal_every < 1``.
    """

    Config = GumbelVAEConfig
    analytic_kl = False  # the KL is categorical (computed in loss), not the Gaussian one
    continuous_latents = False  # codes are one-hot: no coordinate sweeps
    bits_back = False  # bits-back codes Gaussian levels; these latents are categorical

    def __init__(self, spec: DataSpec, config: GumbelVAEConfig | None = None) -> None:
        c = config or self.Config()
        if c.z_dim is not None:
            raise ConfigError(f"gumbel-vae sizes its latent with latents and categories, not z_dim; "
                              f"got z_dim={c.z_dim}")
        if c.k != 1:
            raise ConfigError(f"gumbel-vae trains the ELBO with the closed-form categorical KL: k must "
                              f"be 1, got {c.k} (evaluation's bounds take any number of samples)")
        if c.latents < 1 or c.categories < 2:
            raise ConfigError(f"latents must be >= 1 and categories >= 2; got {c.latents}, "
                              f"{c.categories}")
        if not 0 < c.tau_min <= c.tau_start < math.inf:
            raise ConfigError(f"temperatures must satisfy 0 < tau_min <= tau_start; got tau_min="
                              f"{c.tau_min}, tau_start={c.tau_start}")
        if not c.anneal_rate >= 0 or c.anneal_every < 1:
            raise ConfigError(f"anneal_rate must be >= 0 and anneal_every >= 1; got {c.anneal_rate}, "
                              f"{c.anneal_every}")
        # The VAE builds the likelihood and the networks for an N K-dimensional code; the encoder
        # then needs N K logits, not 2 N K Gaussian parameters.
        super().__init__(spec, dataclasses.replace(c, z_dim=c.latents * c.categories))
        self.config = c
        self.encoder[-1] = nn.Linear(self.encoder[-1].in_features, self.z_dim)

    # ------------------------------------------------------------------------ the posterior

    def temperature(self) -> float:
        """The current Gumbel-softmax temperature (module docstring)."""
        c = self.config
        t = int(self.step) // c.anneal_every * c.anneal_every
        return max(c.tau_min, c.tau_start * math.exp(-c.anneal_rate * t))

    def posterior_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi(x)``: the posterior's log-probabilities, ``(B, N, K)``."""
        c = self.config
        logits = self.encoder(self._input(x)).view(len(x), c.latents, c.categories)
        return torch.log_softmax(logits, -1)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x)`` as the mean of the one-hot code ``pi(x)`` and ``log pi(x)``, each
        ``(B, N K)``."""
        log_q = self.posterior_log_probs(x).flatten(1)
        return log_q.exp(), log_q

    def _draw(self, log_q: torch.Tensor, k: int, relaxed: bool) -> torch.Tensor:
        """``k`` draws per example for ``log_q (B, N, K)``: ``(k, B, N, K)``, Gumbel-softmax
        relaxed (``hard``: straight-through) or exact one-hot."""
        logits = log_q.expand(k, *log_q.shape).contiguous()
        if relaxed:
            return F.gumbel_softmax(logits, tau=self.temperature(), hard=self.config.hard, dim=-1)
        return F.one_hot(sample_categorical(logits), self.config.categories).to(log_q.dtype)

    # ------------------------------------------------------------------------------ hooks

    def draw_posterior(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` codes per example and ``sum_n z_n . log pi_n``: ``(k, B, N K)`` and ``(k, B)``.

        Training with gradients on: relaxed samples (the sum extends ``log q`` linearly off the
        vertices). Otherwise exact one-hot ``z ~ q(z | x)`` and the exact ``log q(z | x)``."""
        log_q = self.posterior_log_probs(x)
        z = self._draw(log_q, k, relaxed=self.training and torch.is_grad_enabled())
        return z.flatten(2), (z * log_q).sum((-2, -1))

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z) = -N log K`` (uniform) for one-hot codes ``(..., N K)``: ``(...)``."""
        c = self.config
        return torch.full(z.shape[:-1], -c.latents * math.log(c.categories), device=z.device)

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` one-hot codes of uniform categories, ``(n, N K)``; ``temperature = 0``: all
        category 0."""
        c = self.config
        if temperature == 0:
            idx = torch.zeros(n, c.latents, dtype=torch.long, device=self.device)
        else:
            idx = torch.randint(0, c.categories, (n, c.latents), device=self.device)
        return F.one_hot(idx, c.categories).flatten(1).float()

    # --------------------------------------------------------------------------- training

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Minus the (relaxed, in training mode) ELBO in nats/dim (module docstring)."""
        c = self.config
        x = batch["x"]
        self.check_input(x)
        x = x.to(self.device)
        tau = self.temperature()
        log_q = self.posterior_log_probs(x)  # (B, N, K)
        z = self._draw(log_q, 1, relaxed=self.training)[0]
        log_px_z = self.decoder_log_prob(x, z.flatten(1))
        kl_j = (log_q.exp() * log_q).sum(-1) + math.log(c.categories)  # (B, N)
        log_px_z = log_px_z[None]  # (k = 1, B)
        return {**self.training_terms(log_px_z, log_px_z, {"kl": kl_j}), "tau": torch.tensor(tau)}
