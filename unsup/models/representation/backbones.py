"""Image encoders shared by the representation-learning methods: ``h = f(x)``, ``(B, C, H, W) -> (B, D)``.

Every self-supervised method of the course trains *some* encoder with a pretext loss and is judged
by probes on that encoder's features, so comparisons are only fair when the encoder is the same
network. The methods therefore take a backbone by name (MoCo's builder takes ``base_encoder`` the
same way) and never define their own trunk:

* ``conv`` -- ``depth`` stages of ``3x3 conv -> batch norm -> ReLU``; every stage after the first
  halves the resolution (stride 2) and doubles the channels (``width, 2 width, ...``, capped at
  ``8 width``). The CPU default: ``width=32, depth=4`` is ~0.4 M parameters and ~12 M multiply-adds
  for a 28x28 image.
* ``resnet`` -- a small ResNet [1]: a ``3x3`` stem of ``width`` channels, then ``depth`` stages of
  ``blocks`` basic residual blocks (two ``3x3`` convs, ``y = ReLU(x + F(x))``, a strided ``1x1``
  projection on the shortcut where the shape changes), resolution halved and channels doubled per
  stage after the first. ``width=64, depth=4, blocks=2`` is ResNet-18's layout (with a CIFAR stem,
  as in [2]); with the shared CPU defaults it is ``width=32, depth=4, blocks=1``.

Both end in global average pooling, so any input size works: the patch-based pretext tasks feed
tiles to the same network that is later probed on whole images. ``D`` is :attr:`Backbone.dim`.

:class:`Decoder` mirrors the ``conv`` trunk for methods that must produce images (autoencoders,
context encoders, colorization): from a code vector (a linear layer to a ``4x``-downsampled map)
or from the backbone's feature map, stride-2 transposed convolutions double the resolution and
halve the channels until the image size is reached or passed, a ``3x3`` convolution makes the
outputs, and a centre crop gives exactly ``H x W``.

References:
    [1] He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016.
    [2] Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of Visual
        Representations (SimCLR). ICML 2020 (the CIFAR ResNet variant).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from unsup.errors import ConfigError

BACKBONES = ("conv", "resnet")
RESNET18 = {"backbone": "resnet", "width": 64, "depth": 4, "blocks": 2}  # the `paper` presets' backbone


@dataclass
class BackboneConfig:
    """The encoder every representation method trains.

    Attributes:
        backbone: ``conv`` (plain strided convolutions) or ``resnet`` (basic residual blocks).
        width: channels of the first stage; each later stage doubles them (capped at 8 x width).
        depth: number of stages; each after the first halves the resolution.
        blocks: residual blocks per stage (``resnet`` only).
        norm: ``batch`` norm after every convolution, or ``layer`` norm (per example over
            channels and positions), which shares no statistics between the examples of a batch.
    """

    backbone: str = "conv"
    width: int = 32
    depth: int = 4
    blocks: int = 1
    norm: str = "batch"


NORMS = ("batch", "layer")


def _norm(c: int, kind: str) -> nn.Module:
    # layer norm of a feature map: statistics over (C, H, W) of each example alone, so nothing
    # passes between the examples of a batch (CPC v2's patches are examples of one image)
    return nn.BatchNorm2d(c) if kind == "batch" else nn.GroupNorm(1, c)


def _conv_bn(c_in: int, c_out: int, stride: int = 1, relu: bool = True, norm: str = "batch") -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), _norm(c_out, norm)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """``ReLU(shortcut(x) + BN(conv(ReLU(BN(conv(x))))))``; the shortcut is a strided ``1x1``
    convolution with batch norm when the stride or the channels change, else the identity."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c_in, c_out, stride, norm=norm),
                                  _conv_bn(c_out, c_out, relu=False, norm=norm))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          _norm(c_out, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.body(x))


class Backbone(nn.Module):
    """A convolutional trunk with global average pooling: ``(B, C, H, W) -> (B, dim)``.

    Args:
        in_channels: channels of the input images.
        config: :class:`BackboneConfig` (any object with its fields).

    Raises:
        ConfigError: an unknown backbone or a non-positive size.
    """

    def __init__(self, in_channels: int, config: BackboneConfig) -> None:
        super().__init__()
        if config.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {config.backbone!r}")
        for name in ("width", "depth", "blocks"):
            if getattr(config, name) < 1:
                raise ConfigError(f"backbone {name} must be >= 1, got {getattr(config, name)}")
        norm = getattr(config, "norm", "batch")
        if norm not in NORMS:
            raise ConfigError(f"backbone norm must be batch or layer, got {norm!r}")
        widths = [config.width * 2 ** min(i, 3) for i in range(config.depth)]
        layers: list[nn.Module] = []
        if config.backbone == "conv":
            c = in_channels
            for i, w in enumerate(widths):
                layers.append(_conv_bn(c, w, stride=1 if i == 0 else 2, norm=norm))
                c = w
        else:
            layers.append(_conv_bn(in_channels, config.width, norm=norm))
            c = config.width
            for i, w in enumerate(widths):
                for j in range(config.blocks):
                    layers.append(BasicBlock(c, w, stride=2 if i > 0 and j == 0 else 1, norm=norm))
                    c = w
        self.trunk = nn.Sequential(*layers)
        self.dim = widths[-1]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's activations before pooling, ``(B, dim, H', W')``."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean((2, 3))  # (B, dim)


class Decoder(nn.Module):
    """Images from a code vector ``(B, in_dim)`` or a feature map ``(B, in_dim, h, w)``.

    Args:
        in_dim: size of the code (or channels of the feature map).
        out_channels: output channels per pixel (e.g. ``C`` values, or ``P`` parameters or class
            scores per pixel).
        size: ``(H, W)`` of the output.
        width: channels of the last upsampling stage (earlier stages double it, capped at 8 x).
        ups: number of stride-2 upsampling stages; from a vector the start map is
            ``ceil(H / 2^ups) x ceil(W / 2^ups)``, from a map its own size (which must reach
            ``(H, W)`` after ``ups`` doublings).

    Raises:
        ConfigError: a feature map too small to reach ``size``.
    """

    def __init__(self, in_dim: int, out_channels: int, size: tuple[int, int], width: int = 32,
                 ups: int = 3) -> None:
        super().__init__()
        self.size = tuple(size)
        self.ups = ups
        widths = [width * 2 ** min(i, 3) for i in reversed(range(ups + 1))]  # e.g. 256,128,64,32
        self.start = (-(-size[0] // 2 ** ups), -(-size[1] // 2 ** ups))
        self.project = nn.Linear(in_dim, widths[0] * self.start[0] * self.start[1])
        self.lift = nn.Conv2d(in_dim, widths[0], 1)  # from a map: channels only
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(widths[-1], out_channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        self.width0 = widths[0]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 2:
            m = self.project(h).view(len(h), self.width0, *self.start)  # (B, C0, h0, w0)
        else:
            if h.shape[2] * 2 ** self.ups < self.size[0] or h.shape[3] * 2 ** self.ups < self.size[1]:
                raise ConfigError(f"a {h.shape[2]}x{h.shape[3]} feature map cannot be decoded to "
                                  f"{self.size[0]}x{self.size[1]} with {self.ups} upsamplings")
            m = self.lift(h)
        y = self.net(m)  # (B, out_channels, >= H, >= W)
        top = (y.shape[2] - self.size[0]) // 2
        left = (y.shape[3] - self.size[1]) // 2
        return y[:, :, top:top + self.size[0], left:left + self.size[1]]
