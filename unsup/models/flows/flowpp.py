"""Flow++: logistic-mixture-CDF couplings and variational dequantisation (Ho et al. 2019).

Flow++ [1] improves Glow-style flows in two ways, both here.

**1. Logistic-mixture-CDF coupling** [1, Sec. 3.2]. A binary mask ``m`` keeps ``x_a = m * x``
(the convention of :class:`~unsup.models.flows.layers.Coupling`); every transformed element ``x``
of the other part becomes

    y = sigma^{-1}( F(x; pi, mu, s) ) * exp(a) + b,      F(x) = sum_k pi_k sigma((x - mu_k) / s_k),

a mixture of ``K`` logistic CDFs followed by the logit and an affine map. The ``3K + 2`` numbers
``(logits of pi, mu, log s, a, b)`` of each element come from a convolutional network of
``x_a`` (:class:`~unsup.models.flows.layers.ResNetCoupling`, optionally with self-attention), and
``a = scale * tanh(raw)`` as in :class:`~unsup.models.flows.layers.Coupling`. ``F`` is a strictly
increasing bijection from the real line onto ``(0, 1)``, so ``sigma^{-1} o F`` is a bijection of
the real line and the layer is invertible. The Jacobian is triangular, and with ``u = F(x)``

    log |det dy/dx| = sum_{transformed} [ log f(x) - log u - log(1 - u) + a ],

    f(x) = F'(x) = sum_k pi_k sigma(z_k) sigma(-z_k) / s_k,    z_k = (x - mu_k) / s_k.

*Numerics.* ``u`` itself is never formed, so it cannot round to 0 or 1: with
``log pi = log_softmax(logits)``,

    log u       = logsumexp_k [ log pi_k + log sigma(z_k) ],
    log (1 - u) = logsumexp_k [ log pi_k + log sigma(-z_k) ],
    log f       = logsumexp_k [ log pi_k + log sigma(z_k) + log sigma(-z_k) - log s_k ],

and ``sigma^{-1}(u) = log u - log(1 - u)``. Each ``log sigma`` is finite for every finite ``z``, so
the logit is exact in the tails where ``u`` would be ``0`` or ``1`` in floating point: the
"clamping away from 0 and 1" is done in log space, without a clamp that would make the layer
non-invertible there. ``log s`` is bounded below by ``-7`` (as in PixelCNN++ and [1]).

*Inverse.* ``t = (y - b) exp(-a)``, then ``x`` with ``sigma^{-1}(F(x)) = t`` by bisection. ``F`` is
a convex combination of the ``sigma(z_k)``, so ``min_k z_k <= sigma^{-1}(F(x)) <= max_k z_k``
and the root lies in ``[min_k (mu_k + s_k t), max_k (mu_k + s_k t)]``; a fixed
``BISECTION_STEPS = 50`` halvings in float64 shrink that bracket by ``2^-50 ~ 1e-15``. The
bisection is vectorised over all elements and not differentiated (it is used for sampling).

*Saturation.* ``sigma^{-1} o F`` is a bijection of the real line, but its inverse can leave the
floating-point range: a component of scale ``s = e^{432}`` (what a coupling network outputs for
inputs ``~1e5``, far off the data) puts ``x = mu + s t`` near ``1e190``, which is ``inf`` in float32,
and the next 1x1 convolution turns ``inf - inf`` into NaN. So the inverse returns the root clipped
to the box, ``x = clip(F^{-1}(t), -X, X)`` with ``X = max_float^{1/4}`` of the working dtype
(``4e9`` in float32): bisection on the bracket clipped to ``[-X, X]`` converges to that point,
because ``sigma^{-1} o F`` is increasing, and the clip is the limit of the inverse CDF in its tail
(``F^{-1}(u) -> +-inf`` as ``u -> 1, 0``, where :meth:`FlowModel.postprocess` gives the extreme
levels anyway). Where ``|F^{-1}(t)| < X`` -- everything data maps to, at unit scale after
actnorm -- the inverse stays exact. The fourth root leaves room for the layers after it: products
in the 1x1 convolutions and coupling networks, and the squares in layer norm, stay finite. The
bracket's ``s_k t`` is formed as ``sign(t) exp(log s_k + log |t|)``, which overflows to ``+-inf``
(then clipped) but never forms ``inf * 0``.

**Architecture** (images, like Glow [2]): ``num_levels`` levels of squeeze, ``flow_steps`` steps of
``actnorm -> invertible 1x1 convolution -> mixture-CDF coupling`` (channel mask, alternating
halves), and all but the last level factor out half of the channels
(:class:`~unsup.models.flows.layers.MultiScale`). The coupling networks' last layer starts at zero
but for the means, so every coupling starts near the identity (``pi`` uniform, ``s = 1``,
``a = b = 0``) with its ``K`` means spread evenly over ``[-1, 1]``: components that started equal
would get equal gradients and stay equal, a mixture of ``K`` equal logistics being one logistic.
``attention=True`` adds one multi-head self-attention layer over the ``H W`` positions (with a
learned position embedding, pre-layer-norm, residual) after the residual blocks of every
coupling network, the conditioning network of [1, Sec. 3.3] in miniature. **Vectors** ``(D,)`` are
flowed as ``(D, 1, 1)`` images by ``flow_steps`` steps without squeezing (``num_levels`` is ignored).

**2. Variational dequantisation** [1, Sec. 3.1]. For discrete ``x`` in ``{0, .., L-1}^D`` and a
flow density ``p`` over ``y = (x + u) / L``, the discrete model is
``P(x) = int_{[0,1)^D} p((x + u) / L) L^{-D} du``. For *any* density ``q(u | x)`` on ``[0, 1)^D``

    log P(x) = log E_{q(u|x)} [ p((x + u) / L) L^{-D} / q(u | x) ]
             >= E_{q(u|x)} [ log p((x + u) / L) - D log L - log q(u | x) ]          (Jensen),

and the gap is ``KL(q(u | x) || p(u | x))``, where ``p(u | x) = p((x + u) / L) L^{-D} / P(x)`` is
the flow's own distribution of ``u`` within ``x``'s cell. Uniform dequantisation
(:mod:`unsup.models.flows.base`) is the special case ``q = U[0, 1)^D`` (``log q = 0``), whose gap is
``KL(U || p(u | x))``: it is zero only if the flow is constant on every cell, which a smooth flow
fitted to data cannot be. Flow++ learns ``q`` and maximises the bound over ``p`` and ``q``
together, so ``q`` moves towards ``p(u | x)`` and the bound tightens (a test shows it overtaking
the uniform bound for a fixed flow on a case where ``P(x)`` is integrated numerically).

Here ``u = sigma(g(eps; x))``, ``eps ~ N(0, I)``, where ``g`` is ``dequant_steps``
mixture-CDF couplings of ``eps`` whose networks also see ``h(x)``, features of
``x / (L - 1) - 1/2`` from a residual convolutional encoder. Even-sized images are dequantised
squeezed to ``(4C, H/2, W/2)`` with channel masks of alternating halves (a quarter of the
positions for the networks; the squeeze is a permutation, so no log-det), other images with
checkerboard masks, vectors with channel masks. By the change of variables, including the
sigmoid's Jacobian,

    log q(u | x) = log N(eps; 0, I) - log |det dg/deps| - sum_d [ log sigma(g_d) + log sigma(-g_d) ].

The rest is uniform dequantisation with this ``u`` (:meth:`FlowModel.preprocess`):
``y = (x + u) / L``, ``p = alpha + (1 - 2 alpha) y``, ``v = logit(p)``, so that

    log_prob(x) = log N(f(v)) + log |det df/dv| + log |dv/dy| - D log L - log q(u | x)

is a one-sample, reparameterised (``u`` is a differentiable function of ``eps``) estimate of the
bound: every term counted, ``exact_likelihood`` is False and the bits/dim is an upper bound on the
codelength. ``dequantization="uniform"`` gives the plain bound of :mod:`unsup.models.flows.base`.
:meth:`FlowModel.encode` / ``decode`` use the bin centres ``u = 1/2``, as for the other flows.
Continuous data is modelled as it is (no dequantisation).

Left out of [1] (CPU-sized): gated convolutions with concat-ELU and layer norm (the residual
blocks of ``ResNetCoupling`` are used), dropout, attention in every block (one layer here) and in
the dequantiser, data-dependent weight-norm initialisation.

References:
    [1] Ho, Chen, Srinivas, Duan, Abbeel. Flow++: Improving Flow-Based Generative Models with
        Variational Dequantization and Architecture Design. ICML 2019.
    [2] Kingma, Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
    [3] Theis, van den Oord, Bethge. A note on the evaluation of generative models. ICLR 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.flows.base import LOG_2PI, FlowModel
from unsup.models.flows.layers import (
    ActNorm,
    Coupling,
    Flow,
    InvertibleConv1x1,
    MultiScale,
    ResNetCoupling,
    Sequential,
    Squeeze,
    coupling_mask,
)
from unsup.nn.attention import MultiHeadAttention

MIN_LOG_SCALE = -7.0
BISECTION_STEPS = 50
DEQUANTIZATIONS = ("variational", "uniform")

# Per-element mixture parameters (logits of pi, mu, log s), each of shape (..., K).
Mixture = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# ------------------------------------------------------------------------- mixture functions

def _log_terms(x: torch.Tensor, mix: Mixture) -> tuple[torch.Tensor, ...]:
    """``log pi_k``, ``log s_k``, ``log sigma(z_k)``, ``log sigma(-z_k)``, each ``(..., K)``."""
    logits, mu, log_s = mix
    z = (x.unsqueeze(-1) - mu) * torch.exp(-log_s)  # (..., K)
    return F.log_softmax(logits, -1), log_s, F.logsigmoid(z), F.logsigmoid(-z)


def mixture_logit_cdf(x: torch.Tensor, mix: Mixture) -> torch.Tensor:
    """``sigma^{-1}(F(x)) = log u - log(1 - u)`` in log space (module docstring), shape of ``x``."""
    log_pi, _, log_sig, log_sig_neg = _log_terms(x, mix)
    return torch.logsumexp(log_pi + log_sig, -1) - torch.logsumexp(log_pi + log_sig_neg, -1)


def mixture_logit_cdf_and_log_det(x: torch.Tensor, mix: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
    """``sigma^{-1}(F(x))`` and its log-derivative ``log f - log u - log(1 - u)``, shape of ``x``."""
    log_pi, log_s, log_sig, log_sig_neg = _log_terms(x, mix)
    log_u = torch.logsumexp(log_pi + log_sig, -1)
    log_1mu = torch.logsumexp(log_pi + log_sig_neg, -1)
    log_f = torch.logsumexp(log_pi + log_sig + log_sig_neg - log_s, -1)
    return log_u - log_1mu, log_f - log_u - log_1mu


def saturation(dtype: torch.dtype) -> float:
    """``X = max_float^{1/4}``: the inverse of a mixture-CDF coupling is clipped to ``[-X, X]``
    (module docstring, *Saturation*)."""
    return torch.finfo(dtype).max ** 0.25


@torch.no_grad()
def invert_mixture_logit_cdf(t: torch.Tensor, mix: Mixture, steps: int = BISECTION_STEPS) -> torch.Tensor:
    """``clip(x, -X, X)`` for the ``x`` with ``sigma^{-1}(F(x)) = t``, by ``steps`` bisections in
    float64 (module docstring); shape and dtype of ``t``, ``X =`` :func:`saturation` of it."""
    mix64 = tuple(p.double() for p in mix)
    td = t.double()
    s_t = td.sign().unsqueeze(-1) * (mix64[2] + td.abs().log().unsqueeze(-1)).exp()  # no inf * 0
    ends = mix64[1] + s_t  # (..., K): where z_k = t
    bound = saturation(t.dtype)
    lo, hi = ends.amin(-1).clamp(-bound, bound), ends.amax(-1).clamp(-bound, bound)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        below = mixture_logit_cdf(mid, mix64) < td  # type: ignore[arg-type]
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (0.5 * (lo + hi)).to(t.dtype)


# ------------------------------------------------------------------------------- the layers

class MixtureCDFCoupling(Flow):
    """Logistic-mixture-CDF coupling (module docstring) under a fixed binary mask.

    Args:
        mask: the kept part ``m``: ``(1, H, W)`` (spatial) or ``(C, 1, 1)`` (channel), from
            :func:`~unsup.models.flows.layers.coupling_mask`.
        net: maps ``[m * x, (the mask, if spatial), (context, if any)]`` stacked on the channel
            axis to :meth:`out_channels` channels.
        components: mixture components ``K``.
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module, components: int) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.components = components
        self.spatial = mask.shape[0] == 1
        self.scale = nn.Parameter(torch.ones(mask.shape[0]))  # a = scale * tanh(raw), as Coupling

    @staticmethod
    def out_channels(channels: int, components: int) -> int:
        """Network outputs for ``channels`` channels: ``a, b`` and ``K`` each of ``logits, mu, log s``."""
        return channels * (3 * components + 2)

    def _params(self, x_a: torch.Tensor, context: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, Mixture]:
        inp = [x_a]
        if self.spatial:
            inp.append(self.mask.expand(len(x_a), 1, *x_a.shape[2:]))
        if context is not None:
            inp.append(context)
        out = self.net(torch.cat(inp, 1))
        b, _, h, w = out.shape
        out = out.view(b, 3 * self.components + 2, -1, h, w)  # (B, 3K + 2, C, H, W)
        a = self.scale.view(-1, 1, 1) * torch.tanh(out[:, 0])  # (B, C, H, W)
        mix = out[:, 2:].permute(0, 2, 3, 4, 1)  # (B, C, H, W, 3K)
        logits, mu, log_s = mix.chunk(3, -1)
        return a, out[:, 1], (logits, mu, log_s.clamp(min=MIN_LOG_SCALE))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, mix = self._params(x * self.mask, context)
        t, log_dt = mixture_logit_cdf_and_log_det(x, mix)
        keep = 1 - self.mask  # the transformed part
        y = self.mask * x + keep * (t * torch.exp(a) + b)
        return y, (keep * (log_dt + a)).flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        a, b, mix = self._params(y * self.mask, context)  # y_a = x_a: the kept part is unchanged
        t = (y - b) * torch.exp(-a)
        moved = (1 - self.mask).expand_as(y).bool()  # bisect the transformed elements only
        x = y.clone()
        x[moved] = invert_mixture_logit_cdf(t[moved], tuple(p[moved] for p in mix))  # type: ignore[arg-type]
        return x


