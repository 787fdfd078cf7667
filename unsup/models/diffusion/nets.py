"""The noise-conditional network shared by diffusion, flow matching and score models.

``net(x, time, y)`` maps a noisy example ``x`` (in the unit scale of :mod:`unsup.models.scaling`),
a noise level given as a float ``time`` in ``[0, 1]`` per example, and optionally a class ``y``
to an output of ``x``'s shape (``out_factor`` times its channels: a diffusion model that learns its
variances asks for two). What the output means -- noise, clean data, velocity, score -- is the
model's business.

* images: the U-Net of Ho et al. 2020 (after PixelCNN++): per resolution ``res_blocks`` residual
  blocks (group norm, SiLU, 3x3 convolutions, the time embedding added in between, dropout),
  self-attention at the resolutions listed in ``attention``, a stride-2 convolution down and a
  nearest-neighbour upsampling and convolution up, skip connections from every block of the way
  down. Any image size works: upsampling returns to the size of the matching skip.
* vectors: an MLP over ``[x, time embedding]`` with SiLU (the 2-D toys of the course: 4 layers of
  64 units).

The time enters as sinusoidal features of ``1000 t`` (the transformer's position encoding)
through a two-layer MLP; a class enters as a learned embedding added to it, with one extra
"no class" embedding (index ``num_classes``) that classifier-free guidance trains and samples with.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError

ARCHS = ("auto", "unet", "mlp")


@dataclass
class DenoiserConfig:
    """Options of the noise-conditional network (:mod:`unsup.models.diffusion.nets`).

    Attributes:
        arch: ``unet`` (images), ``mlp`` (any data); ``auto``: ``unet`` for images, ``mlp`` otherwise.
        hidden: base channels of the U-Net, units of the MLP (0: 32 for the U-Net, 64 for the MLP,
            the course's toy network).
        mults: channel multiplier of each U-Net resolution (its length sets the number of levels).
        res_blocks: residual blocks per U-Net resolution.
        attention: feature-map sides (e.g. 7 for the 7x7 level of a 28x28 image) with self-attention.
        dropout: dropout inside the residual blocks.
        layers: hidden layers of the MLP.
        conditional: condition on the class label (labelled data).
        label_dropout: with ``conditional``, the share of training examples whose label is replaced
            by "no class", which classifier-free guidance needs (0: no guidance possible).
    """

    arch: str = field(default="auto", metadata={"choices": ARCHS})
    hidden: int = 0
    mults: list[int] = field(default_factory=lambda: [1, 2, 2])
    res_blocks: int = 1
    attention: list[int] = field(default_factory=lambda: [7])
    dropout: float = 0.0
    layers: int = 4
    conditional: bool = False
    label_dropout: float = 0.1


def time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``(B, dim)`` of ``1000 t`` at geometric frequencies 1 .. 1/10000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32)
                      / max(half - 1, 1))
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], 1)


def _groups(channels: int) -> int:
    return math.gcd(channels, 32)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.drop, self.conv2 = nn.Dropout(dropout), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(e)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the positions of a feature map, with a residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # (b, hw, c)
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class Embedding(nn.Module):
    """Time features through an MLP, plus a class embedding (with a "no class" row)."""

    def __init__(self, dim: int, out: int, num_classes: int | None) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out), nn.SiLU(), nn.Linear(out, out))
        self.classes = nn.Embedding(num_classes + 1, out) if num_classes is not None else None

    def forward(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        e = self.mlp(time_features(t, self.dim))
        if self.classes is not None:
            if y is None:
                raise ConfigError("this network is class-conditional: pass labels (or the 'no "
                                  "class' index for unconditional predictions)")
            e = e + self.classes(y)
        return e


class UNet(nn.Module):
    def __init__(self, spec: DataSpec, c: DenoiserConfig, out_factor: int,
                 num_classes: int | None) -> None:
        super().__init__()
        if not c.mults or any(m < 1 for m in c.mults) or c.hidden < 1 or c.res_blocks < 1:
            raise ConfigError(f"unet: hidden, res_blocks and every entry of mults must be >= 1 "
                              f"(got hidden {c.hidden}, res_blocks {c.res_blocks}, mults {c.mults})")
        channels, side = spec.shape[0], min(spec.shape[1:])
        emb = 4 * c.hidden
        self.embed = Embedding(c.hidden, emb, num_classes)
        self.conv_in = nn.Conv2d(channels, c.hidden, 3, padding=1)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        widths, width, sides = [c.hidden], c.hidden, []
        for level, mult in enumerate(c.mults):
            for _ in range(c.res_blocks):
                self.down.append(self._block(width, c.hidden * mult, emb, c, side))
                width = c.hidden * mult
                widths.append(width)
            sides.append(side)
            if level < len(c.mults) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                widths.append(width)
                side = (side + 1) // 2
        self.mid = nn.ModuleList([ResBlock(width, width, emb, c.dropout), Attention(width),
                                  ResBlock(width, width, emb, c.dropout)])
        for level, mult in reversed(list(enumerate(c.mults))):
            for _ in range(c.res_blocks + 1):
                self.up.append(self._block(width + widths.pop(), c.hidden * mult, emb, c, sides[level]))
                width = c.hidden * mult
            if level > 0:
                self.up.append(nn.Conv2d(width, width, 3, padding=1))  # after upsampling
        self.norm_out = nn.GroupNorm(_groups(width), width)
        self.conv_out = nn.Conv2d(width, channels * out_factor, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @staticmethod
    def _block(c_in: int, c_out: int, emb: int, c: DenoiserConfig, side: int) -> nn.Module:
        block = nn.ModuleList([ResBlock(c_in, c_out, emb, c.dropout)])
        if side in c.attention:
            block.append(Attention(c_out))
        return block

    def _contract(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The down path and the middle blocks: the bottleneck ``h`` and the skip connections."""
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = self._run(layer, h, e)
            skips.append(h)
        return self.mid[2](self.mid[1](self.mid[0](h, e)), e), skips

    def features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The bottleneck (after the middle blocks) averaged over positions, ``(B, width)``."""
        return self._contract(x, self.embed(t, y))[0].mean((2, 3))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embed(t, y)
        h, skips = self._contract(x, e)
        for layer in self.up:
            if isinstance(layer, nn.Conv2d):  # upsample to the next skip's size
                h = layer(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
            else:
                h = self._run(layer, torch.cat([h, skips.pop()], 1), e)
        return self.conv_out(F.silu(self.norm_out(h)))

    @staticmethod
    def _run(layer: nn.Module, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, nn.Conv2d):
            return layer(h)
        h = layer[0](h, e)
        return layer[1](h) if len(layer) > 1 else h


class MLP(nn.Module):
    def __init__(self, spec: DataSpec, c: DenoiserConfig, out_factor: int,
                 num_classes: int | None) -> None:
        super().__init__()
        if c.hidden < 1 or c.layers < 1:
            raise ConfigError(f"mlp: hidden and layers must be >= 1, got {c.hidden}, {c.layers}")
        d = spec.dims
        self.embed = Embedding(c.hidden, c.hidden, num_classes)
        sizes = [d + c.hidden] + [c.hidden] * c.layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        self.out = nn.Linear(c.hidden, d * out_factor)
        self.shape = (out_factor * spec.shape[0], *spec.shape[1:])

    def features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer, ``(B, hidden)``."""
        h = torch.cat([x.flatten(1), self.embed(t, y)], 1)
        for layer in self.hidden:
            h = F.silu(layer(h))
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.features(x, t, y)).view(len(x), *self.shape)


def denoiser(spec: DataSpec, c: DenoiserConfig, out_factor: int = 1) -> nn.Module:
    """The network for data ``spec`` (module docstring); ``out_factor`` times the channels out."""
    arch = c.arch if c.arch != "auto" else ("unet" if spec.kind == "image" else "mlp")
    if arch not in ARCHS[1:]:
        raise ConfigError(f"unknown arch {c.arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "unet" and spec.kind != "image":
        raise ConfigError(f"arch unet needs images, got {spec.kind} data {spec.shape}; use --arch mlp")
    if not 0 <= c.dropout < 1 or not 0 <= c.label_dropout < 1:
        raise ConfigError(f"dropout and label_dropout must be in [0, 1), got {c.dropout}, "
                          f"{c.label_dropout}")
    classes = spec.num_classes if c.conditional else None
    if c.hidden == 0:
        c = dataclasses.replace(c, hidden=32 if arch == "unet" else 64)
    return (UNet if arch == "unet" else MLP)(spec, c, out_factor, classes)
