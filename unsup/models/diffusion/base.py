"""What diffusion, flow-matching and score models share: the noise-conditional network, class
conditioning with classifier-free guidance, and sampling with interchangeable samplers.

Classifier-free guidance (Ho & Salimans 2021): training replaces a share ``label_dropout`` of the
labels by "no class", so one network predicts both conditionally and unconditionally; sampling
with guidance weight ``w`` uses

    out = out(x, t, none) + w (out(x, t, y) - out(x, t, none)),

``w = 1`` being the plain conditional model, ``w = 0`` the unconditional one and ``w > 1`` trading
diversity for samples more typical of their class. The combination is linear in the network's
output, so it is the same whether the network predicts noise, clean data, a velocity or a score.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.diffusion.nets import DenoiserConfig, denoiser
from unsup.models.scaling import UnitScaled


class NoiseConditional(UnitScaled):
    """A model built around ``net(x, time, y)`` (:mod:`~unsup.models.diffusion.nets`).

    Subclasses implement :meth:`draw` (samples in the unit scale, recording the states of the
    chain when asked) and list the keyword options of :meth:`sample` in ``sampling_options``.
    """

    samples = True
    encodes = True  # the denoiser's features (encode)
    out_factor: ClassVar[int] = 1

    def __init__(self, spec: DataSpec, config: DenoiserConfig, out_factor: int = 1) -> None:
        super().__init__(spec, config)
        if spec.kind == "sequence":
            raise ConfigError(f"{type(self).__name__}: sequences are not supported; use images or vectors")
        if config.conditional:
            self.require(labels=True)
            self.num_classes = spec.num_classes
        self.out_factor = out_factor
        self.net = denoiser(spec, config, out_factor)

    # ------------------------------------------------------------------ the network

    def training_labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Checked labels, a share ``label_dropout`` of them replaced by "no class"."""
        y = self.labels(y, n)
        if y is None or self.config.label_dropout == 0:
            return y
        drop = torch.rand(n, device=y.device) < self.config.label_dropout
        return torch.where(drop, torch.full_like(y, self.num_classes), y)

    def predict(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None,
                guidance: float = 1.0) -> torch.Tensor:
        """The network's output at ``x`` and times ``t`` ``(B,)``; for a conditional model with
        ``guidance != 1`` the guided combination of the module docstring (on the first ``C``
        channels; extra channels, a learned variance, are the conditional ones)."""
        if y is None or guidance == 1.0:
            return self.net(x, t, y)
        if self.config.label_dropout == 0:
            raise ConfigError("guidance needs a model trained with label_dropout > 0 (it never "
                              "learned to predict without a class)")
        none = torch.full_like(y, self.num_classes)
        both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, none]))
        cond, uncond = both.chunk(2)
        c = self.spec.shape[0]
        guided = uncond[:, :c] + guidance * (cond[:, :c] - uncond[:, :c])
        return torch.cat([guided, cond[:, c:]], 1) if cond.shape[1] > c else guided

    def clean_time(self) -> float:
        """The network's time input nearest the clean data (the smallest noise level: time 0)."""
        return 0.0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The denoiser's features of clean examples ``x`` at :meth:`clean_time`: the U-Net's
        bottleneck averaged over positions (an MLP's last hidden layer), ``(B, D)``; the
        representation ``unsup probe`` judges, as denoising networks' inner features are used as
        representations (Xiang et al. 2023, "Denoising Diffusion Autoencoders are Unified
        Self-supervised Learners"). No noise is added: the features are a function of ``x``; a
        class-conditional model sees the "no class" label when it has one, else class 0."""
        self.check_input(x)
        x = self.to_unit(x.to(self.device))
        y = None
        if self.num_classes is not None:
            label = self.num_classes if self.config.label_dropout > 0 else 0
            y = torch.full((len(x),), label, dtype=torch.long, device=x.device)
        t = torch.full((len(x),), self.clean_time(), device=x.device, dtype=x.dtype)
        return self.net.features(x, t, y)

    # ------------------------------------------------------------------ sampling

    def draw(self, n: int, y: torch.Tensor | None, temperature: float,
             record: list[torch.Tensor] | None = None, **options: Any) -> torch.Tensor:
        """``n`` samples in the unit scale; each state of the chain appended to ``record``."""
        raise ConfigError(f"{type(self).__name__} cannot sample")  # every subclass overrides it

    def check_sampling(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.sampling_options))
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no sampling option {', '.join(unknown)}; "
                              f"it has {', '.join(self.sampling_options)}")
        guidance = options.get("guidance", getattr(self.config, "guidance", 1.0))
        if guidance != 1.0 and self.num_classes is None:
            raise ConfigError(f"guidance {guidance}: classifier-free guidance needs a class-conditional "
                              f"model (train with --conditional)")

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               **options: Any) -> torch.Tensor:
        """``n`` examples in the data's representation; ``options`` (``sampling_options``)
        override the config's sampler settings for this call."""
        self.check_sampling(options)
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        y = self.sample_labels(y, n)
        was = self.training
        self.eval()
        try:
            return self.from_unit(self.draw(n, y, temperature, **options))
        finally:
            self.train(was)

    @torch.no_grad()
    def trajectories(self, n: int, **options: Any) -> torch.Tensor:
        """The chains of ``n`` samples in the data's units, ``(states, n, *shape)``: the first
        state is noise, the last the sample (before rounding to levels)."""
        self.check_sampling(options)
        y, record = self.sample_labels(None, n), []
        was = self.training
        self.eval()
        try:
            self.draw(n, y, 1.0, record=record, **options)
        finally:
            self.train(was)
        states = torch.stack(record)
        return self.shift + self.scale * states if self.spec.levels is None else states

    def pictures(self) -> tuple[str, ...]:
        """Besides samples (and a likelihood model's density): the sampling chains of 2-D data."""
        extra = ("trajectories",) if self.low_dimensional and self.spec.shape == (2,) else ()
        return super().pictures() + extra
