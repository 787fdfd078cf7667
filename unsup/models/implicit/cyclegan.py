"""CycleGAN: unpaired translation between two image domains (Zhu et al. 2017).

Two translators, ``G: A -> B`` and ``F: B -> A``, and a discriminator per domain, ``D_A`` and
``D_B``. Nothing pairs an example of A with one of B; instead

    L = L_adv(G, D_B) + L_adv(F, D_A)
        + lambda_cyc (E |F(G(a)) - a|_1 + E |G(F(b)) - b|_1)
        + lambda_id (E |G(b) - b|_1 + E |F(a) - a|_1),

where the adversarial terms make translations look like the other domain and the *cycle* terms
make the pair invertible, so a translation keeps what identifies its source (a garment's class,
a digit's identity). The identity terms (same-shaped domains only) keep colours that need not
change. The adversarial loss is least squares by default, as in the paper (any of the GAN's,
:mod:`~unsup.models.implicit.gan`); the translators are CycleGAN's ResNet generator scaled down
(:class:`~unsup.models.implicit.nets.Translator`), the discriminators the DCGAN-style critic.

Data: ``--data unpaired-A+B`` (:mod:`unsup.data.unpaired`): both domains are discrete images of
one height and width, in ``[-1, 1]`` for the networks. Training alternates the two
discriminators' phase with the two translators' phase. Validation reports the cycle
reconstruction error (the mean absolute error in ``[-1, 1]`` units, both ways), by which the best
checkpoint is chosen; ``translations.png`` shows test images of A, their translations to B and
back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Model, Phase
from unsup.models.implicit.base import levels_to_unit, unit_to_levels
from unsup.models.implicit.gan import LOSSES, critic_loss, generator_loss
from unsup.models.implicit.nets import Discriminator, Translator

NEEDS_TWO = ("cyclegan translates between two domains: --data unpaired-A+B, e.g. "
             "unpaired-fashion-mnist+colored-fashion-mnist")


@dataclass
class CycleGANConfig:
    """Options of :class:`CycleGAN` (see the module docstring).

    Attributes:
        target_shape: domain B's image shape; filled in from the data.
        target_levels: domain B's levels; filled in from the data.
        loss: the adversarial loss (``least-squares``, ``non-saturating``, ``hinge``, ...).
        cycle_weight: lambda_cyc.
        identity_weight: lambda_id (domains of one shape only; the paper: 0.5 lambda_cyc for
            photos and paintings, 0 elsewhere).
        hidden: base channels of the translators.
        res_blocks: residual blocks of each translator.
        d_hidden: base channels of the discriminators.
        beta1, beta2: Adam's betas.
    """

    target_shape: list[int] = field(default_factory=list)
    target_levels: int = 0
    loss: str = field(default="least-squares", metadata={"choices": LOSSES})
    cycle_weight: float = 10.0
    identity_weight: float = 0.0
    hidden: int = 16
    res_blocks: int = 2
    d_hidden: int = 32
    beta1: float = 0.5
    beta2: float = 0.999


PRESETS = {
    # Zhu et al. 2017: 64 base channels, 9 residual blocks (6 at 128 px), lambda 10, Adam 2e-4 (0.5)
    "paper": {"hidden": 64, "res_blocks": 9, "d_hidden": 64, "cycle_weight": 10.0},
}


@register("cyclegan", "CycleGAN: unpaired translation between two image domains (data "
          "unpaired-A+B) with cycle and identity losses", presets=PRESETS)
class CycleGAN(Model):
    """Two translators and two discriminators (module docstring)."""

    Config = CycleGANConfig

    @classmethod
    def fit_config(cls, config: CycleGANConfig, data) -> None:
        spec_b = getattr(data, "spec_b", None)
        if spec_b is None:
            raise ConfigError(NEEDS_TWO)
        config.target_shape, config.target_levels = list(spec_b.shape), int(spec_b.levels)

    def __init__(self, spec: DataSpec, config: CycleGANConfig) -> None:
        super().__init__(spec, config)
        c = config
        if not c.target_shape:
            raise ConfigError(NEEDS_TWO)
        if c.loss not in LOSSES:
            raise ConfigError(f"cyclegan: loss must be one of {', '.join(LOSSES)}, got {c.loss!r}")
        self.require(levels=True, kinds=("image",))
        self.spec_b = DataSpec(tuple(c.target_shape), c.target_levels, None, "image")
        (ca, *hw), (cb, *hw_b) = spec.shape, self.spec_b.shape
        if hw != hw_b or any(v % 2 for v in hw):
            raise ConfigError(f"cyclegan: both domains need one even height and width, got "
                              f"{tuple(spec.shape)} and {tuple(self.spec_b.shape)}")
        if c.identity_weight and ca != cb:
            raise ConfigError("cyclegan: the identity loss compares an image with its translation: "
                              "domains of different channels need --identity-weight 0")
        self.g_ab = Translator(ca, cb, c.hidden, c.res_blocks)
        self.g_ba = Translator(cb, ca, c.hidden, c.res_blocks)
        self.d_a = Discriminator(spec, "dcgan", c.d_hidden, 2)
        self.d_b = Discriminator(self.spec_b, "dcgan", c.d_hidden, 2)

    def phases(self) -> tuple[Phase, ...]:
        betas = (self.config.beta1, self.config.beta2)
        return (Phase("critic", (*self.d_a.parameters(), *self.d_b.parameters()), betas=betas),
                Phase("generator", (*self.g_ab.parameters(), *self.g_ba.parameters()), betas=betas))

    def domains(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Both domains' examples of a batch in ``[-1, 1]``."""
        self.check_input(batch["x"])
        if "x_b" not in batch:
            raise ConfigError(NEEDS_TWO)
        xb, s = batch["x_b"], self.spec_b
        if tuple(xb.shape[1:]) != tuple(s.shape) or xb.is_floating_point():
            raise ConfigError(f"cyclegan expects domain B as integer images of shape {s.shape}, got "
                              f"{xb.dtype} of shape {tuple(xb.shape)}")
        if xb.numel() and (int(xb.min()) < 0 or int(xb.max()) >= s.levels):
            raise ConfigError(f"cyclegan expects domain B's values in [0, {s.levels - 1}]")
        return levels_to_unit(batch["x"], self.spec.levels), levels_to_unit(xb, s.levels)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        a, b = self.domains(batch)
        kind = self.config.loss
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        if phase == "critic":  # the translators are frozen in this phase
            d_loss = (critic_loss(kind, self.d_b(b), self.d_b(fake_b))
                      + critic_loss(kind, self.d_a(a), self.d_a(fake_a)))
            return {"loss": d_loss}
        cycle_a = (self.g_ba(fake_b) - a).abs().mean()
        cycle_b = (self.g_ab(fake_a) - b).abs().mean()
        if phase is None:  # validation: how well the pair inverts each other
            return {"loss": (cycle_a + cycle_b) / 2, "cycle_a": cycle_a, "cycle_b": cycle_b}
        if phase != "generator":
            raise ValueError(f"cyclegan: unknown phase {phase!r}")
        adversarial = generator_loss(kind, self.d_b(fake_b)) + generator_loss(kind, self.d_a(fake_a))
        total = adversarial + self.config.cycle_weight * (cycle_a + cycle_b)
        out = {"adversarial": adversarial.detach(), "cycle": (cycle_a + cycle_b).detach()}
        if self.config.identity_weight:
            identity = (self.g_ab(b) - b).abs().mean() + (self.g_ba(a) - a).abs().mean()
            total = total + self.config.identity_weight * identity
            out["identity"] = identity.detach()
        return {"loss": total, **out}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, to: str = "b") -> torch.Tensor:
        """Examples of domain A translated to B (``to="b"``) or of B to A (``to="a"``), in the
        target domain's levels."""
        if to not in ("a", "b"):
            raise ConfigError(f"translate to 'a' or 'b', got {to!r}")
        source, target = (self.spec, self.spec_b) if to == "b" else (self.spec_b, self.spec)
        net = self.g_ab if to == "b" else self.g_ba
        was = self.training
        self.eval()
        try:
            return unit_to_levels(net(levels_to_unit(x.to(self.device), source.levels)), target.levels)
        finally:
            self.train(was)

    def illustrations(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """``translations``: test images of A, translated to B, and back to A."""
        to_b = self.translate(x, "b")
        back = self.translate(to_b, "a")
        return {"translations": [as_rgb(x, self.spec.levels), as_rgb(to_b, self.spec_b.levels),
                                 as_rgb(back, self.spec.levels)]}


def as_rgb(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Images of levels as floats in ``[0, 1]`` with three channels (grey repeated)."""
    v = x.float() / (levels - 1)
    return v.expand(-1, 3, -1, -1) if v.shape[1] == 1 else v
