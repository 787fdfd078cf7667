"""MAF and IAF: normalizing flows built from Gaussian MADEs (Papamakarios et al. 2017; Kingma et
al. 2016).

**Gaussian MADE.** For an ordering ``pi`` of the ``D`` dimensions (``pi(d)`` = position of
dimension ``d``), a masked MLP [3] maps a vector ``h`` of ``D`` values to a shift ``mu_d`` and a
log-scale ``alpha_d`` per dimension, where output ``d`` depends only on the ``h_j`` with
``pi(j) < pi(d)`` (written ``h_<d``). The degrees and masks are MADE's
(:mod:`unsup.models.autoregressive.made`):
input and output degrees are the positions ``pi``, hidden degrees are drawn from a seeded
generator, and the output masks are strict.

**MAF layer** [1]: the MADE reads the data side ``x``,

    z_d = (x_d - mu_d(x_<d)) exp(-alpha_d(x_<d))       (x -> z, density: one pass)
    x_d = z_d exp(alpha_d(x_<d)) + mu_d(x_<d)          (z -> x, sampling: D passes)

``dz/dx`` is triangular in the ordering with diagonal ``exp(-alpha_d)``, so
``log |det dz/dx| = -sum_d alpha_d(x_<d)``.

**The link to autoregressive models** [1]: with one layer and the prior ``N(0, I)``,

    log p(x) = sum_d [log N(z_d; 0, 1) - alpha_d] = sum_d log N(x_d; mu_d(x_<d), exp(alpha_d)^2),

which is exactly the Gaussian autoregressive model whose conditionals the MADE outputs; MAF's
sampling recursion is that model's ancestral sampling, with ``z`` the noise it uses. A Gaussian
conditional is unimodal; stacking ``K`` layers, each a Gaussian autoregressive model of the
previous layer's noise, gives a far more flexible density [1]. Consecutive layers use reversed
orderings (natural, reversed, natural, ...), so that a dimension that comes first in one layer
(and so has a fixed mean and scale there) is conditioned on everything in the next.

**IAF layer** [2]: the same affine map with the MADE reading the noise side ``z``,

    x_d = z_d exp(alpha_d(z_<d)) + mu_d(z_<d)          (z -> x, sampling: one pass)
    z_d = (x_d - mu_d(z_<d)) exp(-alpha_d(z_<d))       (x -> z, density: D passes)

with ``log |det dz/dx| = -sum_d alpha_d(z_<d)``. An IAF layer is the inverse of a MAF layer with
the same MADE.

**The trade-off.** MAF evaluates the density of any point in one pass per layer, so training by
maximum likelihood on data is fast, but sampling needs ``D`` sequential passes per layer. IAF is
the reverse: one pass to sample, and the density of its own samples comes for free (the ``alpha``
of the sampling pass), which suits a VAE's approximate posterior [2]; the density of an arbitrary
data point needs ``D`` passes per layer, so training IAF by maximum likelihood on data of many
dimensions (e.g. 784 for MNIST) is slow. [1] discusses both as the two directions of the same
autoregressive transform.

The ``D`` sequential passes are ancestral sampling written without in-place writes (so autograd
works through it): ``u^(0) = 0``, and pass ``t`` applies the one-pass map ``g`` of the other side
(e.g. MAF's inverse ``u -> z exp(alpha(u)) + mu(u)``) and keeps the result only at the dimensions
at positions ``<= t`` in the ordering, the rest staying 0: ``u^(t) = [pi <= t] g(u^(t-1))``. The
dimension at position ``t`` depends only on earlier ones, so it is exact after pass ``t``; after
``D`` passes all are, and the last pass's ``alpha`` is the exact log-scale for the
log-determinant. Keeping the unknown dimensions at 0 matters for a trained network: fed the
not-yet-valid values of a plain fixed-point iteration, ``exp(alpha)`` can overflow, and an
``inf`` at a masked input still turns every output into NaN (``inf * 0``).

**The model.** An example is flattened to ``D`` dimensions, preprocessed as in
:mod:`unsup.models.flows.base` (dequantisation and the logit transform for discrete data; continuous data
as it is, with an exact density), and mapped by ``num_layers`` MAF or IAF layers, optionally with
RealNVP's batch normalisation after each (as we recall [1], between consecutive autoregressive
layers and before the base density; off by default). Each MADE's last layer starts at zero, so
every layer starts as the identity. The config's ``alpha`` is the logit transform's margin (as in
every flow model here), not a log-scale. ``conditional`` uses the class-conditional prior
``N(mu_y, I)`` of :class:`~unsup.models.flows.base.FlowModel`; [1]'s conditional MAF instead feeds the
label into every MADE, which this module does not do.

References:
    [1] Papamakarios, Pavlakou, Murray. Masked Autoregressive Flow for Density Estimation.
        NeurIPS 2017.
    [2] Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved Variational Inference
        with Inverse Autoregressive Flow. NeurIPS 2016.
    [3] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for Distribution
        Estimation. ICML 2015.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.made import degree_masks, draw_hidden_degrees
from unsup.models.flows.base import FlowModel
from unsup.models.flows.layers import BatchNormFlow, Flow, Sequential
from unsup.models.flows.nice import Flatten, _Unflatten
from unsup.nn.layers import MaskedLinear


def ordering(dims: int, reverse: bool) -> torch.Tensor:
    """Positions ``pi(d)`` in ``1..dims`` of the natural (or reversed) ordering, ``(dims,)``."""
    pos = torch.arange(1, dims + 1)
    return pos.flip(0) if reverse else pos


class GaussianMADE(nn.Module):
    """A masked MLP ``h (B, D) -> (mu, alpha)``, each ``(B, D)``, autoregressive in ``order``.

    Args:
        dims: ``D``.
        hidden: units per hidden layer (ReLU).
        hidden_layers: number of hidden layers (0: a masked linear map).
        order: positions ``pi(d)`` in ``1..D`` of each dimension (:func:`ordering`).
        seed: seed of the hidden units' degrees.
        context: size of an optional context vector ``c`` (0: none), fed through an unmasked
            linear map into the first layer's pre-activation, so every output may depend on ``c``
            and the outputs stay autoregressive in ``h`` (IAF's encoder context).
    """

    order: torch.Tensor

    def __init__(self, dims: int, hidden: int, hidden_layers: int, order: torch.Tensor,
                 seed: int = 0, context: int = 0) -> None:
        super().__init__()
        self.dims = dims
        self.register_buffer("order", order.clone())
        widths = [hidden] * hidden_layers
        sizes = [dims, *widths, 2 * dims]
        g = torch.Generator().manual_seed(seed)
        # Outputs laid out as [mu_1..mu_D, alpha_1..alpha_D]: each half has the input's degrees.
        degrees = [order, *draw_hidden_degrees(dims, widths, g), order.repeat(2)]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        for layer, mask in zip(self.layers, degree_masks(degrees), strict=True):
            layer.set_mask(mask)
        nn.init.zeros_(self.layers[-1].weight)  # mu = alpha = 0: the layer starts as the identity
        nn.init.zeros_(self.layers[-1].bias)
        self.context = nn.Linear(context, sizes[1], bias=False) if context else None
        if self.context is not None and hidden_layers == 0:  # it feeds the outputs: start at zero
            nn.init.zeros_(self.context.weight)

    def forward(self, h: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if (context is None) != (self.context is None):
            raise ValueError("a context MADE needs a context, and a MADE without one takes none")
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i == 0 and self.context is not None:
                h = h + self.context(context)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        mu, alpha = h.chunk(2, 1)  # (B, D) each
        return mu, alpha


class MAFLayer(Flow):
    """``z = (x - mu(x)) exp(-alpha(x))``: density in one pass, sampling in ``D`` (module docstring)."""

    def __init__(self, made: GaussianMADE) -> None:
        super().__init__()
        self.made = made

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, alpha = self.made(x)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(z)
        for t in range(1, self.made.dims + 1):  # pass t fixes the dimension at position t
            mu, alpha = self.made(x)
            x = torch.where(self.made.order <= t, z * torch.exp(alpha) + mu, 0.0)
        return x


class IAFLayer(Flow):
    """``x = z exp(alpha(z)) + mu(z)``: sampling in one pass, density in ``D`` (module docstring)."""

    def __init__(self, made: GaussianMADE) -> None:
        super().__init__()
        self.made = made

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros_like(x)
        alpha = z
        for t in range(1, self.made.dims + 1):  # pass t fixes the dimension at position t
            mu, alpha = self.made(z)
            z = torch.where(self.made.order <= t, (x - mu) * torch.exp(-alpha), 0.0)
        return z, -alpha.sum(1)  # the last pass saw every z_<d: its alpha is exact

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        mu, alpha = self.made(z)
        return z * torch.exp(alpha) + mu


@dataclass
class MAFConfig:
    """Hyper-parameters of :class:`MAF` and :class:`IAF`.

    Attributes:
        num_layers: autoregressive layers; their orderings alternate natural / reversed.
        hidden: units per hidden layer of each Gaussian MADE.
        hidden_layers: hidden layers per MADE (0: each layer is a linear autoregressive map).
        batch_norm: a batch-normalisation layer after every autoregressive layer.
        alpha: the logit transform's margin for discrete data (not a log-scale).
        conditional: class-conditional prior ``N(mu_y, I)``.
    """

    num_layers: int = 5
    hidden: int = 256
    hidden_layers: int = 2
    batch_norm: bool = False
    alpha: float = 0.05
    conditional: bool = False


# Papamakarios et al. 2017 on MNIST: 5 MADE layers ("MAF 5"; the paper also reports 10) of 2 hidden
# layers of 1024 units. Uncertain, from memory rather than checked against the paper: batch
# normalisation between the layers, and the logit margin (left at our default here).
_MAF_PAPER = {"num_layers": 5, "hidden": 1024, "hidden_layers": 2, "batch_norm": True}


class _AutoregressiveFlowModel(FlowModel):
    """A stack of MAF or IAF layers over flattened data (module docstring).

    Raises:
        ConfigError: ``num_layers`` or ``hidden`` < 1, ``hidden_layers`` < 0, non-integer sizes,
            data that is not image or vector data, or ``conditional`` on unlabelled data.
    """

    Config = MAFConfig
    layer_type: type[MAFLayer] | type[IAFLayer]

    def __init__(self, spec: DataSpec, config: MAFConfig | None = None) -> None:
        c = config or MAFConfig()
        super().__init__(spec, c)
        name = type(self).__name__
        sizes = {"num_layers": c.num_layers, "hidden": c.hidden, "hidden_layers": c.hidden_layers}
        bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool)}
        if bad:
            raise ConfigError(f"{name} expects integer sizes, got "
                              + ", ".join(f"{k}={v!r}" for k, v in bad.items()))
        if c.num_layers < 1 or c.hidden < 1 or c.hidden_layers < 0:
            raise ConfigError(f"{name} needs num_layers >= 1, hidden >= 1 and hidden_layers >= 0; "
                              f"got num_layers={c.num_layers}, hidden={c.hidden}, "
                              f"hidden_layers={c.hidden_layers}")
        d = spec.dims
        layers: list[Flow] = [Flatten(tuple(spec.shape))]
        for k in range(c.num_layers):
            made = GaussianMADE(d, c.hidden, c.hidden_layers, ordering(d, reverse=k % 2 == 1), seed=k)
            layers.append(self.layer_type(made))
            if c.batch_norm:
                layers.append(BatchNormFlow(d))
        layers.append(_Unflatten(tuple(spec.shape)))
        self.flow = Sequential(*layers)


@register(
    "maf",
    "MAF: stacked Gaussian MADEs as a flow over flattened data (one-pass density, D-pass sampling)",
    presets={"paper": _MAF_PAPER},
)
class MAF(_AutoregressiveFlowModel):
    """Masked autoregressive flow over any image or vector data, flattened (module docstring)."""

    layer_type = MAFLayer


@register(
    "iaf",
    "IAF: inverse autoregressive flow over flattened data (one-pass sampling, D-pass density)",
    # IAF [2] was proposed for VAE posteriors, not density estimation; this is MAF's MNIST
    # architecture (above) with every layer inverted.
    presets={"maf-paper": _MAF_PAPER},
)
class IAF(_AutoregressiveFlowModel):
    """Inverse autoregressive flow over any image or vector data, flattened (module docstring)."""

    layer_type = IAFLayer
