"""Flow matching with the straight (optimal-transport) path; rectified flow (Lipman et al. 2023;
Liu, Gong & Liu 2023).

A velocity field ``v(x, t)`` carries noise ``x_0 ~ N(0, I)`` at ``t = 0`` to data at ``t = 1``
along the ODE ``dx/dt = v(x, t)``. Conditional flow matching regresses it on the velocity of a
path between one noise draw and one example,

    x_t = (1 - (1 - sigma_min) t) x_0 + t x_1,    u_t = x_1 - (1 - sigma_min) x_0,
    L = E_{t ~ U(0, 1), x_0, x_1} || v(x_t, t) - u_t ||^2,

whose minimiser is the marginal velocity ``E[u_t | x_t]``: its ODE moves the noise distribution
to the data distribution (straight lines per pair; ``sigma_min = 0`` is rectified flow). Batches
that hold a ``noise`` partner for each example (``reflow:RUN``, :mod:`unsup.train.reflow`) pair
each example with it instead of independent noise: reflow. Discrete
data are dequantised, ``x_1 = u(x) + (w - 1/2) 2 / (L - 1)``, ``w ~ U(0, 1)^D``: each level a bin
of the unit scale (:mod:`unsup.models.scaling`).

**Sampling** integrates the ODE from noise in ``steps`` uniform steps: ``euler`` (one network
evaluation a step) or ``heun`` (two: Euler's predictor, then the trapezoid rule).

**Likelihood** (the instantaneous change of variables, Chen et al. 2018):

    log p_1(x) = log N(x(0); 0, I) - int_0^1 div v(x(t), t) dt,

integrating from the example at ``t = 1`` back to ``t = 0`` with torchdiffeq's adaptive solver
(``ode_method``, relative and absolute tolerance ``ode_tolerance``; a fixed-grid method such as
``rk4`` takes ``ode_steps`` steps instead, cheaper and coarser), the divergence by
Hutchinson's estimator ``eps^T (dv/dx) eps`` with one Rademacher ``eps`` per solve (FFJORD,
Grathwohl et al. 2019; data of at most 8 dimensions get the exact divergence, one backward pass
per dimension). The estimate is unbiased for the dequantised density up to the solver's
error; for discrete data ``log P(x) >= E_w[log p_1(x_1)] + D log(2 / (L - 1))`` makes it an estimate
of a lower bound. ``log_prob_with_se`` averages ``likelihood_repeats`` independent estimates (their
own ``eps`` and ``w``) and reports their standard error, so the figure is stated as an estimate
with its spread. Validation uses one estimate from a fixed 8-step RK4 solve (cheaper, noisier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, LikelihoodModel
from unsup.models.diffusion.base import NoiseConditional
from unsup.models.diffusion.nets import DenoiserConfig

SAMPLERS = ("euler", "heun")
EXACT_DIVERGENCE_DIMS = 8  # data of at most this many dimensions get the exact divergence


@dataclass
class FlowMatchingConfig(DenoiserConfig):
    """Options of :class:`FlowMatching` (module docstring), besides the network's.

    Attributes:
        sigma_min: width of the conditional path at the data (0: rectified flow).
        sampler: ``euler`` or ``heun``.
        sample_steps: ODE steps of ``sample`` (Heun: two network evaluations each).
        guidance: classifier-free guidance weight for conditional models (1: none).
        ode_method: torchdiffeq method of the likelihood's ODE solve (``dopri5``, ``rk4``, ...).
        ode_tolerance: its relative and absolute tolerance (adaptive methods).
        ode_steps: its steps from ``t = 1`` to ``0`` (fixed-grid methods: ``rk4``, ``euler``, ...).
        likelihood_repeats: independent estimates averaged per example (at least 2 give a
            standard error).
    """

    sigma_min: float = 0.0
    sampler: str = field(default="heun", metadata={"choices": SAMPLERS})
    sample_steps: int = 25
    guidance: float = 1.0
    ode_method: str = "dopri5"
    ode_tolerance: float = 1e-4
    ode_steps: int = 8
    likelihood_repeats: int = 2


PRESETS = {
    # Lipman et al. 2023, CIFAR-10: the DDPM U-Net (their reported 2.99 bits/dim), sigma_min 1e-4,
    # an adaptive solver for sampling too (here: Heun with 100 steps)
    "paper": {"hidden": 128, "mults": [1, 2, 2, 2], "res_blocks": 2, "attention": [16],
              "dropout": 0.1, "sigma_min": 1e-4, "sample_steps": 100, "ode_tolerance": 1e-5},
}


def divergence(f: torch.Tensor, x: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
    """``div f`` at ``x`` per example, ``(B,)``: Hutchinson's ``probe^T (df/dx) probe`` or, with
    ``probe`` None, exactly (one backward pass per dimension; small data)."""
    if probe is not None:
        (g,) = torch.autograd.grad(f, x, probe, create_graph=False)
        return (g * probe).flatten(1).sum(1)
    flat = f.flatten(1)
    total = torch.zeros(len(x), device=x.device, dtype=f.dtype)
    for d in range(flat.shape[1]):
        (g,) = torch.autograd.grad(flat[:, d].sum(), x, retain_graph=True)
        total = total + g.flatten(1)[:, d]
    return total


@register("flow-matching", "flow matching / rectified flow: a velocity field regressed on straight "
          "noise-to-data paths, sampled by Euler or Heun; likelihood by the probability-flow ODE",
          presets=PRESETS)
class FlowMatching(NoiseConditional, LikelihoodModel):
    """Conditional flow matching (module docstring)."""

    Config = FlowMatchingConfig
    exact_likelihood = False
    inexact_kind = "estimate"  # of the dequantised density: for discrete data, of a lower bound
    sampling_options = ("sampler", "steps", "guidance")
    estimator_options = ("ode_method", "ode_tolerance", "ode_steps", "likelihood_repeats")

    def __init__(self, spec: DataSpec, config: FlowMatchingConfig) -> None:
        if config.sampler not in SAMPLERS:
            raise ConfigError(f"flow-matching: unknown sampler {config.sampler!r}; choose "
                              f"{' or '.join(SAMPLERS)}")
        if not 0 <= config.sigma_min < 1 or config.sample_steps < 1:
            raise ConfigError(f"flow-matching: sigma_min must be in [0, 1) and sample_steps >= 1 "
                              f"(got {config.sigma_min}, {config.sample_steps})")
        super().__init__(spec, config)
        self.check_estimator()

    def check_estimator(self) -> None:
        from torchdiffeq._impl.odeint import SOLVERS

        c = self.config
        if c.ode_method not in SOLVERS or c.ode_tolerance <= 0 or min(c.ode_steps, c.likelihood_repeats) < 1:
            raise ConfigError(f"flow-matching: ode_method must be a torchdiffeq solver "
                              f"({', '.join(sorted(SOLVERS))}), ode_tolerance > 0, ode_steps and "
                              f"likelihood_repeats >= 1 (got {c.ode_method!r}, {c.ode_tolerance}, "
                              f"{c.ode_steps}, {c.likelihood_repeats})")

    def clean_time(self) -> float:
        """The data end of the path, ``t = 1``."""
        return 1.0

    def data_point(self, x: torch.Tensor) -> torch.Tensor:
        """Data in the unit scale, dequantised by uniform noise within its level's bin."""
        u = self.to_unit(x)
        if self.spec.levels is None:
            return u
        return u + (torch.rand_like(u) - 0.5) * (2 / (self.spec.levels - 1))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        x1 = self.data_point(x)
        x0 = batch["noise"].to(x1) if "noise" in batch else torch.randn_like(x1)  # reflow's pairs
        t = torch.rand(len(x1), device=x1.device)
        tt = t.view(-1, *([1] * (x1.dim() - 1)))
        a = 1 - self.config.sigma_min
        xt = (1 - a * tt) * x0 + tt * x1
        v = self.net(xt, t, self.training_labels(batch.get("y"), len(x)))
        return {"loss": (v - (x1 - a * x0)).pow(2).mean()}

    # ------------------------------------------------------------------ sampling

    def draw(self, n: int, y: torch.Tensor | None, temperature: float,
             record: list[torch.Tensor] | None = None, **options: Any) -> torch.Tensor:
        x = torch.randn(n, *self.spec.shape, device=self.device) * temperature
        return self.draw_from(x, y, record, **options)

    def draw_from(self, x: torch.Tensor, y: torch.Tensor | None = None,
                  record: list[torch.Tensor] | None = None, **options: Any) -> torch.Tensor:
        """The ODE's solution at ``t = 1`` from the noise ``x`` at ``t = 0`` (unit scale)."""
        sampler = options.get("sampler", self.config.sampler)
        steps = int(options.get("steps", self.config.sample_steps))
        guidance = float(options.get("guidance", self.config.guidance))
        if sampler not in SAMPLERS:
            raise ConfigError(f"flow-matching: unknown sampler {sampler!r}; choose {' or '.join(SAMPLERS)}")
        if steps < 1:
            raise ConfigError(f"flow-matching: steps must be at least 1, got {steps}")
        n = len(x)

        def v(x: torch.Tensor, t: float) -> torch.Tensor:
            return self.predict(x, torch.full((n,), t, device=x.device), y, guidance)

        if record is not None:
            record.append(x.detach().cpu())
        h = 1.0 / steps
        for k in range(steps):
            t = k * h
            d = v(x, t)
            if sampler == "heun":
                d = 0.5 * (d + v(x + h * d, t + h))
            x = x + h * d
            if record is not None:
                record.append(x.detach().cpu())
        return x

    # ------------------------------------------------------------------ likelihood

    def ode_log_prob(self, x: torch.Tensor, y: torch.Tensor | None, method: str,
                     tolerance: float, step: float | None = None) -> torch.Tensor:
        """One estimate of ``log p(x)`` (nats, ``(B,)``, module docstring): a dequantisation draw,
        a Rademacher probe, one solve of the ODE back from the data."""
        from torchdiffeq import odeint

        self.check_input(x)
        x1 = self.data_point(x.to(self.device))
        y = self.labels(y, len(x))
        probe = (torch.randint(0, 2, x1.shape, device=x1.device).to(x1.dtype) * 2 - 1
                 if self.spec.dims > EXACT_DIVERGENCE_DIMS else None)
        n = len(x1)

        def dynamics(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
            z = state[0].detach().requires_grad_(True)
            with torch.enable_grad():
                v = self.net(z, t.expand(n).to(z.dtype), y)
                div = divergence(v, z, probe)
            return v.detach(), div.detach()

        options = {"step_size": step} if step is not None else None
        zs, divs = odeint(dynamics, (x1, torch.zeros(n, device=x1.device, dtype=x1.dtype)),
                          torch.tensor([1.0, 0.0], device=x1.device, dtype=x1.dtype),
                          rtol=tolerance, atol=tolerance, method=method, options=options)
        z0, integral = zs[-1], divs[-1]  # integral = int_1^0 div dt = -int_0^1 div dt
        d = self.spec.dims
        log_p = -0.5 * (z0.flatten(1).pow(2).sum(1) + d * math.log(2 * math.pi)) + integral
        if self.spec.levels is None:
            return log_p + self.log_det_to_unit()
        return log_p + d * math.log(2 / (self.spec.levels - 1))

    @torch.no_grad()
    def log_prob_with_se(self, x: torch.Tensor, y: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of ``likelihood_repeats`` estimates of ``log p(x)`` and its standard error
        (NaN from a single estimate)."""
        from torchdiffeq._impl.odeint import SOLVERS
        from torchdiffeq._impl.solvers import FixedGridODESolver

        c = self.config
        step = 1 / c.ode_steps if issubclass(SOLVERS[c.ode_method], FixedGridODESolver) else None
        draws = torch.stack([self.ode_log_prob(x, y, c.ode_method, c.ode_tolerance, step)
                             for _ in range(c.likelihood_repeats)])
        se = (draws.std(0) / math.sqrt(len(draws)) if len(draws) > 1
              else torch.full_like(draws[0], math.nan))
        return draws.mean(0), se

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_prob_with_se(x, y)[0]

    @torch.no_grad()
    def validation_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.ode_log_prob(x, y, "rk4", self.config.ode_tolerance, step=1 / 8)
