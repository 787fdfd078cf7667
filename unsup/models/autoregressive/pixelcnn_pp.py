"""PixelCNN++: shifted convolutions and a discretized logistic mixture (Salimans et al. 2017).

An image of ``C`` channels, ``H x W`` pixels and ``L`` levels is factorised in raster order,
``p(x) = prod_i p(x_i | x_<i)``, where each pixel's distribution is a mixture of ``K``
components shared by its colours [1, Sec. 2.1-2.2]:

    p(x_i | x_<i) = sum_k pi_k prod_c P(x_{i,c} | mu_{c,k} + sum_{c' < c} alpha_{c,c',k} v_{i,c'},
                                         s_{c,k}),

``v = 2x/(L-1) - 1`` the value on ``[-1, 1]`` and ``P(x | mu, s)`` the discretized logistic, the
mass of ``x``'s bin with the tails given to the first and last level
(:func:`unsup.nn.layers.discretized_logistic_mixture_log_prob`). The linear coefficients
``alpha = tanh(.)`` make G depend on R and B on R and G within a pixel (the paper's three for
RGB; ``C (C-1) / 2`` in general). ``pi``, ``mu``, ``log s`` and ``alpha`` -- ``K (1 + 2C +
C(C-1)/2)`` numbers per pixel -- come from one pass of a network that never sees ``x_i`` or
later pixels [1, Sec. 2.3-2.4]:

* two streams instead of masked convolutions: ``u`` (down-shifted ``2 x 3`` convolutions: all
  rows above the pixel) and ``ul`` (down-right-shifted ``2 x 2`` convolutions: above and to the
  left), which together cover every earlier pixel without PixelCNN's blind spot; the input gets
  a channel of ones so the network can tell the image from the zero padding;
* gated residual blocks with ``concat_elu(x) = elu([x, -x])``:
  ``x + a * sigmoid(b)``, ``[a; b] = conv(dropout(concat_elu(conv(concat_elu(x)) +
  nin(concat_elu(aux)))))``, where ``aux`` is ``u`` for the ``ul`` stream (and, on the way down,
  the matching block output of the way up);
* ``num_stages`` resolutions, ``res_per_stage`` blocks each: stride-2 shifted convolutions down,
  shifted transposed convolutions up, every block output of the way up fed to the mirrored block
  of the way down (a U-Net of shortcut connections) [1, Sec. 2.4, Fig. 2];
* ``elu`` then a ``1 x 1`` convolution of ``ul`` to the mixture parameters.

Sizes need not be powers of two: each downsampling halves rounding up, and the way up crops to
the size of its shortcut. Simplifications: no weight normalisation, data-dependent
initialisation or Polyak averaging (the paper's training details); class conditioning
(``conditional=True``) adds a learned ``V y`` to every block's gate, as the paper's ``h``.

Sampling is ancestral in raster order (:mod:`unsup.models.autoregressive.raster`), naive only
(``supports_fast_sampling = False``): a whole network pass per pixel. The colours of a pixel are
drawn in turn, each from its exact conditional: the pixel's mixture with component weights
updated by the colours drawn so far, ``log p(x_c = l | x_<c) = logsumexp_k [log w_k(x_<c) +
log P_c(l | k)]``, tabulated over the ``L`` levels -- at ``T = 1`` the same distribution as the
reference code's component-then-logistic draw. ``fast=True`` runs the network once per pixel and
reuses its parameters for the ``C`` colours; ``fast=False`` runs it once per colour; both give
the same samples. Temperature ``T`` divides the tabulated log-probabilities (``softmax(log p /
T)``, ``T = 0``: the mode), as for every raster-order model here, rather than scaling the
logistic scales or mixture logits.

References:
    [1] Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN with Discretized
        Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
        (Code: github.com/openai/pixel-cnn.)
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
from unsup.nn.layers import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_table,
)

Params = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # logit_pi, mu, log_s


@dataclass
class PixelCNNPPConfig:
    """Hyper-parameters of :class:`PixelCNNPP`.

    Attributes:
        hidden: feature maps of both streams (the paper's ``nr_filters``).
        res_per_stage: gated residual blocks per resolution (``nr_resnet``).
        num_stages: resolutions (each after the first at half the size).
        num_logistics: mixture components ``K`` per pixel (``nr_logistic_mix``).
        dropout: dropout inside the residual blocks (training only).
        conditional: condition on the class label (needs labelled data).
    """

    hidden: int = 24  # a 28 x 28 training step of batch 32 takes ~1 s on one core; 32: ~1.7 s
    res_per_stage: int = 1
    num_stages: int = 3
    num_logistics: int = 5
    dropout: float = 0.0
    conditional: bool = False


# --------------------------------------------------------------------------- shifted layers


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of the output is row ``i - 1`` of ``x`` (zeros first): ``(B, C, H, W)``."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Column ``j`` of the output is column ``j - 1`` of ``x`` (zeros first)."""
    return F.pad(x, (1, 0))[..., :-1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """``elu([x, -x])`` along the channels: twice the channels, no information lost [1]."""
    return F.elu(torch.cat([x, -x], dim=1))


class DownShiftedConv2d(nn.Conv2d):
    """Output ``(i, j)`` sees input rows ``i - kh + 1 .. i`` and columns ``j +- (kw - 1)/2``
    (padding above and on both sides); ``stride = 2`` halves the size, rounding up."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int] = (2, 3),
                 stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        return super().forward(F.pad(x, ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)))


class DownRightShiftedConv2d(nn.Conv2d):
    """Output ``(i, j)`` sees input rows ``i - kh + 1 .. i`` and columns ``j - kw + 1 .. j``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int] = (2, 2),
                 stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        return super().forward(F.pad(x, (kw - 1, 0, kh - 1, 0)))


class DownShiftedDeconv2d(nn.ConvTranspose2d):
    """Stride-2 ``2 x 3`` transposed convolution: fine row ``y`` reads coarse row ``y // 2``,
    which only saw rows above ``2 (y // 2) <= y``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, (2, 3), stride=2)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        out = super().forward(x)  # (B, C, 2h, 2w + 1)
        return out[:, :, :size[0], 1:1 + size[1]]  # centre the 3 columns, as the reference crop


class DownRightShiftedDeconv2d(nn.ConvTranspose2d):
    """Stride-2 ``2 x 2`` transposed convolution: fine ``(y, x)`` reads coarse
    ``(y // 2, x // 2)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, (2, 2), stride=2)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[:, :, :size[0], :size[1]]  # (B, C, H, W)


class GatedResnet(nn.Module):
    """``x + a * sigmoid(b)``, ``[a; b] = conv(dropout(concat_elu(conv(concat_elu(x)) +
    nin(concat_elu(aux))))) [+ V y]`` [1, Sec. 2.4]."""

    def __init__(self, channels: int, conv: type[nn.Conv2d], aux_channels: int = 0,
                 dropout: float = 0.0, num_classes: int | None = None) -> None:
        super().__init__()
        self.conv1 = conv(2 * channels, channels)
        self.aux = nn.Conv2d(2 * aux_channels, channels, 1) if aux_channels else None
        self.drop = nn.Dropout(dropout)
        self.conv2 = conv(2 * channels, 2 * channels)
        with torch.no_grad():  # start near the identity (the reference's init_scale = 0.1)
            self.conv2.weight.mul_(0.1)
        self.label = None if num_classes is None else nn.Linear(num_classes, 2 * channels, bias=False)

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None,
                onehot_y: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv1(concat_elu(x))
        if self.aux is not None:
            assert aux is not None
            c = c + self.aux(concat_elu(aux))
        c = self.conv2(self.drop(concat_elu(c)))  # (B, 2F, H, W)
        if self.label is not None:
            assert onehot_y is not None
            c = c + self.label(onehot_y)[:, :, None, None]
        a, b = c.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


# -------------------------------------------------------------------------------- the model


@register(
    "pixelcnn++",
    "PixelCNN++: shifted-conv U-Net with a discretized logistic mixture (naive sampling)",
    presets={
        # Salimans et al. 2017, CIFAR-10 (2.92 bits/dim): 3 resolutions of 5 gated resnet blocks,
        # 160 filters, 10 logistics, dropout 0.5.
        "paper": {"hidden": 160, "res_per_stage": 5, "num_stages": 3, "num_logistics": 10,
                  "dropout": 0.5},
    },
)
class PixelCNNPP(RasterSampling):
    """PixelCNN++ over discrete images ``(C, H, W)`` (or vectors ``(D,)`` as one-row images).

    Raises:
        ConfigError: non-image or continuous data, ``conditional`` on unlabelled data, or
            invalid sizes.
    """

    Config = PixelCNNPPConfig
    supports_fast_sampling = False

    def __init__(self, spec: DataSpec, config: PixelCNNPPConfig | None = None) -> None:
        c = config or PixelCNNPPConfig()
        super().__init__(spec, c)
        self.require(levels=True, kinds=("image", "vector"), labels=c.conditional)
        self.image_shape = self.raster_shape(spec, "PixelCNN++")
        for name in ("hidden", "res_per_stage", "num_stages", "num_logistics"):
            if getattr(c, name) < 1:
                raise ConfigError(f"PixelCNN++ {name} must be >= 1, got {getattr(c, name)}")
        if not 0 <= c.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {c.dropout}")
        assert spec.levels is not None
        self.channels, self.height, self.width = self.image_shape
        self.levels = spec.levels
        self.groups = self.channels  # the colours of a pixel are drawn in turn
        self.num_classes = spec.num_classes if c.conditional else None

        f, r, cls = c.hidden, c.res_per_stage, self.num_classes
        cin = self.channels + 1  # the image and a channel of ones
        self.u_in = DownShiftedConv2d(cin, f, (2, 3))
        self.ul_in_up = DownShiftedConv2d(cin, f, (1, 3))
        self.ul_in_left = DownRightShiftedConv2d(cin, f, (2, 1))

        def u_block(aux: int) -> GatedResnet:
            return GatedResnet(f, DownShiftedConv2d, aux, c.dropout, cls)

        def ul_block(aux: int) -> GatedResnet:
            return GatedResnet(f, DownRightShiftedConv2d, aux, c.dropout, cls)

        s = c.num_stages
        self.up_u = nn.ModuleList(nn.ModuleList(u_block(0) for _ in range(r)) for _ in range(s))
        self.up_ul = nn.ModuleList(nn.ModuleList(ul_block(f) for _ in range(r)) for _ in range(s))
        self.down_u_sample = nn.ModuleList(DownShiftedConv2d(f, f, (2, 3), 2) for _ in range(s - 1))
        self.down_ul_sample = nn.ModuleList(DownRightShiftedConv2d(f, f, (2, 2), 2)
                                            for _ in range(s - 1))
        # The way down: the coarsest stage has r blocks, every later one r + 1 (one per shortcut).
        sizes = [r] + [r + 1] * (s - 1)
        self.down_u = nn.ModuleList(nn.ModuleList(u_block(f) for _ in range(n)) for n in sizes)
        self.down_ul = nn.ModuleList(nn.ModuleList(ul_block(2 * f) for _ in range(n)) for n in sizes)
        self.up_u_sample = nn.ModuleList(DownShiftedDeconv2d(f, f) for _ in range(s - 1))
        self.up_ul_sample = nn.ModuleList(DownRightShiftedDeconv2d(f, f) for _ in range(s - 1))
        self.num_coeffs = self.channels * (self.channels - 1) // 2
        self.out = nn.Conv2d(f, c.num_logistics * (1 + 2 * self.channels + self.num_coeffs), 1)

    # ----------------------------------------------------------------------------- forward

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``(B, C, H, W)`` to network inputs ``v = 2x/(L-1) - 1`` in ``[-1, 1]``."""
        return 2.0 * x.to(self.out.weight.dtype) / (self.levels - 1) - 1.0

    def unscale(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network inputs back to long levels (exact: the levels are ``2/(L-1)`` apart)."""
        return ((inputs + 1.0) * (self.levels - 1) / 2.0).round().long()

    def network(self, inputs: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The raw per-pixel outputs of scaled inputs ``(B, C, H, W)``: ``logit_pi`` ``(B, H, W,
        K)``, ``mu`` and ``log_s`` ``(B, C, H, W, K)`` (``mu`` before the colour shift), and the
        coefficients ``alpha`` ``(B, C(C-1)/2, H, W, K)``; at ``(i, j)`` a function of the
        pixels before ``(i, j)`` only."""
        onehot = None
        if self.num_classes is not None:
            assert y is not None
            onehot = F.one_hot(y, self.num_classes).to(inputs.dtype)  # (B, classes)
        b = len(inputs)
        x = torch.cat([inputs, inputs.new_ones(b, 1, *inputs.shape[2:])], dim=1)  # (B, C+1, H, W)
        u = down_shift(self.u_in(x))  # rows above
        ul = down_shift(self.ul_in_up(x)) + right_shift(self.ul_in_left(x))  # above and left
        us, uls = [u], [ul]  # every output of the way up, for the shortcuts
        for s, (u_blocks, ul_blocks) in enumerate(zip(self.up_u, self.up_ul, strict=True)):
            if s > 0:
                u, ul = self.down_u_sample[s - 1](u), self.down_ul_sample[s - 1](ul)
                us.append(u)
                uls.append(ul)
            for u_block, ul_block in zip(u_blocks, ul_blocks, strict=True):
                u = u_block(u, None, onehot)
                ul = ul_block(ul, u, onehot)
                us.append(u)
                uls.append(ul)
        u, ul = us.pop(), uls.pop()  # the way down starts from the last block of the way up
        for s, (u_blocks, ul_blocks) in enumerate(zip(self.down_u, self.down_ul, strict=True)):
            if s > 0:
                size = tuple(us[-1].shape[2:])  # the finer size this stage works at
                u = self.up_u_sample[s - 1](u, size)
                ul = self.up_ul_sample[s - 1](ul, size)
            for u_block, ul_block in zip(u_blocks, ul_blocks, strict=True):
                u = u_block(u, us.pop(), onehot)
                ul = ul_block(ul, torch.cat([u, uls.pop()], dim=1), onehot)
        assert not us and not uls
        out = self.out(F.elu(ul))  # (B, K (1 + 2C + C(C-1)/2), H, W)
        k = self.config.num_logistics
        logit_pi = out[:, :k].permute(0, 2, 3, 1)  # (B, H, W, K)
        rest = out[:, k:].view(b, -1, k, *out.shape[2:]).permute(0, 1, 3, 4, 2)  # (B, 2C+P, H, W, K)
        c = self.channels
        return logit_pi, rest[:, :c], rest[:, c:2 * c], torch.tanh(rest[:, 2 * c:])

    def shift_means(self, mu: torch.Tensor, alpha: torch.Tensor, inputs: torch.Tensor
                    ) -> torch.Tensor:
        """``mu_c + sum_{c' < c} alpha_{c,c'} v_{c'}``: each colour's means move linearly with the
        earlier colours of the same pixel [1, Sec. 2.2]; pairs ``(c, c')`` in the order
        ``(1, 0), (2, 0), (2, 1), ..`` (the paper's for RGB)."""
        means = [mu[:, 0]]
        for c in range(1, self.channels):
            first = c * (c - 1) // 2
            shift = sum(alpha[:, first + c2] * inputs[:, c2, ..., None] for c2 in range(c))
            means.append(mu[:, c] + shift)
        return torch.stack(means, dim=1)  # (B, C, *S, K)

    def params(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> Params:
        """Mixture parameters of every pixel: ``logit_pi`` ``(B, H, W, K)``, shifted ``mu`` and
        ``log_s`` ``(B, C, H, W, K)``."""
        logit_pi, mu, log_s, alpha = self.network(inputs, y)
        return logit_pi, self.shift_means(mu, alpha, inputs), log_s

    def component_log_prob(self, x: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor
                           ) -> torch.Tensor:
        """``log P(x_c | component k)`` for levels ``x`` ``(B, C, *S)``: ``(B, C, *S, K)``."""
        one = mu.new_zeros(1)  # a single-component "mixture" per k
        return discretized_logistic_mixture_log_prob(
            x[..., None].expand_as(mu), one, mu[..., None], log_s[..., None], self.levels)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``; ``y`` is ignored if unconditional."""
        self.check_input(x)
        x = x.to(self.device).view(len(x), *self.image_shape)
        logit_pi, mu, log_s = self.params(self.scale(x), self.labels(y, len(x)))
        comp = self.component_log_prob(x, mu, log_s).sum(1)  # (B, H, W, K): colours given k
        pixel = torch.logsumexp(F.log_softmax(logit_pi, -1) + comp, dim=-1)  # (B, H, W)
        return pixel.flatten(1).sum(1)

    def tables(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """``log p(x_c = l | x_<c, earlier pixels)`` for every colour and level: ``(B, C, *S, L)``
        for levels ``x`` ``(B, C, *S)``; colour ``c``'s table uses ``x_<c`` only."""
        logit_pi, mu, log_s = params
        log_w = F.log_softmax(logit_pi, -1)  # (B, *S, K): component weights given x_<c
        comp = self.component_log_prob(x, mu, log_s)  # (B, C, *S, K)
        one = mu.new_zeros(1)
        out = []
        for c in range(self.channels):
            post = F.log_softmax(log_w, -1)
            table = None
            for k in range(mu.shape[-1]):  # one component at a time: memory B S L, not B S K L
                t = post[..., k, None] + discretized_logistic_mixture_table(
                    one, mu[:, c, ..., k, None], log_s[:, c, ..., k, None], self.levels)
                table = t if table is None else torch.logaddexp(table, t)
            assert table is not None
            out.append(table)  # (B, *S, L)
            log_w = log_w + comp[:, c]
        return torch.stack(out, dim=1)

    def logits(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Per-colour conditional log-probabilities ``(B, C, H, W, L)`` of scaled inputs (see
        :meth:`tables`): the "logits" the raster sampler draws from."""
        return self.tables(self.unscale(inputs), self.params(inputs, y))

    # ---------------------------------------------------------------------------- sampling

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """No activation cache: the whole network once per pixel, its raw outputs at ``(i, j)``
        (which do not depend on pixel ``(i, j)``) reused for the pixel's colours."""
        at: tuple[int, int] | None = None
        raw: tuple[torch.Tensor, ...] = ()  # logit_pi, mu, log_s, alpha at pixel ``at``

        def step(inputs: torch.Tensor, i: int, j: int) -> torch.Tensor:
            nonlocal at, raw
            if at != (i, j):
                at = (i, j)
                logit_pi, *rest = self.network(inputs, y)
                raw = (logit_pi[:, i:i + 1, j:j + 1], *(t[:, :, i:i + 1, j:j + 1] for t in rest))
            logit_pi, mu, log_s, alpha = raw
            here = inputs[:, :, i:i + 1, j:j + 1]  # (n, C, 1, 1)
            params = (logit_pi, self.shift_means(mu, alpha, here), log_s)
            return self.tables(self.unscale(here), params)[:, :, 0, 0]  # (n, C, L)

        return step
