"""Invertible layers for normalizing flows, each with its exact log-determinant.

A flow layer is a bijection ``z = f(x)`` that returns ``log |det df/dx|`` per example, so that a
chain ``f = f_K o .. o f_1`` gives, by the change of variables,

    log p_X(x) = log p_Z(f(x)) + sum_k log |det J_{f_k}(x_{k-1})|.

Every layer here has ``forward(x) -> (z, logdet)`` and ``inverse(z) -> x``; ``logdet`` has shape
``(B,)``. The layers, and the Jacobians that make them cheap:

* :class:`Coupling` (NICE, RealNVP, Glow): a binary mask ``m`` keeps ``x_a = m * x`` and
  transforms the rest, ``y = x_a + (1 - m) * (x * exp(s(x_a)) + t(x_a))``. The Jacobian is
  triangular, ``log |det| = sum (1 - m) * s``; ``additive=True`` fixes ``s = 0`` (NICE, volume
  preserving). Masks: ``checkerboard`` and ``channel`` (RealNVP's spatial and channel-wise
  partitions) and ``random`` (a fixed random half of the pixels: it ignores spatial structure,
  the ablation of the course). ``s = scale * tanh(raw)`` with a learned per-channel ``scale``
  (initially 1) keeps early training stable.
* :class:`ActNorm` (Glow): per-channel ``y = (x + b) * exp(log_s)``, initialised from the first
  batch so that the outputs have zero mean and unit variance; ``log |det| = H W sum log_s``.
* :class:`InvertibleConv1x1` (Glow): a learned channel mixing ``y = W x`` at every pixel, with
  ``W = P L (U + diag(sign * exp(log_s)))`` (LU form: ``P`` fixed permutation, ``L`` unit lower,
  ``U`` strictly upper), so ``log |det| = H W sum log_s`` costs ``O(C)`` instead of ``O(C^3)``.
* :class:`BatchNormFlow` (RealNVP): ``y = (x - mu) / sqrt(var + eps) * exp(log_g) + b`` with batch
  statistics in training and running averages in evaluation (where it is a fixed affine map).
* :class:`Squeeze`: ``(C, H, W) -> (4C, H/2, W/2)``, each 2 x 2 block to channels; volume preserving.
* :class:`MultiScale` (RealNVP's factoring out): ``squeeze -> steps -> split`` the channels into
  halves ``(z_a, h)``; ``z_a`` is final, ``h`` goes through the ``inner`` flow at the next scale;
  the halves are put back together and unsqueezed, so the output has the input's shape and the
  prior is over all dimensions at once.
* :class:`Sequential`: composition, log-determinants added.

References:
    [1] Dinh, Krueger, Bengio. NICE: Non-linear Independent Components Estimation. ICLR 2015.
    [2] Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP. ICLR 2017.
    [3] Kingma, Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unsup.errors import ConfigError

MASKS = ("checkerboard", "channel", "random")


class Flow(nn.Module):
    """An invertible layer: ``forward(x) -> (z, log |det dz/dx|)``, ``inverse(z) -> x``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Sequential(Flow):
    """``f_K o .. o f_1``: log-determinants add up; the inverse runs the layers backwards."""

    def __init__(self, *layers: Flow) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(len(x))
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def _sum_per_example(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


def coupling_mask(kind: str, shape: tuple[int, ...], parity: int, seed: int = 0) -> torch.Tensor:
    """The kept part ``m`` (1 = passed through, conditions the rest) of a coupling layer.

    Args:
        kind: ``checkerboard`` (``(i + j + parity)`` even, over ``H x W``), ``channel`` (the first
            half of the channels, or the second if ``parity``; for vectors: the first half of the
            dimensions), ``random`` (a fixed random half of the positions, from ``seed``;
            ``parity`` flips it).
        shape: shape of one example, ``(C, H, W)`` or ``(D,)``.
        parity: 0 or 1; alternate it between consecutive layers so every element is transformed.
    """
    if kind not in MASKS:
        raise ConfigError(f"coupling mask must be one of {', '.join(MASKS)}, got {kind!r}")
    if len(shape) == 1:  # vectors: checkerboard = alternate dimensions
        d = shape[0]
        idx = torch.arange(d)
        if kind == "checkerboard":
            m = (idx + parity) % 2 == 0
        elif kind == "channel":
            m = (idx < d // 2) if parity == 0 else (idx >= d // 2)
        else:
            g = torch.Generator().manual_seed(seed)
            m = torch.randperm(d, generator=g) < d // 2
            m = m if parity == 0 else ~m
        return m.float()
    c, h, w = shape
    if kind == "checkerboard":
        i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return ((i + j + parity) % 2 == 0).float()[None]  # (1, H, W)
    if kind == "channel":
        if c < 2:
            raise ConfigError(f"a channel coupling needs >= 2 channels, got shape {shape}; "
                              f"squeeze first")
        idx = torch.arange(c)
        m = (idx < c // 2) if parity == 0 else (idx >= c // 2)
        return m.float()[:, None, None]  # (C, 1, 1)
    g = torch.Generator().manual_seed(seed)
    m = (torch.randperm(h * w, generator=g) < (h * w) // 2).view(1, h, w)
    return (m if parity == 0 else ~m).float()


class Coupling(Flow):
    """Affine (RealNVP, Glow) or additive (NICE) coupling under a fixed binary mask.

    Args:
        mask: the kept part ``m``, ``(1, H, W)`` (spatial), ``(C, 1, 1)`` (channel) or ``(D,)``
            (:func:`coupling_mask`).
        net: maps the network input (:meth:`net_channels`: ``m * x``, plus the mask as an extra
            channel for spatial masks) to ``(raw s, t)`` stacked on the channel axis: ``2C``
            channels, or ``2D`` features for vectors.
        additive: ``s = 0`` (NICE).
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module, additive: bool = False) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.additive = additive
        self.spatial = mask.dim() == 3 and mask.shape[0] == 1
        # s = scale * tanh(raw); with a zero-initialised last layer the coupling starts as the
        # identity and scale bounds |s| early in training (RealNVP's tanh scaling).
        self.scale = nn.Parameter(torch.ones(mask.shape[0] if mask.dim() == 3 else mask.numel()))

    @staticmethod
    def net_channels(channels: int, mask: torch.Tensor) -> int:
        """Input channels of the network for images of ``channels`` channels under ``mask``."""
        return channels + (1 if mask.dim() == 3 and mask.shape[0] == 1 else 0)

    def _shift_scale(self, x_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inp = x_a
        if self.spatial:
            inp = torch.cat([x_a, self.mask.expand(len(x_a), 1, *x_a.shape[2:])], 1)
        raw, t = self.net(inp).chunk(2, 1)
        scale = self.scale.view(-1, 1, 1) if x_a.dim() == 4 else self.scale
        keep = 1 - self.mask
        s = torch.zeros_like(raw) if self.additive else scale * torch.tanh(raw) * keep
        return s, t * keep

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._shift_scale(x * self.mask)
        return x * torch.exp(s) + t, _sum_per_example(s)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        s, t = self._shift_scale(z * self.mask)  # z_a = x_a: the kept part is unchanged
        return (z - t) * torch.exp(-s)


class ActNorm(Flow):
    """Per-channel affine map with data-dependent initialisation (Glow, Sec. 3.1).

    Args:
        channels: channels (dimension 1 of the input).
        data_init: set ``bias`` and ``log_scale`` on the first training batch so the output has
            zero mean and unit variance per channel; False starts as the identity (an ablation).
    """

    def __init__(self, channels: int, data_init: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(not data_init))

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                dims = [0, *range(2, x.dim())]
                mean, std = x.mean(dims), x.std(dims, unbiased=False)
                self.bias.copy_(-mean)
                self.log_scale.copy_(-torch.log(std + 1e-6))
                self.initialized.fill_(True)
        y = (x + self._view(self.bias, x)) * self._view(self.log_scale.exp(), x)
        positions = x[0, 0].numel()
        return y, self.log_scale.sum().expand(len(x)) * positions

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._view((-self.log_scale).exp(), z) - self._view(self.bias, z)


class InvertibleConv1x1(Flow):
    """Glow's invertible 1x1 convolution in LU form (Glow, Sec. 3.2)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g))  # random rotation
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("l_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.l_mask + self.eye
        upper = self.upper * self.l_mask.t() + torch.diag(self.sign_s * self.log_s.exp())
        return self.p @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        y = torch.einsum("ij,bj...->bi...", w, x)
        return y, self.log_s.sum().expand(len(x)) * x[0, 0].numel()

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).to(z.dtype)
        return torch.einsum("ij,bj...->bi...", w_inv, z)


class BatchNormFlow(Flow):
    """RealNVP's batch normalisation as an invertible layer (RealNVP, Sec. 3.7).

    Training uses the batch's per-channel statistics (and updates running averages with
    ``momentum``); evaluation uses the running averages, a fixed affine map.
    """

    def __init__(self, channels: int, momentum: float = 0.05, eps: float = 1e-4) -> None:
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        dims = [0, *range(2, x.dim())]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
        return mean, var

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._stats(x)
        shape = (1, -1, *([1] * (x.dim() - 2)))
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        y = (x - mean.view(shape)) * log_scale.exp().view(shape) + self.beta.view(shape)
        return y, log_scale.sum().expand(len(x)) * x[0, 0].numel()

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, *([1] * (z.dim() - 2)))
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        return (z - self.beta.view(shape)) * (-log_scale).exp().view(shape) + \
            self.running_mean.view(shape)


class Squeeze(Flow):
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: every 2 x 2 block of a channel becomes 4 channels."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ConfigError(f"cannot squeeze an image of odd size {h}x{w}; use fewer scales or "
                              f"pad the data to an even size")
        x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = z.shape
        z = z.view(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return z.reshape(b, c4 // 4, 2 * h, 2 * w)


class MultiScale(Flow):
    """``squeeze -> steps -> split``: half the channels are factored out, the other half goes to
    ``inner`` (the next scale; None: nothing more), then everything is put back in place.

    The output has the input's shape, so a single prior covers every factored-out part.
    """

    def __init__(self, steps: Flow, inner: Flow | None) -> None:
        super().__init__()
        self.squeeze = Squeeze()
        self.steps = steps
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.squeeze(x)
        h, logdet = self.steps(h)
        if self.inner is not None:
            z_out, rest = h.chunk(2, 1)
            rest, ld = self.inner(rest)
            h, logdet = torch.cat([z_out, rest], 1), logdet + ld
        return self.squeeze.inverse(h), logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        h, _ = self.squeeze(z)
        if self.inner is not None:
            z_out, rest = h.chunk(2, 1)
            h = torch.cat([z_out, self.inner.inverse(rest)], 1)
        return self.squeeze.inverse(self.steps.inverse(h))


class ResNetCoupling(nn.Module):
    """The ``s, t`` network of an image coupling: 3x3 conv, residual blocks, 3x3 conv to ``2C``.

    The last convolution starts at zero, so every coupling starts as the identity (Glow);
    ``zero_init=False`` leaves it at PyTorch's default initialisation (an ablation).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, blocks: int,
                 zero_init: bool = True) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(hidden, hidden, 1)) for _ in range(blocks))
        self.out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.relu(h))


class MLPCoupling(nn.Module):
    """The ``s, t`` network of a vector coupling: an MLP ``D -> hidden (x layers) -> 2D``,
    its last layer starting at zero."""

    def __init__(self, dims: int, hidden: int, layers: int) -> None:
        super().__init__()
        sizes = [dims] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            mods += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(sizes[-1], 2 * dims)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*mods, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
