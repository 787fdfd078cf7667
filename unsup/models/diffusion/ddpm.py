"""Denoising diffusion probabilistic model (Ho, Jain & Abbeel 2020; Nichol & Dhariwal 2021).

The forward process (:mod:`~unsup.models.diffusion.schedule`) turns data ``x_0`` into noise in
``T`` Gaussian steps; the model learns the reverse steps ``p(x_{t-1} | x_t) = N(mu(x_t, t),
sigma_t^2 I)`` with one network that predicts, from ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t)
eps``, either the noise ``eps`` (``prediction eps``), the data ``x_0`` (``x0``) or the velocity
``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (``v``, Salimans & Ho 2022, the default). Each
determines the others given ``x_t``, and ``mu = c0_t x0_hat + ct_t x_t``, the posterior mean with
the prediction in place of the data. Training minimises the "simple" loss, the mean squared error of the
prediction at a uniformly drawn step. Why ``v`` by default: the data prediction from a noise
prediction, ``(x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)``, multiplies the network's error by
``1 / sqrt(abar_t)``; at the last step of the cosine schedule (``beta_T`` clipped at 0.999,
``abar_T = abar_{T-1} / 1000``) that error enters the posterior mean multiplied by
``sqrt(abar_{T-1} / abar_T) ~ 32``, so samples of unclipped (continuous) data blow up and the
bound's last term grows large; from ``v`` the data prediction is ``sqrt(abar_t) x_t -
sqrt(1 - abar_t) v_hat``, which amplifies nothing.

**The variational bound.** For data with ``L`` levels scaled to ``[-1, 1]`` (bins of width
``2 / (L - 1)``), every term counted,

    -log p(x_0) <= KL(q(x_T | x_0) || N(0, I))                          (L_T, the prior)
                   + sum_{t=2}^T KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))   (L_{t-1})
                   - log P(x_0 | x_1),                                   (L_0, the decoder)

where the decoder is the Gaussian ``N(mu(x_1, 1), sigma_1^2)`` integrated over each level's bin
(the edge bins extended to infinity), so the bound is of the *discrete* data and sits in the same
table as the flows' and autoregressive models' bits/dim. Continuous data get the Gaussian density
at ``t = 0`` and the standardisation's log-determinant. ``log_prob`` estimates the sum over ``t``
without bias from ``bound_steps`` steps, one drawn uniformly from each of as many equal strata of
``2 .. T`` (``L_T`` and ``L_0`` always computed exactly), with a conservative standard error (that
of unstratified draws); ``bound_steps 0`` (or ``>= T - 1``) sums every term. Each KL is between
Gaussians, in closed form, with ``x_t`` drawn from ``q(x_t | x_0)``.

**Variances.** ``fixed-small`` (``sigma_t^2 = btilde_t``), ``fixed-large`` (``beta_t``), or
``learned`` (Nichol & Dhariwal): the network outputs a second channel set ``v`` and ``log sigma_t^2
= f log beta_t + (1 - f) log btilde_t``, ``f = (v + 1) / 2``, trained by the hybrid loss
``L_simple + lambda T L_{t-1}`` (bits per dimension, the mean's gradient stopped in the bound
term; ``lambda = hybrid_weight``).

Sampling uses the interchangeable samplers of :mod:`~unsup.models.diffusion.samplers` (ancestral,
DDIM with any ``eta``, DPM-Solver++(2M)) with any number of steps, classifier-free guidance
(:mod:`~unsup.models.diffusion.base`) for a conditional model; train with ``--ema`` to sample from
the weights' moving average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import LN2, Batch, LikelihoodModel
from unsup.models.diffusion import samplers
from unsup.models.diffusion.base import NoiseConditional
from unsup.models.diffusion.nets import DenoiserConfig
from unsup.models.diffusion.schedule import SCHEDULES, NoiseSchedule
from unsup.nn.layers import log1mexp

PREDICTIONS = ("eps", "x0", "v")
VARIANCES = ("fixed-small", "fixed-large", "learned")
VALIDATION_BOUND_STEPS = 8  # strata of the bound estimated during training


@dataclass
class DDPMConfig(DenoiserConfig):
    """Options of :class:`DDPM` (module docstring), besides the network's.

    Attributes:
        timesteps: steps ``T`` of the forward process.
        noise_schedule: ``cosine`` or ``linear`` (:mod:`~unsup.models.diffusion.schedule`).
        prediction: what the network predicts: ``eps``, ``x0`` or ``v`` (the default: see below).
        variance: reverse-step variances: ``fixed-small``, ``fixed-large`` or ``learned``.
        hybrid_weight: weight ``lambda`` of the bound term with ``variance learned``.
        sampler: default sampler of ``sample``: ``ancestral``, ``ddim`` or ``dpm-solver``.
        sample_steps: default number of sampling steps (network evaluations; twice with guidance),
            at most ``timesteps``.
        eta: DDIM's noise, 0 (deterministic) to 1 (ancestral).
        guidance: classifier-free guidance weight for conditional models (1: none).
        clip_samples: clamp predicted data to ``[-1, 1]`` while sampling discrete data.
        bound_steps: steps drawn (one per stratum) to estimate the bound; 0: all ``T``.
    """

    timesteps: int = 1000
    noise_schedule: str = field(default="cosine", metadata={"choices": SCHEDULES})
    # v, not eps: at the cosine schedule's last step (beta clipped at 0.999) an eps-prediction's
    # error reaches x0_hat multiplied by sqrt(abar_{T-1} / abar_T) ~ 32 (results, section 11)
    prediction: str = field(default="v", metadata={"choices": PREDICTIONS})
    variance: str = field(default="fixed-small", metadata={"choices": VARIANCES})
    hybrid_weight: float = 0.001
    sampler: str = field(default="ddim", metadata={"choices": samplers.SAMPLERS})
    sample_steps: int = 50
    eta: float = 0.0
    guidance: float = 1.0
    clip_samples: bool = True
    bound_steps: int = 100


PRESETS = {
    # Ho et al. 2020, CIFAR-10: 35.7M parameters, T = 1000, linear betas, dropout 0.1
    "paper": {"hidden": 128, "mults": [1, 2, 2, 2], "res_blocks": 2, "attention": [16],
              "dropout": 0.1, "timesteps": 1000, "noise_schedule": "linear", "prediction": "eps",
              "variance": "fixed-large", "sampler": "ancestral", "sample_steps": 1000},
    # Nichol & Dhariwal 2021: cosine schedule, learned variances by the hybrid loss (their
    # CIFAR-10 network: 3 residual blocks, attention at 16 and 8)
    "improved": {"hidden": 128, "mults": [1, 2, 2, 2], "res_blocks": 3, "attention": [16, 8],
                 "dropout": 0.3, "timesteps": 4000, "noise_schedule": "cosine", "variance": "learned",
                 "prediction": "eps",
                 "sampler": "ancestral", "sample_steps": 1000},
}


def discretised_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                                  levels: int) -> torch.Tensor:
    """``log P(x)`` of levels ``x`` in ``[-1, 1]`` under ``N(mean, exp(logvar))`` integrated over
    each level's bin of half-width ``1 / (L - 1)``, the edge bins reaching to infinity;
    elementwise."""
    half = 1.0 / (levels - 1)
    inv = torch.exp(-0.5 * logvar)
    hi, lo = (x - mean + half) * inv, (x - mean - half) * inv
    log_hi, log_sf_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(-lo)
    # log(Phi(hi) - Phi(lo)) from whichever tail is accurate: the lower one when lo < 0
    lower_tail = log_hi + log1mexp((log_hi - torch.special.log_ndtr(lo)).clamp_min(1e-30))
    upper_tail = log_sf_lo + log1mexp((log_sf_lo - torch.special.log_ndtr(-hi)).clamp_min(1e-30))
    mid = torch.where(lo < 0, lower_tail, upper_tail)
    return torch.where(x < -1 + half, log_hi, torch.where(x > 1 - half, log_sf_lo, mid))


def gaussian_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor,
                logvar2: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean1, e^logvar1) || N(mean2, e^logvar2))``, elementwise."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1)


@register("ddpm", "denoising diffusion probabilistic model: a U-Net that removes Gaussian noise "
          "step by step; variational bound in bits/dim; ancestral, DDIM and DPM-Solver sampling",
          presets=PRESETS)
class DDPM(NoiseConditional, LikelihoodModel):
    """DDPM (module docstring)."""

    Config = DDPMConfig
    exact_likelihood = False
    sampling_options = ("sampler", "steps", "eta", "guidance")

    def __init__(self, spec: DataSpec, config: DDPMConfig) -> None:
        for name, value, choices in (("prediction", config.prediction, PREDICTIONS),
                                     ("variance", config.variance, VARIANCES),
                                     ("sampler", config.sampler, samplers.SAMPLERS)):
            if value not in choices:
                raise ConfigError(f"ddpm: unknown {name} {value!r}; choose one of {', '.join(choices)}")
        if config.bound_steps < 0 or config.hybrid_weight < 0:
            raise ConfigError(f"ddpm: bound_steps and hybrid_weight must be >= 0, got "
                              f"{config.bound_steps}, {config.hybrid_weight}")
        super().__init__(spec, config, out_factor=2 if config.variance == "learned" else 1)
        self.schedule = NoiseSchedule(config.noise_schedule, config.timesteps)
        if config.sample_steps < 1:
            raise ConfigError(f"ddpm: sample_steps must be at least 1, got {config.sample_steps}")

    # ------------------------------------------------------------------ the network's predictions

    def clean_time(self) -> float:
        """The first step's time, ``1 / T``."""
        return 1.0 / self.config.timesteps

    def time(self, i: torch.Tensor) -> torch.Tensor:
        """Step indices ``i`` as the network's time ``(i + 1) / T`` in ``(0, 1]``."""
        return (i.float() + 1) / self.config.timesteps

    def split(self, out: torch.Tensor, x: torch.Tensor, i: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The network's output at ``x = x_t`` as ``(x0_hat, eps_hat, v)`` (``v``: the learned
        variance's output, or None)."""
        c = self.spec.shape[0]
        raw, v = (out[:, :c], out[:, c:]) if self.out_factor == 2 else (out, None)
        abar = self.schedule.at("abar", i, x)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        p = self.config.prediction
        if p == "eps":
            return (x - s * raw) / a, raw, v
        if p == "x0":
            return raw, (x - a * raw) / s, v
        return a * x - s * raw, s * x + a * raw, v

    def target(self, x0: torch.Tensor, eps: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        p = self.config.prediction
        if p == "eps":
            return eps
        if p == "x0":
            return x0
        abar = self.schedule.at("abar", i, x0)
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0

    def logvar(self, i: torch.Tensor, v: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """``log sigma_t^2`` of the reverse step from step index ``i``."""
        if v is not None:
            f = (v + 1) / 2
            return (f * self.schedule.at("beta", i, like).log()
                    + (1 - f) * self.schedule.at("log_small", i, like))
        name = "log_large" if self.config.variance == "fixed-large" else "log_small"
        return self.schedule.at(name, i, like).expand_as(like)

    # ------------------------------------------------------------------ training and the bound

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        x0 = self.to_unit(x)
        i = torch.randint(0, self.config.timesteps, (len(x),), device=x0.device)
        eps = torch.randn_like(x0)
        xt = self.schedule.noise(x0, i, eps)
        out = self.net(xt, self.time(i), self.training_labels(batch.get("y"), len(x)))
        c = self.spec.shape[0]
        mse = (out[:, :c] - self.target(x0, eps, i)).pow(2).mean()
        if self.out_factor == 1:
            return {"loss": mse}
        # the bound term trains the variance only: the mean's gradient is stopped
        frozen = torch.cat([out[:, :c].detach(), out[:, c:]], 1)
        vb = self.step_term(x0, xt, i, frozen).mean() / (self.spec.dims * LN2)
        loss = mse + self.config.hybrid_weight * self.config.timesteps * vb
        return {"loss": loss, "mse": mse.detach(), "vb_bpd": vb.detach()}

    def step_term(self, x0: torch.Tensor, xt: torch.Tensor, i: torch.Tensor,
                  out: torch.Tensor) -> torch.Tensor:
        """Per example, nats: ``L_{t-1}`` (the KL of step index ``i >= 1``) or the decoder's
        ``L_0`` (``i = 0``), for the network output ``out`` at ``xt``."""
        x0_hat, _, v = self.split(out, xt, i)
        c0, ct = self.schedule.at("c0", i, xt), self.schedule.at("ct", i, xt)
        mean, logvar = c0 * x0_hat + ct * xt, self.logvar(i, v, xt)
        post_mean = c0 * x0 + ct * xt
        post_logvar = self.schedule.at("btilde", i, xt).clamp_min(1e-20).log()
        kl = gaussian_kl(post_mean, post_logvar, mean, logvar).flatten(1).sum(1)
        levels = self.spec.levels
        if levels is not None:
            decoder = -discretised_gaussian_log_prob(x0, mean, logvar, levels)
        else:
            decoder = 0.5 * (math.log(2 * math.pi) + logvar + (x0 - mean) ** 2 * torch.exp(-logvar))
        return torch.where(i == 0, decoder.flatten(1).sum(1), kl)

    def prior_term(self, x0: torch.Tensor) -> torch.Tensor:
        """``L_T = KL(q(x_T | x_0) || N(0, I))`` per example, nats."""
        last = torch.full((len(x0),), self.config.timesteps - 1, device=x0.device)
        abar = self.schedule.at("abar", last, x0)
        zero = torch.zeros_like(x0)
        return gaussian_kl(abar.sqrt() * x0, (1 - abar).log().expand_as(x0), zero, zero).flatten(1).sum(1)

    def term_at(self, x0: torch.Tensor, i: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The term of step indices ``i`` with ``x_t`` drawn from ``q(x_t | x_0)``, ``(B,)``."""
        xt = self.schedule.noise(x0, i, torch.randn_like(x0))
        return self.step_term(x0, xt, i, self.net(xt, self.time(i), y))

    @torch.no_grad()
    def bound_terms(self, x: torch.Tensor, y: torch.Tensor | None, steps: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L_T + L_0, weighted draws (B, K) of the KL terms, whether the draws are all of
        them)``, nats, for ``steps`` strata (module docstring)."""
        self.check_input(x)
        x0 = self.to_unit(x.to(self.device))
        y = self.labels(y, len(x))
        b, total = len(x0), self.config.timesteps
        fixed = self.prior_term(x0) + self.term_at(x0, torch.zeros(b, dtype=torch.long, device=x0.device), y)
        if total == 1:
            return fixed, x0.new_zeros(b, 0), torch.tensor(True)
        every = steps == 0 or steps >= total - 1
        if every:
            edges = list(range(1, total + 1))
        else:
            edges = sorted({round(1 + k * (total - 1) / steps) for k in range(steps + 1)})
        draws = []
        for lo, hi in zip(edges, edges[1:], strict=False):
            i = torch.randint(lo, hi, (b,), device=x0.device)
            draws.append((hi - lo) * self.term_at(x0, i, y))
        return fixed, torch.stack(draws, 1), torch.tensor(every)

    def bound(self, x: torch.Tensor, y: torch.Tensor | None = None, steps: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The bound estimate of ``-log p(x)`` in nats ``(B,)`` and its standard error (None when
        every term is summed)."""
        fixed, draws, every = self.bound_terms(x, y, self.config.bound_steps if steps is None else steps)
        nll = fixed + draws.sum(1)
        if self.spec.levels is None:
            nll = nll - self.log_det_to_unit()
        if bool(every):
            return nll, None
        k = draws.shape[1]
        return nll, (draws.var(1) * k).sqrt() if k > 1 else torch.full_like(nll, math.nan)

    def log_prob_with_se(self, x: torch.Tensor, y: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The variational bound on ``log p(x)`` (an estimate of it, with its standard error,
        unless every term is summed)."""
        nll, se = self.bound(x, y)
        return -nll, se

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_prob_with_se(x, y)[0]

    def validation_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return -self.bound(x, y, min(self.config.bound_steps or VALIDATION_BOUND_STEPS,
                                     VALIDATION_BOUND_STEPS))[0]

    # ------------------------------------------------------------------ sampling

    def draw(self, n: int, y: torch.Tensor | None, temperature: float,
             record: list[torch.Tensor] | None = None, **options: Any) -> torch.Tensor:
        c = self.config
        sampler = options.get("sampler", c.sampler)
        steps = int(options.get("steps", min(c.sample_steps, c.timesteps)))
        guidance = float(options.get("guidance", c.guidance))
        eta = float(options.get("eta", c.eta))
        if sampler not in samplers.SAMPLERS:
            raise ConfigError(f"ddpm: unknown sampler {sampler!r}; choose one of "
                              f"{', '.join(samplers.SAMPLERS)}")
        x = torch.randn(n, *self.spec.shape, device=self.device) * temperature

        def denoise(xt: torch.Tensor, i: int):
            steps_i = torch.full((len(xt),), i, device=xt.device, dtype=torch.long)
            return self.split(self.predict(xt, self.time(steps_i), y, guidance), xt, steps_i)

        clip = c.clip_samples and self.spec.levels is not None
        if sampler == "ancestral":
            return samplers.ancestral(denoise, self.schedule, x, steps, c.variance, temperature,
                                      clip, record)
        if sampler == "ddim":
            return samplers.ddim(denoise, self.schedule, x, steps, eta, temperature, clip, record)
        return samplers.dpm_solver(denoise, self.schedule, x, steps, clip, record)
