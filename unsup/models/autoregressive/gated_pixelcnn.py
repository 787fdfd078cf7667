"""Gated PixelCNN: PixelCNN without the blind spot, with gated activations (van den Oord et al. 2016).

The factorisation is PixelCNN's [1]: in raster order,

    p(x | y) = prod_{i=1}^{HW} prod_c softmax(logits_{i,c})[x_{i,c}],

all logits from one pass of a network that never sees the current or a later pixel. Stacked
masked convolutions never see a wedge of pixels up and to the right of each pixel (the blind
spot); Gated PixelCNN [2] removes it by running two stacks of ``p`` feature maps side by side:

* the vertical stack ``v``, a ``(k//2 + 1) x k`` convolution over the rows above and the current
  row (all of it), so ``v_l`` at row ``i`` sees whole image rows ``i - R_l ... i``,
  ``R_l = k_0//2 + l k//2``;
* the horizontal stack ``h``, a ``1 x (k//2 + 1)`` convolution over the current row up to the
  centre (centre hidden in the first layer), plus a ``1 x 1`` convolution of the vertical stack
  *shifted down one row* -- the down-shift keeps the current row, and with it the future, out.

The output at ``(i, j)`` reads ``h`` there, which sees pixels ``(i, j - R ... j - 1)`` and the
full rectangle ``rows i - 1 - R ... i - 1, columns j - R ... j + R`` (``R = R_{L-1}``): every
earlier pixel within reach, and none later. Each layer's two convolutions give ``2p`` maps
that the gated activation [2, eq. 2, 4] turns into ``p``:

    y = tanh(W_f * x + V_f^T e_y) ⊙ sigmoid(W_g * x + V_g^T e_y),

where ``V^T e_y`` is a learned bias per class (``conditional=True``) in both stacks. The
horizontal stack is residual, ``h_l = h_{l-1} + W_o y_l`` (``l >= 1``); with ``skip=True`` the
output reads ``sum_l W_s y_l`` instead of ``h_{L-1}``; then ReLU, a ``1 x 1`` convolution to
``head_hidden`` maps, ReLU, and a ``1 x 1`` convolution to ``C L`` logits per pixel.

Colour. Channels of a pixel are independent given the previous pixels by default. With
``channel_dependence="autoregressive"`` the horizontal stack's centre taps and ``1 x 1``
convolutions are masked by channel group (colour ``g`` sees colours ``< g`` of the current
pixel, [1, Sec. 3.4]), each half of the gate laid out group by group; the vertical stack only
reaches the horizontal one through the down-shift, so it needs no mask.

Sampling (:mod:`unsup.models.autoregressive.raster`): naive (``fast=False``) runs the network ``HW`` (``HWC``)
times; the cached sampler [3] (:mod:`unsup.nn.cached_conv`) computes each row of the
vertical stack once its image row is complete, and the horizontal stack one position at a time,
for the cost of about two forward passes and the same samples.

References:
    [1] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
    [2] van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu. Conditional Image
        Generation with PixelCNN Decoders. NeurIPS 2016.
    [3] Ramachandran et al. Fast Generation for Convolutional Autoregressive Models. ICLR 2017
        workshop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.raster import RasterSampling, StepFn
from unsup.nn.cached_conv import ConvCache, ConvFn, PaddedConv2d, dense
from unsup.nn.layers import MaskedConv2d, categorical_log_prob, channel_group, logit_width

CHANNEL_DEPENDENCE = ("independent", "autoregressive")


@dataclass
class GatedPixelCNNConfig:
    """Hyper-parameters of :class:`GatedPixelCNN`.

    Attributes:
        hidden: feature maps ``p`` of each stack (the gates compute ``2p``).
        num_layers: gated layers, the first (centre-hidden) one included.
        kernel_size: ``k`` of the layers after the first (odd): ``(k//2+1) x k`` vertical,
            ``1 x (k//2+1)`` horizontal convolutions.
        first_kernel_size: ``k`` of the first layer (odd, >= 3).
        skip: feed the output from the sum of per-layer skip connections instead of the last
            horizontal stack.
        head_hidden: width of the hidden ``1 x 1`` output layer (default: ``hidden``).
        channel_dependence: ``"independent"`` or ``"autoregressive"`` (R -> G -> B) channels.
        conditional: condition on the class label (needs labelled data).
    """

    hidden: int = 32
    num_layers: int = 5
    kernel_size: int = 3
    first_kernel_size: int = 7
    skip: bool = False
    head_hidden: int | None = None
    channel_dependence: str = "independent"
    conditional: bool = False


def gate(a: torch.Tensor) -> torch.Tensor:
    """``tanh(a_f) * sigmoid(a_g)`` of the two halves of the channels: ``(B, 2p, ...) -> (B, p, ...)``."""
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


def row_mask(g_out: torch.Tensor, g_in: torch.Tensor, width: int, mask_type: str) -> torch.Tensor:
    """Mask ``(out, in, 1, width)`` of a ``1 x width`` convolution ending at the centre column:
    all taps left of it, and at the centre output group ``g`` sees input groups ``< g`` (``"A"``)
    or ``<= g`` (``"B"``)."""
    mask = torch.ones(len(g_out), len(g_in), 1, width)
    rel = g_out[:, None] > g_in[None, :] if mask_type == "A" else g_out[:, None] >= g_in[None, :]
    mask[:, :, 0, -1] = rel.float()
    return mask


class GatedLayer(nn.Module):
    """One layer [2, Fig. 2]: both stacks' convolutions, the vertical-to-horizontal link, the
    horizontal output (and skip) ``1 x 1`` convolutions, and the per-class gate biases."""

    def __init__(self, in_channels: int, p: int, k: int, first: bool, groups: int,
                 num_classes: int | None, skip: bool) -> None:
        super().__init__()
        g_in = channel_group(in_channels, groups)
        g_gate = channel_group(p, groups).repeat(2)  # each half of the 2p maps group by group
        self.v_conv = PaddedConv2d(in_channels, 2 * p, (k // 2 + 1, k), top=k // 2, left=k // 2)
        self.h_conv = PaddedConv2d(in_channels, 2 * p, (1, k // 2 + 1), top=0, left=k // 2,
                                   mask=row_mask(g_gate, g_in, k // 2 + 1, "A" if first else "B"))
        self.link = nn.Conv2d(2 * p, 2 * p, 1)  # from the rows above: no mask
        self.h_out = MaskedConv2d(p, p, 1, "B", channel_groups=groups)
        self.skip = MaskedConv2d(p, p, 1, "B", channel_groups=groups) if skip else None
        self.v_label = self.h_label = None
        if num_classes is not None:
            bound = 1 / math.sqrt(num_classes)  # as nn.Linear on a one-hot label
            self.v_label = nn.Embedding(num_classes, 2 * p)
            self.h_label = nn.Embedding(num_classes, 2 * p)
            for e in (self.v_label, self.h_label):
                nn.init.uniform_(e.weight, -bound, bound)


@register(
    "gated-pixelcnn",
    "Gated PixelCNN: vertical + horizontal stacks (no blind spot), gated units, class-conditional",
    presets={
        # van den Oord et al. 2016b, Sec. 3.1: the ImageNet model has 20 layers of 384 hidden
        # units with 5x5 filters (the CIFAR-10 configuration is not given); 256-way softmax with
        # R -> G -> B masks as in PixelCNN.
        "paper": {"hidden": 384, "num_layers": 20, "kernel_size": 5, "first_kernel_size": 5,
                  "channel_dependence": "autoregressive"},
    },
)
class GatedPixelCNN(RasterSampling):
    """Gated PixelCNN over discrete images ``(C, H, W)`` with ``L <= 256`` levels.

    Raises:
        ConfigError: non-image or continuous data, more than 256 levels, ``conditional`` on
            unlabelled data, or invalid sizes.
    """

    Config = GatedPixelCNNConfig

    def __init__(self, spec: DataSpec, config: GatedPixelCNNConfig | None = None) -> None:
        c = config or GatedPixelCNNConfig()
        super().__init__(spec, c)
        self.require(levels=True, kinds=("image",), max_levels=256, labels=c.conditional)
        if len(spec.shape) != 3:
            raise ConfigError(f"GatedPixelCNN expects images (C, H, W), got shape {spec.shape}")
        if c.channel_dependence not in CHANNEL_DEPENDENCE:
            raise ConfigError(f"channel_dependence must be one of {', '.join(CHANNEL_DEPENDENCE)},"
                              f" got {c.channel_dependence!r}")
        for name in ("kernel_size", "first_kernel_size"):
            k = getattr(c, name)
            if k < 3 or k % 2 == 0:
                raise ConfigError(f"GatedPixelCNN {name} must be odd and >= 3, got {k}")
        if c.num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {c.num_layers}")
        assert spec.levels is not None
        self.image_shape = tuple(spec.shape)
        self.channels, self.height, self.width = self.image_shape
        self.levels = spec.levels
        self.num_logits = logit_width(self.levels)  # per dimension: 1 for binary data
        self.groups = self.channels if c.channel_dependence == "autoregressive" else 1
        head = c.head_hidden or c.hidden
        if c.hidden < self.groups or head < self.groups:
            raise ConfigError(f"GatedPixelCNN needs hidden and head_hidden >= {self.groups} for "
                              f"this data and channel_dependence")

        self.num_classes = spec.num_classes if c.conditional else None
        self.layers = nn.ModuleList(
            GatedLayer(self.channels if d == 0 else c.hidden, c.hidden,
                       c.first_kernel_size if d == 0 else c.kernel_size, d == 0, self.groups,
                       self.num_classes, c.skip)
            for d in range(c.num_layers))
        self.head = MaskedConv2d(c.hidden, head, 1, "B", channel_groups=self.groups)
        # Output channels are laid out (C, L) so that colour c's logits form group c.
        self.output_conv = MaskedConv2d(head, self.channels * self.num_logits, 1, "B",
                                        channel_groups=self.groups)

    # ----------------------------------------------------------------------------- forward

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``(B, C, H, W)`` to network inputs in ``[-1, 1]``."""
        return 2.0 * x.float() / (self.levels - 1) - 1.0

    def _label_biases(self, y: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the class biases ``(B, 2p, 1, 1)`` of the vertical and horizontal gates."""
        if self.num_classes is None:
            return []
        assert y is not None
        return [(layer.v_label(y)[:, :, None, None], layer.h_label(y)[:, :, None, None])
                for layer in self.layers]

    def _vertical(self, inputs: torch.Tensor, biases: list, conv: ConvFn) -> list[torch.Tensor]:
        """Pre-activations ``(B, 2p, H, W)`` of the vertical stack, one per layer."""
        v, out = inputs, []
        for d, layer in enumerate(self.layers):
            a = conv(layer.v_conv, v, source=d == 0)
            if biases:
                a = a + biases[d][0]
            out.append(a)
            v = gate(a)
        return out

    def _from_above(self, v_shifted: list[torch.Tensor], biases: list,
                    conv: ConvFn) -> list[torch.Tensor]:
        """What each horizontal gate adds from the rows above: link of the down-shifted
        vertical pre-activation, plus the horizontal class bias."""
        out = [conv(layer.link, v) for layer, v in zip(self.layers, v_shifted, strict=True)]
        return [a + b[1] for a, b in zip(out, biases, strict=True)] if biases else out

    def _horizontal(self, inputs: torch.Tensor, above: list[torch.Tensor],
                    conv: ConvFn) -> torch.Tensor:
        """Logits ``(B, C, H, W, L)`` from the horizontal stack and the head."""
        h = inputs
        skip: torch.Tensor | None = None
        for d, layer in enumerate(self.layers):
            y = gate(conv(layer.h_conv, h, source=d == 0) + above[d])
            h = conv(layer.h_out, y) if d == 0 else h + conv(layer.h_out, y)
            if layer.skip is not None:
                skip = conv(layer.skip, y) if skip is None else skip + conv(layer.skip, y)
        out = conv(self.head, F.relu(h if skip is None else skip))
        out = conv(self.output_conv, F.relu(out))  # (B, C*L, H, W)
        b = len(out)
        out = out.view(b, self.channels, self.num_logits, *out.shape[-2:])  # (B, C, L, H, W)
        return out.permute(0, 1, 3, 4, 2)  # (B, C, H, W, L)

    def logits(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, C, H, W, L)`` of scaled inputs ``(B, C, H, W)`` (see :meth:`scale`)."""
        biases = self._label_biases(y)
        v = self._vertical(inputs, biases, dense)
        v_shifted = [F.pad(a, (0, 0, 1, 0))[:, :, :-1] for a in v]  # row i holds row i - 1
        return self._horizontal(inputs, self._from_above(v_shifted, biases, dense), dense)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``; ``y`` is ignored if unconditional."""
        self.check_input(x)
        x = x.to(self.device)
        return categorical_log_prob(self.logits(self.scale(x), self.labels(y, len(x))), x)

    # ---------------------------------------------------------------------------- sampling

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """Logits at one position: the vertical stack a row at a time once its image row is
        complete, the horizontal stack at the new position only."""
        cache = ConvCache(n, self.height, self.width)
        biases = self._label_biases(y)
        p2 = 2 * self.config.hidden
        zeros = [torch.zeros(n, p2, 1, 1, device=self.device)] * len(self.layers)
        first = self._from_above(zeros, biases, cache.at(0, 0))  # row 0: nothing above
        above: list[torch.Tensor] = first
        done = -1  # last row whose vertical stack is computed

        def step(inputs: torch.Tensor, i: int, j: int) -> torch.Tensor:
            nonlocal above, done
            while done < i - 1:
                done += 1
                rows = cache.row(done)
                above = self._from_above(self._vertical(inputs, biases, rows), biases, rows)
            here = first if i == 0 else [a[:, :, :, j:j + 1] for a in above]
            return self._horizontal(inputs, here, cache.at(i, j))[:, :, 0, 0]  # (n, C, L)

        return step