class SpatialSelfAttention(nn.Module):
    """Multi-head self-attention over the ``H W`` positions of a ``(B, C, H, W)`` map, after a
    layer norm and with a learned position embedding; returns the update (the caller adds it)."""

    def __init__(self, channels: int, heads: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(size[0] * size[1], channels) * 0.01)
        self.norm = nn.LayerNorm(channels)
        self.attention = MultiHeadAttention(channels, heads=heads)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = h.shape
        seq = self.norm(h.flatten(2).transpose(1, 2) + self.position)  # (B, HW, C)
        return self.attention(seq).transpose(1, 2).reshape(b, c, hh, ww)


def coupling_network(in_channels: int, out_channels: int, hidden: int, blocks: int,
                     attention: bool = False, heads: int = 4, size: tuple[int, int] = (1, 1)
                     ) -> ResNetCoupling:
    """A :class:`ResNetCoupling`; with ``attention``, one self-attention layer joins its residual
    blocks (the network adds ``h + attention(h)`` like any block)."""
    net = ResNetCoupling(in_channels, out_channels, hidden, blocks)
    if attention:
        net.blocks.append(SpatialSelfAttention(hidden, heads, size))
    return net


def mixture_coupling(kind: str, shape: tuple[int, int, int], parity: int, hidden: int, blocks: int,
                     components: int, context: int = 0, attention: bool = False, heads: int = 4
                     ) -> MixtureCDFCoupling:
    """A :class:`MixtureCDFCoupling` over ``shape`` with ``context`` extra input channels."""
    mask = coupling_mask(kind, shape, parity)
    net = coupling_network(Coupling.net_channels(shape[0], mask) + context,
                           MixtureCDFCoupling.out_channels(shape[0], components), hidden, blocks,
                           attention, heads, (shape[1], shape[2]))
    coupling = MixtureCDFCoupling(mask, net, components)
    spread_components(net.out.bias, shape[0], components)
    return coupling


