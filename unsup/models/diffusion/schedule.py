"""The forward (noising) process of a discrete-time diffusion model and its Gaussian algebra.

With ``T`` steps and variances ``beta_1 .. beta_T``, ``alpha_t = 1 - beta_t`` and
``abar_t = prod_{s <= t} alpha_s``, the forward process and its marginals are

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I),
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I),

and the posterior of one step back, given the clean data, is Gaussian too (Ho et al. 2020, eq. 7):

    q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, btilde_t I),
    c0_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t),  ct_t = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t),
    btilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t).

Schedules: ``linear`` (Ho et al.: ``beta`` from 1e-4 to 0.02 at ``T = 1000``, scaled by
``1000 / T`` for other ``T``) and ``cosine`` (Nichol & Dhariwal 2021: ``abar_t = f(t) / f(0)``,
``f(t) = cos^2((t / T + s) / (1 + s) pi / 2)``, ``s = 0.008``, each ``beta`` clipped at 0.999).

Index ``i`` of the tensors here is step ``t = i + 1`` of the papers; ``abar`` of "step 0" (the
data) is 1. Everything is kept in float64 and cast where it is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unsup.errors import ConfigError

SCHEDULES = ("cosine", "linear")


def betas(schedule: str, steps: int) -> torch.Tensor:
    """The ``steps`` variances ``beta_t`` of ``schedule``, float64."""
    if steps < 1:
        raise ConfigError(f"diffusion: timesteps must be at least 1, got {steps}")
    if schedule == "linear":
        scale = 1000 / steps
        return torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), steps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ConfigError(f"diffusion: unknown noise schedule {schedule!r}; choose {' or '.join(SCHEDULES)}")


class NoiseSchedule(nn.Module):
    """The tensors of a schedule (module docstring), as non-persistent float64 buffers that move
    with the model; :meth:`at` gathers them for a batch of step indices."""

    def __init__(self, schedule: str, steps: int) -> None:
        super().__init__()
        beta = betas(schedule, steps)
        abar = torch.cumprod(1 - beta, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        btilde = beta * (1 - abar_prev) / (1 - abar)
        buffers = {
            "beta": beta, "abar": abar, "abar_prev": abar_prev, "btilde": btilde,
            "c0": abar_prev.sqrt() * beta / (1 - abar),
            "ct": (1 - beta).sqrt() * (1 - abar_prev) / (1 - abar),
            # btilde_1 = 0: the variance of the last step (the decoder) is taken from step 2, as in
            # Nichol & Dhariwal's "clipped" log-variance; fixed-large uses beta_t from step 2 on
            "log_small": torch.cat([btilde[1:2], btilde[1:]]).log() if steps > 1 else beta.log(),
            "log_large": torch.cat([btilde[1:2], beta[1:]]).log() if steps > 1 else beta.log(),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        self.steps = steps

    def at(self, name: str, i: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``name[i]`` for step indices ``i`` ``(B,)``, shaped to broadcast against ``like``
        ``(B, ...)`` and in its dtype."""
        v = getattr(self, name)[i].to(like.dtype)
        return v.view(-1, *([1] * (like.dim() - 1)))

    def noise(self, x0: torch.Tensor, i: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """A draw of ``x_t ~ q(x_t | x_0)`` for noise ``eps``."""
        abar = self.at("abar", i, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps
