"""Convolutions evaluated one position (or one row) at a time from cached inputs.

Sampling an autoregressive convolutional network naively runs the whole network once per new
pixel: ``H W`` full forward passes, almost all of it recomputing activations that cannot have
changed. Fast PixelCNN++ [1] caches every layer's activations and computes, when a pixel is
generated, only what depends on it. This module holds that machinery for any network whose
spatial layers are stride-1 convolutions:

* :class:`PaddedConv2d` -- a convolution with an explicit footprint: output ``(p, q)`` reads
  input rows ``p - top ... p - top + kh - 1`` and columns ``q - left ... q - left + kw - 1``
  (zeros outside the image), optionally through a fixed 0/1 mask. Gated PixelCNN's vertical
  (``ceil(k/2) x k``, rows up to ``p``) and horizontal (``1 x ceil(k/2)``, columns up to ``q``)
  stacks are such convolutions; a same-padded :class:`~unsup.nn.layers.MaskedConv2d` is one
  with ``top = left = k // 2``.
* :class:`ConvCache` -- evaluates convolutions at the current position ``(i, j)`` (or row ``i``).
  A model writes its forward pass once, calling every spatial convolution as
  ``conv_fn(conv, h)``; with ``conv_fn = dense`` that is the ordinary full-map pass used for
  training, with ``conv_fn = cache.at(i, j)`` the same code runs on ``(n, C, 1, 1)`` tensors:
  the cache stores ``h`` at ``(i, j)`` in a zero-padded buffer of that convolution's input and
  returns the convolution at ``(i, j)`` from the buffered window. Pointwise layers need no
  cache: activations and biases run unchanged on the small tensors, and ``1 x 1`` convolutions
  passed to the cache are applied directly (as a matrix product, several times faster than
  ``conv2d`` on ``1 x 1`` maps).
  The network's input image is read directly (``source=True``), since its newest pixel changes
  after the step that reads it.

A raster-order network evaluated at ``(0, 0), (0, 1), ...`` in turn therefore computes every
activation exactly once -- the cost of one forward pass instead of ``H W`` of them -- provided
each convolution's window at ``(i, j)`` only covers positions already computed (causal
convolutions: rows above, or the current row up to ``j``). Layers whose window reaches to the
right in the current row (Gated PixelCNN's vertical stack) are evaluated a row at a time with
``cache.row(i)`` once that row of the image is complete. Kernels are cropped to their non-zero
taps, so masked-out rows below the centre cost nothing.

References:
    [1] Ramachandran, Paine, Khorrami, Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell,
        Huang. Fast Generation for Convolutional Autoregressive Models. ICLR 2017 workshop.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class ConvFn(Protocol):
    """How a model applies its spatial convolutions: :func:`dense` or a :class:`ConvCache`."""

    def __call__(self, conv: nn.Conv2d, h: torch.Tensor, *, source: bool = False) -> torch.Tensor:
        ...


def dense(conv: nn.Conv2d, h: torch.Tensor, *, source: bool = False) -> torch.Tensor:
    """The ordinary full-map evaluation: ``conv(h)``."""
    return conv(h)


class PaddedConv2d(nn.Conv2d):
    """A stride-1 convolution with explicit zero padding and an optional fixed 0/1 mask.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``(kh, kw)``.
        top: rows of zeros above; output row ``p`` reads input rows ``p - top`` to
            ``p - top + kh - 1``, and ``kh - 1 - top`` rows of zeros are added below.
        left: columns of zeros to the left, likewise.
        mask: 0/1 tensor of the weight's shape ``(out, in, kh, kw)``, or None.
        bias: add a learned bias.
    """

    mask: torch.Tensor | None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 top: int, left: int, mask: torch.Tensor | None = None, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=0, bias=bias)
        kh, kw = kernel_size
        if not (0 <= top < kh and 0 <= left < kw):
            raise ValueError(f"padding top={top}, left={left} outside a {kh}x{kw} kernel")
        self.pads = (left, kw - 1 - left, top, kh - 1 - top)  # F.pad order
        if mask is not None and tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask of shape {tuple(mask.shape)} for weight {tuple(self.weight.shape)}")
        self.register_buffer("mask", mask)

    def effective_weight(self) -> torch.Tensor:
        return self.weight if self.mask is None else self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pads), self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        left, _, top, _ = self.pads
        return f"{super().extra_repr()}, top={top}, left={left}, masked={self.mask is not None}"


class Kernel:
    """A convolution cropped to its non-zero taps: output ``(p, q)`` reads input rows
    ``p - top + a`` and columns ``q - left + b`` for ``a < kh``, ``b < kw`` (either offset may
    be negative after cropping).

    Attributes:
        weight: ``(out, in, kh, kw)``.
        bias: ``(out,)`` or None.
        top: row offset.
        left: column offset.
        matrix: the weight as ``(out, in kh kw)``, for one position.
        pads: zero padding ``(left, right, top, bottom)`` a buffer of the input needs.
        pointwise: a ``1 x 1`` convolution at the output's own position.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, top: int, left: int) -> None:
        self.weight, self.bias, self.top, self.left = weight, bias, top, left
        kh, kw = weight.shape[-2:]
        self.matrix = weight.reshape(len(weight), -1)
        self.pads = (max(left, 0), max(kw - 1 - left, 0), max(top, 0), max(kh - 1 - top, 0))
        self.pointwise = (kh, kw) == (1, 1) and top == 0 and left == 0

    @classmethod
    def of(cls, conv: nn.Conv2d) -> Kernel:
        """The kernel of a :class:`PaddedConv2d`, or of a same-padded ``nn.Conv2d`` (including
        :class:`~unsup.nn.layers.MaskedConv2d`, whose ``mask`` buffer is applied)."""
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError("cached evaluation needs stride 1, dilation 1 and groups 1")
        if isinstance(conv, PaddedConv2d):
            w = conv.effective_weight()
            left, _, top, _ = conv.pads
        else:
            if not isinstance(conv.padding, tuple):
                raise ValueError(f"cannot cache a convolution with padding={conv.padding!r}")
            mask = getattr(conv, "mask", None)
            w = conv.weight if mask is None else conv.weight * mask
            top, left = conv.padding
        w = w.detach()
        taps = w.ne(0).any(0).any(0)  # (kh, kw)
        rows, cols = taps.any(1).nonzero(), taps.any(0).nonzero()
        if len(rows) == 0:  # an all-zero kernel: keep one tap so shapes stay valid
            r0 = r1 = c0 = c1 = 0
        else:
            r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        bias = None if conv.bias is None else conv.bias.detach()
        return cls(w[:, :, r0:r1 + 1, c0:c1 + 1].contiguous(), bias, top - r0, left - c0)