def spread_components(bias: torch.Tensor, channels: int, components: int) -> None:
    """Start the ``K`` components' means at ``K`` points evenly spread over ``[-1, 1]`` (the
    network's last layer is otherwise zero): components that start equal get equal gradients and
    stay equal forever, and a mixture of equal logistics is one logistic."""
    if components > 1:
        with torch.no_grad():
            mu = bias.view(3 * components + 2, channels)[2 + components:2 + 2 * components]
            mu.copy_(torch.linspace(-1, 1, components).unsqueeze(1).expand_as(mu))


class VariationalDequantizer(nn.Module):
    """``q(u | x)``: ``u = sigmoid(g(eps; x))``, ``eps ~ N(0, I)`` (module docstring).

    Args:
        shape: ``(C, H, W)`` of ``x`` (vectors: ``(D, 1, 1)``).
        levels: ``L``.
        steps, hidden, blocks, components: of the couplings ``g`` and of the encoder of ``x``.
    """

    def __init__(self, shape: tuple[int, int, int], levels: int, steps: int, hidden: int,
                 blocks: int, components: int) -> None:
        super().__init__()
        self.shape, self.levels = shape, levels
        c, h, w = shape
        # Even-sized images are dequantised squeezed to (4C, H/2, W/2), with channel masks: the
        # networks see a quarter of the positions; u is unsqueezed at the end (a permutation, so
        # log q is unchanged). Other images use checkerboard masks, vectors (D, 1, 1) channel masks.
        self.squeeze = Squeeze() if h % 2 == 0 and w % 2 == 0 else None
        work = (4 * c, h // 2, w // 2) if self.squeeze else shape
        kind = "checkerboard" if self.squeeze is None and h * w > 1 else "channel"
        self.encoder = ResNetCoupling(work[0], hidden, hidden, blocks)
        self.encoder.out.reset_parameters()  # features of x, not an identity-initialised output
        self.couplings = nn.ModuleList(
            mixture_coupling(kind, work, i % 2, hidden, blocks, components, context=hidden)
            for i in range(steps))

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, log q(u | x))`` for data ``x``: shape of ``x``, and ``(B,)``. ``eps``: the
        Gaussian noise, shape of ``x`` (default: drawn)."""
        dtype = self.encoder.out.weight.dtype
        xi = x.view(len(x), *self.shape).to(dtype) / (self.levels - 1) - 0.5
        h = torch.randn(xi.shape, dtype=dtype, device=x.device) if eps is None else eps.view(xi.shape)
        log_q = -0.5 * (h.pow(2).flatten(1).sum(1) + h[0].numel() * LOG_2PI)  # log N(eps)
        if self.squeeze is not None:
            xi, h = self.squeeze(xi)[0], self.squeeze(h)[0]
        context = self.encoder(xi)
        for coupling in self.couplings:
            h, logdet = coupling(h, context)
            log_q = log_q - logdet
        log_q = log_q - (F.logsigmoid(h) + F.logsigmoid(-h)).flatten(1).sum(1)  # the sigmoid
        # log q is exact from h; u is clamped only where sigmoid(h) rounds to 0 or 1.
        info = torch.finfo(h.dtype)
        u = torch.sigmoid(h).clamp(info.tiny, 1 - info.eps)
        if self.squeeze is not None:
            u = self.squeeze.inverse(u)
        return u.reshape(x.shape), log_q


class _AsImage(Flow):
    """Runs an image flow on vectors ``(B, D)`` as ``(B, D, 1, 1)``."""

    def __init__(self, inner: Flow) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, logdet = self.inner(x.view(*x.shape, 1, 1))
        return z.flatten(1), logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner.inverse(z.view(*z.shape, 1, 1)).flatten(1)


# ------------------------------------------------------------------------------- the model

@dataclass
class FlowPlusPlusConfig:
    """Hyper-parameters of :class:`FlowPlusPlus`.

    Attributes:
        num_levels: levels; each squeezes, and all but the last factor out half the channels
            (images only).
        flow_steps: steps of flow (actnorm, 1x1 convolution, mixture-CDF coupling) per level
            (not ``steps``: that is the training loop's option).
        hidden: channels of the coupling networks (and of the dequantiser).
        blocks: residual blocks in each coupling network (and in the dequantiser).
        components: logistic components ``K`` of every mixture-CDF coupling.
        attention: one multi-head self-attention layer in every coupling network of the flow.
        heads: attention heads (``hidden`` must be divisible by it).
        dequantization: ``variational`` (learned ``q(u | x)``) or ``uniform`` (discrete data).
        dequant_steps: mixture-CDF couplings of the variational dequantiser.
        alpha: the logit transform's margin.
        conditional: class-conditional prior ``N(mu_y, I)``.
    """

    num_levels: int = 2
    flow_steps: int = 4
    hidden: int = 32
    blocks: int = 1
    components: int = 4
    attention: bool = False
    heads: int = 4
    dequantization: str = "variational"
    dequant_steps: int = 2
    alpha: float = 0.05
    conditional: bool = False


@register(
    "flow++",
    "Flow++: logistic-mixture-CDF couplings, variational dequantisation, multi-scale; images or "
    "vectors (flow)",
    presets={
        # Ho et al. 2019, CIFAR-10 (3.08 bits/dim): 96 channels, 10 blocks, 32 components,
        # 4 attention heads, a dequantiser of 4 couplings (the authors' run_cifar.py). Their flow
        # is 4 checkerboard couplings at 32x32x3, a squeeze, 2 channel + 3 checkerboard couplings
        # at 16x16x12, without factoring out; one level of 9 channel-mask steps approximates it.
        # Dropout 0.2 and gated convolutions are not implemented.
        "paper": {"num_levels": 1, "flow_steps": 9, "hidden": 96, "blocks": 10, "components": 32,
                  "attention": True, "heads": 4, "dequant_steps": 4},
    },
)
class FlowPlusPlus(FlowModel):
    """Flow++ over ``(C, H, W)`` images or ``(D,)`` vectors (module docstring).

    Raises:
        ConfigError: data that is neither images nor vectors, sizes below 1, an unknown
            dequantisation, ``hidden`` not divisible by ``heads`` with attention, more levels than
            the image size allows, or vectors of fewer than 2 dimensions.
    """

    Config = FlowPlusPlusConfig

    def __init__(self, spec: DataSpec, config: FlowPlusPlusConfig | None = None) -> None:
        c = config or FlowPlusPlusConfig()
        super().__init__(spec, c)
        self.require(kinds=("image", "vector"))
        if min(c.num_levels, c.flow_steps, c.hidden, c.components, c.dequant_steps) < 1 or c.blocks < 0:
            raise ConfigError(f"Flow++ needs num_levels, flow_steps, hidden, components, dequant_steps "
                              f">= 1 and blocks >= 0; got {c.num_levels}, {c.flow_steps}, {c.hidden}, "
                              f"{c.components}, {c.dequant_steps}, {c.blocks}")
        if c.dequantization not in DEQUANTIZATIONS:
            raise ConfigError(f"Flow++ dequantization must be one of {', '.join(DEQUANTIZATIONS)}, "
                              f"got {c.dequantization!r}")
        if c.attention and (c.heads < 1 or c.hidden % c.heads):
            raise ConfigError(f"Flow++ attention needs hidden ({c.hidden}) divisible by heads "
                              f"({c.heads})")
        if spec.kind == "vector":
            if spec.dims < 2:
                raise ConfigError(f"Flow++ couples one half of the dimensions with the other and "
                                  f"needs vectors of >= 2 dimensions, got {spec.dims}")
            shape = (spec.dims, 1, 1)
            self.flow = _AsImage(Sequential(*self._steps(shape, 0)))
        else:
            shape = tuple(spec.shape)
            _, h, w = shape
            if h % 2 ** c.num_levels or w % 2 ** c.num_levels:
                raise ConfigError(f"Flow++ with num_levels={c.num_levels} squeezes {h}x{w} "
                                  f"{c.num_levels} times; that needs a multiple of "
                                  f"{2 ** c.num_levels} -- use fewer levels")
            self.flow = self._level(shape, c.num_levels, seed=0)
        self.dequantizer: VariationalDequantizer | None = None
        if self.discrete and c.dequantization == "variational":
            assert spec.levels is not None
            self.dequantizer = VariationalDequantizer(shape, spec.levels, c.dequant_steps, c.hidden,
                                                      c.blocks, c.components)

    def _steps(self, shape: tuple[int, int, int], seed: int) -> list[Flow]:
        c = self.config
        layers: list[Flow] = []
        for k in range(c.flow_steps):
            layers += [ActNorm(shape[0]), InvertibleConv1x1(shape[0], seed=seed + k),
                       mixture_coupling("channel", shape, k % 2, c.hidden, c.blocks, c.components,
                                        attention=c.attention, heads=c.heads)]
        return layers

    def _level(self, shape: tuple[int, int, int], levels_left: int, seed: int) -> Flow:
        ch, h, w = shape
        steps = Sequential(*self._steps((4 * ch, h // 2, w // 2), seed))
        inner = None if levels_left == 1 else \
            self._level((2 * ch, h // 2, w // 2), levels_left - 1, seed + 1000)
        return MultiScale(steps, inner)

    def preprocess(self, x: torch.Tensor, u: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` -> ``(v, log |dv/dx| - log q(u | x))``: with no ``u`` given and variational
        dequantisation, ``u ~ q(u | x)`` and ``- log q`` joins the log-determinant (module
        docstring); otherwise as :meth:`FlowModel.preprocess` (a given ``u``, e.g. the bin centres
        of :meth:`encode`, or uniform draws)."""
        if u is not None or self.dequantizer is None:
            return super().preprocess(x, u)
        u, log_q = self.dequantizer(x)
        v, logdet = super().preprocess(x, u)
        return v, logdet - log_q

