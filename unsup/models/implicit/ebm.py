"""Energy-based model trained by contrastive divergence with short-run Langevin dynamics.

The model is an energy ``E(x)`` (a network with one output), and ``p(x) = exp(-E(x)) / Z`` with an
intractable ``Z``. The gradient of the log-likelihood needs samples of the model itself:

    grad_theta log p(x) = -grad_theta E(x) + E_{x- ~ p} grad_theta E(x-),

so training minimises ``E(x+) - E(x-)`` on data ``x+`` and model samples ``x-`` (contrastive
divergence), plus ``alpha (E(x+)^2 + E(x-)^2)`` to keep the energies near 0 (Du & Mordatch
2019). The samples come from ``K`` steps of Langevin dynamics,

    x_{k+1} = x_k - step_size * grad_x E(x_k) + noise * N(0, I),

with the step and the noise decoupled as in that paper (the exact Langevin choice is
``noise = sqrt(2 step_size)``), each chain starting from a *replay buffer* of earlier chains' ends
(with probability ``1 - reinit``) or from noise: short runs that together walk far. Discrete data
live in ``[-1, 1]`` (:mod:`~unsup.models.implicit.base`) and the chains are clamped to it.

Sampling runs ``sample_steps`` Langevin steps from noise (``sample_from noise``; the honest test
of the learned energy) or from the buffer. Validation reports the unbiased MMD^2 between a
validation batch and as many buffer samples (the model's persistent chains), and the energies of
both. Divergence -- energies beyond ``max_energy`` or not finite, the usual failure when the
sampler stops reaching the data's energy -- raises :class:`~unsup.errors.TrainingDiverged` with
the energies seen, which ``--on-divergence rollback`` answers like any other divergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError, TrainingDiverged
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.implicit.base import ImplicitModel, check_options
from unsup.models.implicit.nets import ARCHS, Discriminator, resolve_arch
from unsup.nn.mmd import mmd2


@dataclass
class EBMConfig:
    """Options of :class:`EBM` (see the module docstring).

    Attributes:
        alpha: weight of the energy-magnitude regulariser.
        langevin_steps: Langevin steps per training batch.
        step_size: gradient step of the Langevin dynamics.
        noise: standard deviation of its noise per step.
        buffer_size: chains kept in the replay buffer (0: every chain starts from noise).
        reinit: share of chains started from noise instead of the buffer.
        sample_steps: Langevin steps of ``sample`` (and ``unsup sample``).
        sample_from: where ``sample`` starts its chains: ``noise`` or ``buffer``.
        max_energy: energies beyond this magnitude count as divergence.
        spectral_norm: spectral normalisation of the energy network's weights.
        arch: ``auto`` (``dcgan`` for images, ``mlp`` otherwise), ``mlp`` or ``dcgan``.
        hidden: units of the MLP, base channels of the convolutional net.
        layers: linear layers of the MLP.
    """

    alpha: float = 1.0
    langevin_steps: int = 40
    step_size: float = 10.0
    noise: float = 0.005
    buffer_size: int = 10000
    reinit: float = 0.05
    sample_steps: int = 100
    sample_from: str = field(default="noise", metadata={"choices": ("noise", "buffer")})
    max_energy: float = 1e4
    spectral_norm: bool = False
    arch: str = field(default="auto", metadata={"choices": ARCHS})
    hidden: int = 64
    layers: int = 4


PRESETS = {
    # Du & Mordatch 2019 (CIFAR-10): 60 steps of size 10, noise 0.005, a buffer of 10,000 with 5 %
    # restarts, alpha 1, spectral norm (their network is a ResNet; this one the DCGAN-style net)
    "paper": {"langevin_steps": 60, "step_size": 10.0, "noise": 0.005, "buffer_size": 10000,
              "reinit": 0.05, "alpha": 1.0, "spectral_norm": True, "hidden": 128},
}


@register("ebm", "energy-based model: contrastive divergence with short-run Langevin dynamics "
          "and a replay buffer; energy regulariser, optional spectral norm", presets=PRESETS)
class EBM(ImplicitModel):
    """An energy network trained by contrastive divergence (module docstring)."""

    Config = EBMConfig
    encodes = True  # the energy network's features (ImplicitModel.encode)
    draw_without_grad = False

    def __init__(self, spec: DataSpec, config: EBMConfig) -> None:
        super().__init__(spec, config)
        c = config
        check_options("ebm", c, at_least_1=("langevin_steps", "sample_steps", "hidden", "layers"),
                      non_negative=("alpha", "step_size", "noise", "buffer_size"))
        if not 0 <= c.reinit <= 1:
            raise ConfigError(f"ebm: reinit must be in [0, 1], got {c.reinit}")
        if c.sample_from not in ("noise", "buffer"):
            raise ConfigError(f"ebm: sample_from must be noise or buffer, got {c.sample_from!r}")
        if spec.kind == "sequence":
            raise ConfigError("ebm: sequences are not supported; use images or vectors")
        self.energy = Discriminator(spec, resolve_arch(c.arch, spec), c.hidden, c.layers,
                                    spectral_norm=c.spectral_norm)
        # the replay buffer, in the networks' scale; `filled` chains are valid (stored, so a
        # resumed run continues from the same chains)
        self.register_buffer("buffer", torch.zeros(c.buffer_size, *spec.shape))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def critic_network(self) -> Discriminator:
        return self.energy

    # --- sampling -------------------------------------------------------------------------------
    def noise_like(self, n: int) -> torch.Tensor:
        """Where chains start afresh: uniform on ``[-1, 1]`` for discrete data, N(0, I) otherwise."""
        shape = (n, *self.spec.shape)
        if self.spec.levels is not None:
            return torch.rand(shape, device=self.device) * 2 - 1
        return torch.randn(shape, device=self.device)

    def langevin(self, x: torch.Tensor, steps: int, temperature: float = 1.0) -> torch.Tensor:
        """``steps`` Langevin steps from ``x`` (network scale); the energy net's weights get no
        gradient, and its spectral-norm estimates are not updated."""
        c = self.config
        was = self.energy.training
        self.energy.eval()
        try:
            with torch.enable_grad():
                x = x.detach()
                for _ in range(steps):
                    x.requires_grad_(True)
                    (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
                    x = (x - c.step_size * grad + temperature * c.noise * torch.randn_like(x)).detach()
                    if self.spec.levels is not None:
                        x = x.clamp(-1, 1)
        finally:
            self.energy.train(was)
        return x

    def starts(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Chain starts for a batch: buffer entries (or noise with probability ``reinit``), and
        the buffer rows they came from (-1: noise)."""
        c = self.config
        rows = torch.full((n,), -1, dtype=torch.long, device=self.device)
        x = self.noise_like(n)
        filled = int(self.filled)
        if filled:
            from_buffer = torch.rand(n, device=self.device) >= c.reinit
            picked = torch.randint(filled, (n,), device=self.device)
            rows = torch.where(from_buffer, picked, rows)
            x = torch.where(from_buffer.view(-1, *[1] * len(self.spec.shape)),
                            self.buffer[picked.clamp_min(0)], x)
        return x, rows

    @torch.no_grad()
    def remember(self, x: torch.Tensor, rows: torch.Tensor) -> None:
        """Put chain ends back: into the rows they came from, fresh chains into new rows (or over
        random rows once the buffer is full)."""
        size = self.config.buffer_size
        if size == 0:
            return
        rows = rows.clone()
        fresh = rows < 0
        k = int(fresh.sum())
        filled = int(self.filled)
        new = torch.arange(filled, filled + k, device=self.device)
        over = new >= size
        new[over] = torch.randint(size, (int(over.sum()),), device=self.device)
        rows[fresh] = new
        self.buffer[rows] = x.detach().to(self.buffer.dtype)
        self.filled.fill_(min(size, filled + k))

    def draw(self, n: int, y: torch.Tensor | None, temperature: float) -> torch.Tensor:
        if self.config.sample_from == "buffer" and int(self.filled):
            start = self.buffer[torch.randint(int(self.filled), (n,), device=self.device)]
        else:
            start = self.noise_like(n)
        return self.langevin(start, self.config.sample_steps, temperature)

    # --- training -------------------------------------------------------------------------------
    def check_energies(self, e_pos: torch.Tensor, e_neg: torch.Tensor) -> None:
        worst = max(float(e_pos.detach().abs().max()), float(e_neg.detach().abs().max()))
        if not math.isfinite(worst) or worst > self.config.max_energy:
            raise TrainingDiverged(
                f"ebm diverged: energies of data {float(e_pos.detach().mean()):.4g}, of samples "
                f"{float(e_neg.detach().mean()):.4g} (limit {self.config.max_energy:g}); lower --lr, raise "
                f"--alpha, add --spectral-norm or more --langevin-steps")

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        real = self.to_unit(x)
        if not self.training:  # validation: the persistent chains against data, no Langevin
            filled = int(self.filled)
            fake = (self.buffer[torch.randint(filled, (len(x),), device=self.device)] if filled
                    else self.noise_like(len(x)))
            e_pos, e_neg = self.energy(real), self.energy(fake)
            return {"loss": mmd2(real, fake), "energy_data": e_pos.mean(), "energy_samples": e_neg.mean()}
        start, rows = self.starts(len(x))
        fake = self.langevin(start, self.config.langevin_steps)
        self.remember(fake, rows)
        e_pos, e_neg = self.energy(real), self.energy(fake)
        self.check_energies(e_pos, e_neg)
        cd = e_pos.mean() - e_neg.mean()
        reg = self.config.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        return {"loss": cd + reg, "cd": cd.detach(), "energy_data": e_pos.mean().detach(),
                "energy_samples": e_neg.mean().detach()}