class ConvCache:
    """Evaluates convolutions at one position or one row from cached, zero-padded inputs.

    Select where to evaluate with :meth:`at` or :meth:`row` (both return the cache, which is the
    ``conv_fn`` to pass to the model's forward). Buffers and cropped kernels are made on first
    use of each convolution, so the cache holds a snapshot of the weights: make a new cache
    after changing them.

    Args:
        n: batch size.
        height: image height ``H``.
        width: image width ``W``.
    """

    def __init__(self, n: int, height: int, width: int) -> None:
        self.n, self.height, self.width = n, height, width
        self.i, self.j = 0, 0
        self._kernels: dict[nn.Module, Kernel] = {}
        self._buffers: dict[nn.Module, torch.Tensor] = {}

    def at(self, i: int, j: int) -> ConvCache:
        """Evaluate at position ``(i, j)``: inputs and outputs are ``(n, C, 1, 1)``."""
        self.i, self.j = i, j
        return self

    def row(self, i: int) -> ConvCache:
        """Evaluate all of row ``i``: inputs and outputs are ``(n, C, 1, W)``."""
        self.i, self.j = i, None
        return self

    def __call__(self, conv: nn.Conv2d, h: torch.Tensor, *, source: bool = False) -> torch.Tensor:
        """``conv`` at the current position or row.

        Args:
            conv: the convolution (its weights are read once, on first use).
            h: its input at the current position ``(n, C, 1, 1)`` or row ``(n, C, 1, W)``, stored
                in the convolution's buffer before evaluating; or, with ``source=True``, the whole
                current input map ``(n, C, H, W)``, read directly.
            source: ``h`` is the network's input image (whose values change between steps).

        Returns:
            The output at the current position ``(n, out, 1, 1)`` or row ``(n, out, 1, W)``.
        """
        k = self._kernels.get(conv)
        if k is None:
            k = self._kernels[conv] = Kernel.of(conv)
        if k.pointwise:  # no window to cache; F.linear beats conv2d on 1 x 1 maps
            if self.j is None:
                return F.conv2d(h[:, :, self.i:self.i + 1] if source else h, k.weight, k.bias)
            here = h[:, :, self.i, self.j] if source else h[:, :, 0, 0]  # (n, C)
            return F.linear(here, k.matrix, k.bias)[:, :, None, None]
        left, right, top, _ = k.pads
        if source:
            buf = F.pad(h, k.pads)
        else:
            buf = self._buffers.get(conv)
            if buf is None:
                shape = (self.n, h.shape[1], top + self.height + k.pads[3],
                         left + self.width + right)
                buf = self._buffers[conv] = h.new_zeros(shape)
            if self.j is None:
                buf[:, :, top + self.i, left:left + self.width] = h[:, :, 0, :]
            else:
                buf[:, :, top + self.i, left + self.j] = h[:, :, 0, 0]
        kh, kw = k.weight.shape[-2:]
        r = top + self.i - k.top  # buffer row of the window's first row
        if self.j is None:
            c = left - k.left
            window = buf[:, :, r:r + kh, c:c + self.width + kw - 1]  # (n, C, kh, W + kw - 1)
            return F.conv2d(window, k.weight, k.bias)  # (n, out, 1, W)
        c = left + self.j - k.left
        window = buf[:, :, r:r + kh, c:c + kw].reshape(len(buf), -1)  # (n, C kh kw)
        out = F.linear(window, k.matrix, k.bias)  # (n, out)
        return out[:, :, None, None]
