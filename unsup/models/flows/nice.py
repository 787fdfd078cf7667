"""NICE: additive coupling layers and a diagonal scaling (Dinh, Krueger & Bengio 2015).

An example is flattened to ``D`` dimensions, preprocessed as in :mod:`unsup.models.flows.base`, and
mapped by ``num_couplings`` additive couplings that alternate which half is kept [1, Sec. 3.2],

    y_a = v_a,   y_b = v_b + t(v_a),   log |det| = 0   (volume preserving),

(``a``: even dimensions, then odd, ...; ``t`` an MLP), followed by a diagonal scaling
``z = exp(log_s) * y`` [1, Sec. 3.3], ``log |det| = sum_d log_s_d`` -- the only layer that changes
volume. The scaling is an :class:`~unsup.models.flows.layers.ActNorm` over the ``D`` dimensions
(so it starts from the data's scale). The prior is ``N(0, I)`` (the paper also used a logistic
prior).

References:
    [1] Dinh, Krueger, Bengio. NICE: Non-linear Independent Components Estimation. ICLR 2015.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.flows.base import FlowModel
from unsup.models.flows.layers import ActNorm, Coupling, Flow, MLPCoupling, Sequential, coupling_mask


class Flatten(Flow):
    """``(B, *shape) -> (B, D)``; volume preserving."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flatten(1), x.new_zeros(len(x))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(len(z), *self.shape)


@dataclass
class NICEConfig:
    """Hyper-parameters of :class:`NICE`.

    Attributes:
        num_couplings: additive coupling layers (the paper: 4).
        hidden: units per hidden layer of each coupling MLP.
        layers: hidden layers per coupling MLP.
        alpha: the logit transform's margin.
        conditional: class-conditional prior ``N(mu_y, I)``.
    """

    num_couplings: int = 4
    hidden: int = 256
    layers: int = 3
    alpha: float = 0.05
    conditional: bool = False


@register(
    "nice",
    "NICE: additive couplings over flattened data + diagonal scaling (volume-preserving flow)",
    presets={
        # Dinh et al. 2015, Sec. 5.1: MNIST with 4 coupling layers of 5 hidden layers of 1000 units.
        "paper": {"num_couplings": 4, "hidden": 1000, "layers": 5},
    },
)
class NICE(FlowModel):
    """NICE over any image or vector data, flattened (module docstring).

    Raises:
        ConfigError: invalid sizes.
    """

    Config = NICEConfig

    def __init__(self, spec: DataSpec, config: NICEConfig | None = None) -> None:
        c = config or NICEConfig()
        super().__init__(spec, c)
        if c.num_couplings < 1 or c.hidden < 1 or c.layers < 1:
            raise ConfigError(f"NICE needs num_couplings, hidden, layers >= 1; got "
                              f"{c.num_couplings}, {c.hidden}, {c.layers}")
        d = spec.dims
        if d < 2:
            raise ConfigError(f"NICE needs at least 2 dimensions to couple, got shape {spec.shape}")
        couplings = [Coupling(coupling_mask("checkerboard", (d,), i % 2), MLPCoupling(d, c.hidden, c.layers),
                              additive=True) for i in range(c.num_couplings)]
        self.flow = Sequential(Flatten(tuple(spec.shape)), *couplings, ActNorm(d), _Unflatten(spec.shape))


class _Unflatten(Flow):
    """``(B, D) -> (B, *shape)`` so that ``z`` has the data's shape (the prior's convention)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.flat = Flatten(shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flat.inverse(x), x.new_zeros(len(x))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.flat(z)[0]
