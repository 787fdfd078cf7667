"""PixelSNAIL: masked convolutions interleaved with causal self-attention (Chen et al. 2018).

An image of ``C`` channels and ``H x W`` pixels with ``L`` levels is factorised in raster order,
the channels of a pixel independent given the earlier pixels (as :mod:`unsup.models.autoregressive.pixelcnn`'s
default),

    p(x | y) = prod_{i=1}^{HW} prod_c softmax(logits_{i,c})[x_{i,c}].

PixelCNN's stacked masked convolutions see a bounded, blind-spotted window; PixelSNAIL [1] adds
self-attention over *all* earlier pixels. The network, with ``F = hidden`` feature maps:

* a mask-A convolution of the scaled image (centre pixel hidden) to ``F`` maps;
* ``num_blocks`` blocks, each ``res_per_block`` gated residual blocks (PixelCNN++'s [2]):

      h <- h + a * sigmoid(b),   [a; b] = W_2 ELU(Conv_B(ELU(h)))       (mask-B k x k conv)

  then a causal attention over the pixels in raster order: keys and values from
  ``[x_j, h_j, pos_j]`` (the pixel itself, its features, its coordinates), queries from
  ``[h_i, pos_i]``; pixel ``i`` attends to pixels ``j < i`` only, since ``x_j`` enters the keys
  (a zero slot stands in for "nothing yet" at the first pixel). The result ``m`` joins the
  stream through a ``1 x 1`` gated residual block: ``h <- h + a * sigmoid(b)``,
  ``[a; b] = W_2 ELU(W_1 ELU(h) + V ELU(m))``;
* output ``logits = W_o ELU(h)``, ``C L`` per pixel.

Simplifications of [1]: mask-A/B convolutions instead of the shifted ``2 x 3`` / ``2 x 1``
convolutions (mask B keeps PixelCNN's blind spot inside the convolutional stream; attention
covers it), one linear projection for queries, keys and values instead of a gated residual
block each, and a categorical output instead of the discretized logistic mixture. Class
conditioning adds a learned embedding of ``y`` to the features before every block.

Sampling: naive only (``supports_fast_sampling = False``): every pixel runs the whole network,
``H W`` passes; ``sample(fast=True)`` is accepted and is the same naive sampler.

References:
    [1] Chen, Mishra, Rohaninejad, Abbeel. PixelSNAIL: An Improved Autoregressive Generative
        Model. ICML 2018. (Public code: github.com/neocxi/pixelsnail-public.)
    [2] Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN with Discretized
        Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
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
from unsup.nn.attention import MultiHeadAttention
from unsup.nn.layers import MaskedConv2d, categorical_log_prob, logit_width


@dataclass
class PixelSNAILConfig:
    """Hyper-parameters of :class:`PixelSNAIL`.

    Attributes:
        hidden: feature maps ``F`` of the residual stream.
        num_blocks: attention blocks (each: residual blocks, then attention).
        res_per_block: gated residual blocks before each attention.
        kernel_size: kernel of the mask-B convolutions (odd).
        first_kernel_size: kernel of the mask-A input convolution (odd, >= 3).
        key_dim: size of queries and keys (over all heads).
        value_dim: size of the attention values (over all heads).
        num_heads: attention heads.
        dropout: dropout inside the residual blocks (training only).
        conditional: condition on the class label (needs labelled data).
    """

    hidden: int = 64
    num_blocks: int = 2
    res_per_block: int = 2
    kernel_size: int = 3
    first_kernel_size: int = 5
    key_dim: int = 16
    value_dim: int = 32
    num_heads: int = 1
    dropout: float = 0.0
    conditional: bool = False


class GatedResidual(nn.Module):
    """``h + a * sigmoid(b)``, ``[a; b] = W_2 ELU(conv(ELU(h)) [+ V ELU(aux)])`` [2].

    ``conv`` is a mask-B ``k x k`` convolution (``kernel_size > 1``) or a ``1 x 1`` one.
    """

    def __init__(self, channels: int, kernel_size: int, dropout: float,
                 aux_channels: int | None = None) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B")
        self.aux = None if aux_channels is None else nn.Conv2d(aux_channels, channels, 1)
        self.drop = nn.Dropout(dropout)
        self.gate = nn.Conv2d(channels, 2 * channels, 1)

    def forward(self, h: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv(F.elu(h))
        if self.aux is not None:
            assert aux is not None
            c = c + self.aux(F.elu(aux))
        a, b = self.gate(self.drop(F.elu(c))).chunk(2, dim=1)
        return h + a * torch.sigmoid(b)


@register(
    "pixelsnail",
    "PixelSNAIL: masked convolutions + causal self-attention over pixels (naive sampling)",
    presets={
        # Chen et al. 2018, CIFAR-10 (2.85 bits/dim), as in the public code's h12_noup_smallkey:
        # 12 attention blocks of 5 gated residual blocks, 256 feature maps, keys of 16 and values
        # of 128 (F / 2), one head, dropout 0.5.
        "paper": {"hidden": 256, "num_blocks": 12, "res_per_block": 5, "kernel_size": 3,
                  "first_kernel_size": 5, "key_dim": 16, "value_dim": 128, "num_heads": 1,
                  "dropout": 0.5},
    },
)
class PixelSNAIL(RasterSampling):
    """PixelSNAIL over discrete images ``(C, H, W)`` (or vectors ``(D,)`` as one-row images).

    Raises:
        ConfigError: non-image or continuous data, ``conditional`` on unlabelled data, or
            invalid sizes.
    """

    Config = PixelSNAILConfig
    supports_fast_sampling = False

    def __init__(self, spec: DataSpec, config: PixelSNAILConfig | None = None) -> None:
        c = config or PixelSNAILConfig()
        super().__init__(spec, c)
        self.require(levels=True, kinds=("image", "vector"), labels=c.conditional)
        self.image_shape = self.raster_shape(spec, "PixelSNAIL")
        if c.kernel_size % 2 == 0 or c.first_kernel_size % 2 == 0 or c.first_kernel_size < 3:
            raise ConfigError(f"PixelSNAIL kernel sizes must be odd (the first >= 3), got "
                              f"{c.kernel_size} and {c.first_kernel_size}")
        for name in ("hidden", "num_blocks", "res_per_block", "key_dim", "value_dim",
                     "num_heads"):
            if getattr(c, name) < 1:
                raise ConfigError(f"PixelSNAIL {name} must be >= 1, got {getattr(c, name)}")
        if not 0 <= c.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {c.dropout}")
        assert spec.levels is not None
        self.channels, self.height, self.width = self.image_shape
        self.levels = spec.levels
        self.num_logits = logit_width(self.levels)  # per dimension: 1 for binary data
        self.groups = 1  # the channels of a pixel are drawn together

        f = c.hidden
        self.input_conv = MaskedConv2d(self.channels, f, c.first_kernel_size, "A")
        self.res = nn.ModuleList(
            nn.ModuleList(GatedResidual(f, c.kernel_size, c.dropout) for _ in range(c.res_per_block))
            for _ in range(c.num_blocks))
        self.attn = nn.ModuleList(
            MultiHeadAttention(f + 2, self.channels + f + 2, c.num_heads, c.key_dim, c.value_dim,
                               out_dim=c.value_dim)
            for _ in range(c.num_blocks))
        self.mix = nn.ModuleList(GatedResidual(f, 1, c.dropout, aux_channels=c.value_dim)
                                 for _ in range(c.num_blocks))
        self.output_conv = nn.Conv2d(f, self.channels * self.num_logits, 1)
        # Pixel coordinates in [-0.5, 0.5), PixelSNAIL's "background" channels: (1, 2, H, W).
        rows = (torch.arange(self.height) / self.height - 0.5)[:, None].expand(-1, self.width)
        cols = (torch.arange(self.width) / self.width - 0.5)[None, :].expand(self.height, -1)
        self.register_buffer("background", torch.stack([rows, cols])[None], persistent=False)

        self.num_classes = spec.num_classes if c.conditional else None
        if self.num_classes is not None:
            self.label_bias = nn.Embedding(self.num_classes, f * c.num_blocks)

    # ----------------------------------------------------------------------------- forward

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``(B, C, H, W)`` to network inputs in ``[-1, 1]``."""
        return 2.0 * x.to(self.background.dtype) / (self.levels - 1) - 1.0

    def attend(self, i: int, inputs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Block ``i``'s causal attention over pixels: ``(B, value_dim, H, W)``."""
        b = len(h)
        pos = self.background.expand(b, -1, -1, -1)
        query = torch.cat([h, pos], 1).flatten(2).transpose(1, 2)  # (B, HW, F+2)
        content = torch.cat([inputs, h, pos], 1).flatten(2).transpose(1, 2)  # (B, HW, C+F+2)
        # Shift the content one pixel later (zeros first): with a causal mask, pixel i then
        # attends to the content of pixels j < i, never to its own x_i.
        content = F.pad(content, (0, 0, 1, 0))[:, :-1]
        m = self.attn[i](query, content, causal=True)  # (B, HW, value_dim)
        return m.transpose(1, 2).reshape(b, -1, self.height, self.width)

    def logits(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, C, H, W, L)`` of scaled inputs ``(B, C, H, W)`` (see :meth:`scale`)."""
        biases: list[torch.Tensor | None] = [None] * self.config.num_blocks
        if self.num_classes is not None:
            assert y is not None
            biases = [b[:, :, None, None] for b in
                      self.label_bias(y).chunk(self.config.num_blocks, 1)]  # (B, F, 1, 1)
        h = self.input_conv(inputs)  # (B, F, H, W)
        for i, (res, mix) in enumerate(zip(self.res, self.mix, strict=True)):
            if biases[i] is not None:
                h = h + biases[i]
            for block in res:
                h = block(h)
            h = mix(h, self.attend(i, inputs, h))
        out = self.output_conv(F.elu(h))  # (B, C*L, H, W)
        out = out.view(len(out), self.channels, self.num_logits, self.height, self.width)
        return out.permute(0, 1, 3, 4, 2)  # (B, C, H, W, L)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``; ``y`` is ignored if unconditional."""
        self.check_input(x)
        x = x.to(self.device).view(len(x), *self.image_shape)
        return categorical_log_prob(self.logits(self.scale(x), self.labels(y, len(x))), x)

    # ---------------------------------------------------------------------------- sampling

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """No cache: the naive step (the whole network per pixel), so ``fast=True`` equals
        ``fast=False``."""

        def step(inputs: torch.Tensor, i: int, j: int) -> torch.Tensor:
            return self.logits(inputs, y)[:, :, i, j]  # (n, C, L)

        return step
