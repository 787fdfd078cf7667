"""RealNVP: affine coupling layers, checkerboard and channel masks, multi-scale (Dinh et al. 2017).

The flow ``z = f(v)`` over an image ``v`` of shape ``(C, H, W)`` (preprocessed as in
:mod:`unsup.models.flows.base`) is built from affine couplings (:class:`~unsup.models.flows.layers.Coupling`)

    y = m * v + (1 - m) * (v * exp(s(m * v)) + t(m * v)),   log |det| = sum (1 - m) * s,

with ``s, t`` from a residual convolutional network. At each of ``num_scales`` scales [1, Sec. 3.6]:

* ``3`` couplings with a **checkerboard** mask, alternating its parity, each followed by a batch
  normalisation layer [1, Sec. 3.7] (the normalisation layers are invertible flows too);
* a squeeze ``(C, H, W) -> (4C, H/2, W/2)``, then ``3`` couplings with a **channel** mask
  (alternating halves), each with batch normalisation;
* half of the channels are factored out (they are final latents); the other half goes on to
  the next scale.

The last scale has ``4`` checkerboard couplings and no squeeze. The output ``z`` has the shape of
the input and the prior is ``N(0, I)`` over all of it.

``mask="random"`` replaces every checkerboard mask by a fixed random half of the pixels: a
partition that ignores spatial structure (each transformed pixel's neighbours are, at random,
transformed too), the ablation that shows why the checkerboard matters.

On 28 x 28 images ``num_scales`` can be 1, 2 or 3 (each scale but the last halves the size).

**Vectors** (``kind="vector"``, e.g. the 2-D toys ``two-moons``, ``rings``): the flow is
``num_couplings`` affine couplings whose masks alternate between the even and the odd
dimensions (on 2-D data: ``x_1`` conditions ``x_2``, then the reverse), with an MLP ``s, t``
network of two hidden layers of ``hidden`` units, each coupling followed by batch normalisation
when ``batch_norm`` -- the 2-D RealNVP of CS294-158 HW2. ``num_scales``, ``blocks`` and ``mask``
apply to images only (and ``num_couplings`` to vectors only).

References:
    [1] Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP. ICLR 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.flows.base import FlowModel
from unsup.models.flows.layers import (
    MASKS,
    BatchNormFlow,
    Coupling,
    Flow,
    MLPCoupling,
    MultiScale,
    ResNetCoupling,
    Sequential,
    coupling_mask,
)


@dataclass
class RealNVPConfig:
    """Hyper-parameters of :class:`RealNVP`.

    Attributes:
        num_scales: scales; all but the last squeeze and factor out half of the channels.
        hidden: channels of the ``s, t`` networks.
        blocks: residual blocks in each ``s, t`` network.
        mask: ``checkerboard`` (RealNVP) or ``random`` (the ablation) for the spatial couplings.
        batch_norm: a batch-normalisation flow layer after every coupling.
        alpha: the logit transform's margin ``p = alpha + (1 - 2 alpha) y``.
        conditional: class-conditional prior ``N(mu_y, I)``.
        num_couplings: vector data only (ignored for images): affine couplings, alternating
            between the even and the odd dimensions.
    """

    num_scales: int = 2
    hidden: int = 32  # 28 x 28, batch 32: about 0.5 s per training step on one CPU core
    blocks: int = 2
    mask: str = "checkerboard"
    batch_norm: bool = True
    alpha: float = 0.05
    conditional: bool = False
    num_couplings: int = 6


def image_coupling(kind: str, shape: tuple[int, int, int], parity: int, hidden: int, blocks: int,
                   seed: int = 0, additive: bool = False, zero_init: bool = True) -> Coupling:
    """A coupling layer over images of ``shape`` with a residual ``s, t`` network (its last layer
    zero-initialised unless ``zero_init`` is False)."""
    mask = coupling_mask(kind, shape, parity, seed)
    net = ResNetCoupling(Coupling.net_channels(shape[0], mask), 2 * shape[0], hidden, blocks,
                         zero_init=zero_init)
    return Coupling(mask, net, additive=additive)


@register(
    "realnvp",
    "RealNVP: affine couplings with checkerboard/channel masks, multi-scale, batch norm; "
    "images or vectors (flow)",
    presets={
        # Dinh et al. 2017, Sec. 4.1 / Appendix: CIFAR-10 used 8 residual blocks of 64 feature
        # maps in the s, t networks and multi-scale with the same 3 + 3 couplings per scale.
        "paper": {"num_scales": 3, "hidden": 64, "blocks": 8},
    },
)
class RealNVP(FlowModel):
    """RealNVP over ``(C, H, W)`` images or ``(D,)`` vectors (module docstring).

    Raises:
        ConfigError: data that is neither images nor vectors, a mask name not known, more scales
            than the image size allows, or (vectors) ``num_couplings < 1`` or ``D < 2``.
    """

    Config = RealNVPConfig

    def __init__(self, spec: DataSpec, config: RealNVPConfig | None = None) -> None:
        c = config or RealNVPConfig()
        super().__init__(spec, c)
        self.require(kinds=("image", "vector"))
        if spec.kind == "vector":
            self.flow = self._vector_flow(spec.dims)
            return
        if c.mask not in ("checkerboard", "random"):
            raise ConfigError(f"RealNVP mask must be checkerboard or random (of {', '.join(MASKS)}),"
                              f" got {c.mask!r}")
        if c.num_scales < 1 or c.hidden < 1 or c.blocks < 0:
            raise ConfigError(f"RealNVP needs num_scales >= 1, hidden >= 1, blocks >= 0; got "
                              f"{c.num_scales}, {c.hidden}, {c.blocks}")
        _, h, w = spec.shape
        if h % 2 ** (c.num_scales - 1) or w % 2 ** (c.num_scales - 1):
            raise ConfigError(f"RealNVP with num_scales={c.num_scales} halves {h}x{w} "
                              f"{c.num_scales - 1} times; that needs a multiple of "
                              f"{2 ** (c.num_scales - 1)} -- use fewer scales")
        self.flow = self._scale(tuple(spec.shape), c.num_scales, seed=0)

    def _vector_flow(self, d: int) -> Flow:
        c = self.config
        if c.num_couplings < 1 or c.hidden < 1:
            raise ConfigError(f"RealNVP on vectors needs num_couplings >= 1 and hidden >= 1; got "
                              f"{c.num_couplings}, {c.hidden}")
        if d < 2:
            raise ConfigError(f"RealNVP couples one half of the dimensions with the other and "
                              f"needs vectors of >= 2 dimensions, got {d}; use cdf-flow for 1-D data")
        layers: list[Flow] = []
        for i in range(c.num_couplings):
            layers.append(Coupling(coupling_mask("checkerboard", (d,), i % 2), MLPCoupling(d, c.hidden, 2)))
            if c.batch_norm:
                layers.append(BatchNormFlow(d))
        return Sequential(*layers)

    def _step(self, kind: str, shape: tuple[int, int, int], parity: int, seed: int) -> list[Flow]:
        c = self.config
        kind = c.mask if kind == "checkerboard" else kind
        layers: list[Flow] = [image_coupling(kind, shape, parity, c.hidden, c.blocks, seed)]
        if c.batch_norm:
            layers.append(BatchNormFlow(shape[0]))
        return layers

    def _scale(self, shape: tuple[int, int, int], scales_left: int, seed: int) -> Flow:
        ch, h, w = shape
        if scales_left == 1:
            return Sequential(*[f for i in range(4)
                                for f in self._step("checkerboard", shape, i % 2, seed + i)])
        spatial = [f for i in range(3) for f in self._step("checkerboard", shape, i % 2, seed + i)]
        squeezed = (4 * ch, h // 2, w // 2)
        channel = [f for i in range(3) for f in self._step("channel", squeezed, i % 2, seed)]
        inner = self._scale((2 * ch, h // 2, w // 2), scales_left - 1, seed + 10)
        return Sequential(*spatial, MultiScale(Sequential(*channel), inner))
