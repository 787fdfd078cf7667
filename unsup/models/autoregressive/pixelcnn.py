"""PixelCNN: an autoregressive image model from masked convolutions (van den Oord et al. 2016).

An image of ``C`` channels and ``H x W`` pixels with ``L`` levels is factorised in raster order,

    p(x) = prod_{i=1}^{HW} p(x_i | x_<i)                     (channel_dependence="independent"),
    p(x_i | x_<i) = prod_c softmax(logits_{i,c})[x_{i,c}],

where all ``C x H x W x L`` logits come from one pass of a fully convolutional network that never
looks at the current or later pixels [1]: a ``7 x 7`` convolution with mask A (centre pixel
hidden), then ``num_layers`` mask-B convolutions (centre shown: it only carries information about
earlier pixels), ReLUs, and two ``1 x 1`` mask-B convolutions to ``C L`` logits per pixel. Binary
images are the case ``L = 2`` (a 2-way softmax is a Bernoulli). Receptive fields grow by
``k // 2`` rows per layer, but stacked masked convolutions never reach a wedge up and to the right
of each pixel -- the "blind spot" that Gated PixelCNN [2] removes.

Colour. By default the ``C`` channels of a pixel are conditionally independent given the previous
pixels (the simplest choice, used by CS294-158 HW1 [3]). With
``channel_dependence="autoregressive"`` every layer splits its feature maps into ``C`` ordered
groups and the centre tap of group ``g`` sees input groups ``< g`` (mask A) or ``<= g`` (mask B),
giving the paper's ``p(x_{i,R} | x_<i) p(x_{i,G} | x_<i, x_{i,R}) p(x_{i,B} | ..., x_{i,G})``
[1, Sec. 3.4]; sampling then takes ``C`` passes per pixel.

Residual blocks (``residual=True``) follow [1, Fig. 5]: ``ReLU, 1x1 (2h -> h), ReLU, k x k (h -> h),
ReLU, 1x1 (h -> 2h)`` plus the identity, with ``hidden = 2h`` feature maps between blocks.

Class conditioning (``conditional=True``, [2]): every masked convolution adds a learned bias
``V_l y`` of the one-hot label ``y``, broadcast over the image, so ``p(x | y)`` is again a
normalised autoregressive model.

Sampling is exact and sequential, one pixel (channel) at a time from ``softmax(logits / T)``
(:mod:`unsup.models.autoregressive.raster`). The naive sampler (``fast=False``) runs ``HW`` (or ``HWC``) full
forward passes; the default caches every layer's activations and computes each once, when its
position comes up [4] (:mod:`unsup.nn.cached_conv`), for the same samples.

References:
    [1] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
    [2] van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu. Conditional Image
        Generation with PixelCNN Decoders. NeurIPS 2016.
    [3] CS294-158 Deep Unsupervised Learning, UC Berkeley, homework 1 (2020).
    [4] Ramachandran et al. Fast Generation for Convolutional Autoregressive Models. ICLR 2017
        workshop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.raster import RasterSampling, StepFn
from unsup.nn.cached_conv import ConvCache, ConvFn, dense
from unsup.nn.layers import MaskedConv2d, categorical_log_prob, logit_width

CHANNEL_DEPENDENCE = ("independent", "autoregressive")


@dataclass
class PixelCNNConfig:
    """Hyper-parameters of :class:`PixelCNN`.

    Attributes:
        hidden: feature maps between layers (the paper's ``2h`` when ``residual``).
        num_layers: mask-B convolutions, or residual blocks when ``residual``.
        kernel_size: kernel of the mask-B layers (odd).
        first_kernel_size: kernel of the mask-A input layer (odd, >= 3).
        residual: use the paper's residual blocks instead of plain layers.
        head_hidden: width of the hidden ``1 x 1`` output layer (default: ``hidden``).
        channel_dependence: ``"independent"`` or ``"autoregressive"`` (R -> G -> B) channels.
        conditional: condition on the class label (needs labelled data).
    """

    hidden: int = 64
    num_layers: int = 5
    kernel_size: int = 3
    first_kernel_size: int = 7
    residual: bool = False
    head_hidden: int | None = None
    channel_dependence: str = "independent"
    conditional: bool = False


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv_kxk(relu(conv1x1(relu(x))))))`` with mask-B convolutions."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        h = channels // 2
        self.reduce = MaskedConv2d(channels, h, 1, "B", channel_groups=groups)
        self.conv = MaskedConv2d(h, h, kernel_size, "B", channel_groups=groups)
        self.expand = MaskedConv2d(h, channels, 1, "B", channel_groups=groups)

    def forward(self, x: torch.Tensor, label_bias: torch.Tensor | None = None,
                conv: ConvFn = dense) -> torch.Tensor:
        h = conv(self.conv, F.relu(conv(self.reduce, F.relu(x))))
        if label_bias is not None:
            h = h + label_bias
        return x + conv(self.expand, F.relu(h))


@register(
    "pixelcnn",
    "PixelCNN: masked-convolution autoregressive image model (binary or K-level pixels)",
    presets={
        # CS294-158 HW1 as the course teaches it: 7x7 mask A, five 3x3 mask B, two 1x1 mask B,
        # 64 filters (one public copy of the 2020 handout says 7x7 for the B layers too: pass
        # --kernel-size 7 for that, about 3x slower).
        "course": {"hidden": 64, "num_layers": 5, "kernel_size": 3, "first_kernel_size": 7,
                   "residual": False, "head_hidden": 64},
        # van den Oord et al. 2016a (CIFAR-10 PixelCNN): 15 residual blocks with 3x3 mask B,
        # h = 128 (256 maps between blocks), 1x1 output layers of 1024 maps, R->G->B masks.
        "paper": {"hidden": 256, "num_layers": 15, "kernel_size": 3, "first_kernel_size": 7,
                  "residual": True, "head_hidden": 1024,
                  "channel_dependence": "autoregressive"},
    },
)
class PixelCNN(RasterSampling):
    """PixelCNN over discrete images ``(C, H, W)`` with ``L <= 256`` levels.

    Vectors ``(D,)`` (the 2-D toy densities) are modelled as one-row images ``(1, 1, D)``.

    Raises:
        ConfigError: non-image or continuous data, more than 256 levels, ``conditional`` on
            unlabelled data, or invalid sizes.
    """

    Config = PixelCNNConfig

    def __init__(self, spec: DataSpec, config: PixelCNNConfig | None = None) -> None:
        c = config or PixelCNNConfig()
        super().__init__(spec, c)
        self.require(levels=True, kinds=("image", "vector"), max_levels=256, labels=c.conditional)
        self.image_shape = self.raster_shape(spec, "PixelCNN")
        if c.channel_dependence not in CHANNEL_DEPENDENCE:
            raise ConfigError(f"channel_dependence must be one of {', '.join(CHANNEL_DEPENDENCE)},"
                              f" got {c.channel_dependence!r}")
        for name in ("kernel_size", "first_kernel_size"):
            k = getattr(c, name)
            if k < 1 or k % 2 == 0 or (name == "first_kernel_size" and k < 3):
                raise ConfigError(f"PixelCNN {name} must be odd (and >= 3 for the first layer), "
                                  f"got {k}")
        if c.num_layers < 0:
            raise ConfigError(f"num_layers must be >= 0, got {c.num_layers}")
        assert spec.levels is not None
        self.channels, self.height, self.width = self.image_shape
        self.levels = spec.levels
        self.num_logits = logit_width(self.levels)  # per dimension: 1 for binary data
        self.groups = self.channels if c.channel_dependence == "autoregressive" else 1
        head = c.head_hidden or c.hidden
        min_hidden = self.groups * (2 if c.residual else 1)
        if c.hidden < min_hidden or head < self.groups:
            raise ConfigError(f"PixelCNN needs hidden >= {min_hidden} and head_hidden >= "
                              f"{self.groups} for this data and channel_dependence")

        g = self.groups
        self.input_conv = MaskedConv2d(self.channels, c.hidden, c.first_kernel_size, "A",
                                       channel_groups=g)
        if c.residual:
            self.blocks = nn.ModuleList(
                ResidualBlock(c.hidden, c.kernel_size, g) for _ in range(c.num_layers))
        else:
            self.blocks = nn.ModuleList(
                MaskedConv2d(c.hidden, c.hidden, c.kernel_size, "B", channel_groups=g)
                for _ in range(c.num_layers))
        self.head = MaskedConv2d(c.hidden, head, 1, "B", channel_groups=g)
        # Output channels are laid out (C, L) so that colour c's logits form group c.
        self.output_conv = MaskedConv2d(head, self.channels * self.num_logits, 1, "B",
                                        channel_groups=g)

        self.num_classes = spec.num_classes if c.conditional else None
        if self.num_classes is not None:
            block_width = c.hidden // 2 if c.residual else c.hidden
            widths = [c.hidden, *[block_width] * c.num_layers, head, self.channels * self.num_logits]
            # V_l y of the paper: a linear map of the one-hot label per layer.
            self.label_bias = nn.ModuleList(
                nn.Linear(self.num_classes, w, bias=False) for w in widths)

    # ----------------------------------------------------------------------------- forward

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``(B, C, H, W)`` to network inputs in ``[-1, 1]``."""
        return 2.0 * x.float() / (self.levels - 1) - 1.0

    def logits(self, inputs: torch.Tensor, y: torch.Tensor | None = None,
               conv: ConvFn = dense) -> torch.Tensor:
        """Logits ``(B, C, H, W, L)`` of scaled inputs ``(B, C, H, W)`` (see :meth:`scale`);
        with ``conv = cache.at(i, j)`` only those at ``(i, j)``, ``(B, C, 1, 1, L)``."""
        biases: list[torch.Tensor | None] = [None] * (len(self.blocks) + 3)
        if self.num_classes is not None:
            assert y is not None
            onehot = F.one_hot(y, self.num_classes).float()  # (B, num_classes)
            biases = [lin(onehot)[:, :, None, None] for lin in self.label_bias]  # (B, w, 1, 1)

        def add(h: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return h if b is None else h + b

        h = add(conv(self.input_conv, inputs, source=True), biases[0])
        for i, block in enumerate(self.blocks):
            if self.config.residual:
                h = block(h, biases[i + 1], conv)
            else:
                h = add(conv(block, F.relu(h)), biases[i + 1])
        h = add(conv(self.head, F.relu(h)), biases[-2])
        out = add(conv(self.output_conv, F.relu(h)), biases[-1])  # (B, C*L, H, W)
        b = len(out)
        out = out.view(b, self.channels, self.num_logits, *out.shape[-2:])  # (B, C, L, H, W)
        return out.permute(0, 1, 3, 4, 2)  # (B, C, H, W, L)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``; ``y`` is ignored if unconditional."""
        self.check_input(x)
        x = x.to(self.device).view(len(x), *self.image_shape)
        return categorical_log_prob(self.logits(self.scale(x), self.labels(y, len(x))), x)

    # ---------------------------------------------------------------------------- sampling

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """Logits at one position from cached activations: every masked convolution's window
        covers only positions computed earlier in raster order."""
        cache = ConvCache(n, self.height, self.width)

        def step(inputs: torch.Tensor, i: int, j: int) -> torch.Tensor:
            return self.logits(inputs, y, cache.at(i, j))[:, :, 0, 0]  # (n, C, L)

        return step
