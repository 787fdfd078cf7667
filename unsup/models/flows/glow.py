"""Glow: actnorm, invertible 1x1 convolutions and affine couplings, multi-scale (Kingma & Dhariwal 2018).

One *step of flow* [1, Fig. 2a] over ``(C, H, W)`` is

    actnorm  ->  invertible 1x1 convolution  ->  affine coupling (channel split),

* actnorm: per-channel ``y = (v + b) * exp(log_s)``, initialised on the first training batch so
  its output has zero mean and unit variance per channel (``actnorm_init``); ``log |det| = H W
  sum log_s``;
* 1x1 convolution ``y = W v`` at every pixel, ``W = P L (U + diag(sign * exp(log_s)))`` in LU
  form, so ``log |det| = H W sum log_s`` (a learned generalisation of RealNVP's fixed
  channel permutations);
* affine coupling on the first half of the channels (the 1x1 convolution decides what the
  halves are), ``s, t`` from a convolutional network whose last layer starts at zero
  (``zero_init``), so that every coupling starts as the identity.

The two initialisations are what lets a deep flow train at a large learning rate from the first
step [1, Sec. 3.1 and 3.3]: before any update every activation is standardised and every
coupling passes its input through. ``actnorm_init=False`` (actnorm starts as the identity) and
``zero_init=False`` (PyTorch's default initialisation of the coupling networks' last layer) turn
them off for the ablation in ``benchmarks/seeded.py flow-init``.

The multi-scale architecture [1, Fig. 2b] has ``num_levels`` levels: squeeze, ``flow_steps`` steps of
flow, then (except at the last level) half of the channels are factored out as final latents.
The prior is ``N(0, I)`` over all latents (Glow's learned prior over the split halves is not
used). On 28 x 28 images ``num_levels`` can be 1 or 2 (each level halves the size).

References:
    [1] Kingma, Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
"""

from __future__ import annotations

from dataclasses import dataclass

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.flows.base import FlowModel
from unsup.models.flows.layers import ActNorm, Flow, InvertibleConv1x1, MultiScale, Sequential
from unsup.models.flows.realnvp import image_coupling


@dataclass
class GlowConfig:
    """Hyper-parameters of :class:`Glow`.

    Attributes:
        num_levels: levels; each squeezes, and all but the last factor out half the channels.
        flow_steps: steps of flow per level (the paper's ``K``).
        hidden: channels of the coupling networks.
        blocks: residual blocks in each coupling network.
        additive: additive couplings (``s = 0``), the paper's alternative.
        alpha: the logit transform's margin.
        conditional: class-conditional prior ``N(mu_y, I)``.
        actnorm_init: actnorm's data-dependent initialisation on the first training batch (False:
            it starts as the identity; an ablation).
        zero_init: the coupling networks' last convolution starts at zero (False: PyTorch's
            default initialisation; an ablation).
    """

    num_levels: int = 2
    flow_steps: int = 8
    hidden: int = 64
    blocks: int = 1
    additive: bool = False
    alpha: float = 0.05
    conditional: bool = False
    actnorm_init: bool = True
    zero_init: bool = True


@register(
    "glow",
    "Glow: actnorm + invertible 1x1 convolution (LU) + affine coupling, multi-scale (flow)",
    presets={
        # Kingma & Dhariwal 2018, Table 4 / Sec. 5: CIFAR-10 with L = 3 levels, K = 32 steps,
        # 512 channels in the coupling networks.
        "paper": {"num_levels": 3, "flow_steps": 32, "hidden": 512},
    },
)
class Glow(FlowModel):
    """Glow over ``(C, H, W)`` images (module docstring).

    Raises:
        ConfigError: non-image data or more levels than the image size allows.
    """

    Config = GlowConfig

    def __init__(self, spec: DataSpec, config: GlowConfig | None = None) -> None:
        c = config or GlowConfig()
        super().__init__(spec, c)
        self.require(kinds=("image",))
        if c.num_levels < 1 or c.flow_steps < 1 or c.hidden < 1:
            raise ConfigError(f"Glow needs num_levels, flow_steps, hidden >= 1; got {c.num_levels}, "
                              f"{c.flow_steps}, {c.hidden}")
        ch, h, w = spec.shape
        if h % 2 ** c.num_levels or w % 2 ** c.num_levels:
            raise ConfigError(f"Glow with num_levels={c.num_levels} squeezes {h}x{w} "
                              f"{c.num_levels} times; that needs a multiple of {2 ** c.num_levels}"
                              f" -- use fewer levels")
        self.flow = self._level((ch, h, w), c.num_levels, seed=0)

    def _level(self, shape: tuple[int, int, int], levels_left: int, seed: int) -> Flow:
        c = self.config
        ch, h, w = shape
        squeezed = (4 * ch, h // 2, w // 2)
        steps: list[Flow] = []
        for k in range(c.flow_steps):
            steps += [ActNorm(squeezed[0], data_init=c.actnorm_init),
                      InvertibleConv1x1(squeezed[0], seed=seed + k),
                      image_coupling("channel", squeezed, 0, c.hidden, c.blocks,
                                     additive=c.additive, zero_init=c.zero_init)]
        inner = None if levels_left == 1 else \
            self._level((2 * ch, h // 2, w // 2), levels_left - 1, seed + 1000)
        return MultiScale(Sequential(*steps), inner)
