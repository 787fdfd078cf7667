"""Samplers of a discrete-time diffusion model, interchangeable on one trained network.

Each takes ``denoise(x, i) -> (x0, eps, v)``: the model's prediction of the clean data and of the
noise at step index ``i`` (:mod:`~unsup.models.diffusion.schedule`), and ``v``, its learned-variance
output in ``[-1, 1]`` (``None`` for fixed variances). With ``S`` steps they visit the "trailing"
timesteps ``round(T - k T / S) - 1``, ``k = 0 .. S-1`` (Lin et al. 2024: the first step starts at
the last, noisiest step ``T``), and end at the data (``abar = 1``). ``S = T`` visits every step.

* ``ancestral`` (Ho et al. 2020; respaced by Nichol & Dhariwal 2021 for ``S < T``): from step
  ``t`` to the next visited step ``s``, with ``beta' = 1 - abar_t / abar_s``, draw from
  ``N(c0' x0 + ct' x_t, sigma'^2)``, the posterior of the two-step process (fixed-small
  ``sigma'^2 = beta' (1 - abar_s) / (1 - abar_t)``, fixed-large ``beta'``, or the learned
  interpolation ``exp(f log beta' + (1 - f) log btilde')``, ``f = (v + 1) / 2``); no noise on the
  last step.
* ``ddim`` (Song, Meng & Ermon 2021): ``x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps +
  sigma z`` with ``sigma = eta sqrt(btilde')``. ``eta = 0`` is deterministic (the probability-flow
  ODE's DDIM discretisation); ``eta = 1`` is the ancestral sampler with fixed-small variances --
  algebraically, step by step, when ``eps`` is recomputed from the clipped ``x0`` as here.
* ``dpm-solver`` (DPM-Solver++(2M), Lu et al. 2022): the probability-flow ODE in
  ``lambda = log(alpha / sigma)`` (``alpha = sqrt(abar)``, ``sigma = sqrt(1 - abar)``), solved with
  the data prediction: ``x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D``, ``h = lambda_t -
  lambda_s``, ``D = x0_s`` on the first and last steps and ``x0_s + (x0_s - x0_r) / (2 r)``, ``r =
  h_prev / h``, in between (second order from the previous step's prediction). The last step
  lands on ``sigma = 0``, where it returns ``D``.

``clip`` clamps ``x0`` to ``[-1, 1]`` (bounded data); ``temperature`` scales the noise drawn.
``record`` (a list) receives every state of the chain, the starting noise first.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from unsup.errors import ConfigError
from unsup.models.diffusion.schedule import NoiseSchedule

SAMPLERS = ("ancestral", "ddim", "dpm-solver")
Denoise = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


def timesteps(total: int, steps: int) -> list[int]:
    """The ``steps`` step indices visited, noisiest first ("trailing" spacing)."""
    if not 1 <= steps <= total:
        raise ConfigError(f"sampling steps must be in [1, {total}] (the model's timesteps), got {steps}")
    ratio = total / steps
    return [round(total - k * ratio) - 1 for k in range(steps)]


def _abar(schedule: NoiseSchedule, i: int) -> float:
    return 1.0 if i < 0 else float(schedule.abar[i])


def _moves(schedule: NoiseSchedule, steps: int):
    """Each move of a ``steps``-step chain: ``(i, abar_t, abar_s, last)``, from step index ``i``
    to the next visited step ``s`` (the data, ``abar_s = 1``, on the ``last`` move)."""
    visit = timesteps(schedule.steps, steps)
    for k, i in enumerate(visit):
        s = visit[k + 1] if k + 1 < len(visit) else -1
        yield i, _abar(schedule, i), _abar(schedule, s), s < 0


def _clean(x0: torch.Tensor, eps: torch.Tensor, x: torch.Tensor, abar: float, clip: bool
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0`` clipped to ``[-1, 1]`` and the noise recomputed from it (when ``clip``)."""
    if not clip:
        return x0, eps
    x0 = x0.clamp(-1, 1)
    return x0, (x - abar ** 0.5 * x0) / (1 - abar) ** 0.5


def ancestral(denoise: Denoise, schedule: NoiseSchedule, x: torch.Tensor, steps: int,
              variance: str = "fixed-small", temperature: float = 1.0, clip: bool = False,
              record: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Ancestral sampling (module docstring) from noise ``x``."""
    _keep(record, x)
    for i, a_t, a_s, last in _moves(schedule, steps):
        x0, eps, v = denoise(x, i)
        x0, _ = _clean(x0, eps, x, a_t, clip)
        beta = 1 - a_t / a_s
        mean = (a_s ** 0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_s) / (1 - a_t)) * x
        if last:
            x = mean
        else:
            small = beta * (1 - a_s) / (1 - a_t)
            if v is not None:
                f = (v + 1) / 2
                std = torch.exp(0.5 * (f * math.log(beta) + (1 - f) * math.log(small)))
            elif variance == "fixed-large":
                std = beta ** 0.5
            else:
                std = small ** 0.5
            x = mean + std * temperature * torch.randn_like(x)
        _keep(record, x)
    return x


def ddim(denoise: Denoise, schedule: NoiseSchedule, x: torch.Tensor, steps: int, eta: float = 0.0,
         temperature: float = 1.0, clip: bool = False,
         record: list[torch.Tensor] | None = None) -> torch.Tensor:
    """DDIM sampling (module docstring) from noise ``x``."""
    if not 0 <= eta <= 1:
        raise ConfigError(f"ddim: eta must be in [0, 1], got {eta}")
    _keep(record, x)
    for i, a_t, a_s, _ in _moves(schedule, steps):
        x0, eps, _ = denoise(x, i)
        x0, eps = _clean(x0, eps, x, a_t, clip)
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) ** 0.5
        x = a_s ** 0.5 * x0 + max(1 - a_s - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * temperature * torch.randn_like(x)
        _keep(record, x)
    return x


def dpm_solver(denoise: Denoise, schedule: NoiseSchedule, x: torch.Tensor, steps: int,
               clip: bool = False, record: list[torch.Tensor] | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (module docstring) from noise ``x``."""
    _keep(record, x)
    previous: tuple[torch.Tensor, float] | None = None  # (x0 of the last step, its h)
    for i, a_t, a_s, last in _moves(schedule, steps):
        x0, eps, _ = denoise(x, i)
        x0, _ = _clean(x0, eps, x, a_t, clip)
        if last:  # sigma = 0: the ODE's end point is the data prediction
            x = x0
        else:
            h = 0.5 * (math.log(a_s / (1 - a_s)) - math.log(a_t / (1 - a_t)))  # lambda_s - lambda_t
            d = x0
            if previous is not None:
                r = previous[1] / h
                d = x0 + (x0 - previous[0]) / (2 * r)
            x = ((1 - a_s) / (1 - a_t)) ** 0.5 * x - a_s ** 0.5 * math.expm1(-h) * d
            previous = (x0, h)
        _keep(record, x)
    return x


def _keep(record: list[torch.Tensor] | None, x: torch.Tensor) -> None:
    if record is not None:
        record.append(x.detach().cpu())
