"""sRGB <-> CIE L*a*b* in torch, for the colour pretext tasks (colorization, split-brain autoencoders).

The conversion is the standard one for sRGB under the D65 white point [1]:

1. undo the sRGB gamma: ``c_lin = c / 12.92`` if ``c <= 0.04045`` else ``((c + 0.055) / 1.055)^2.4``;
2. linear RGB -> XYZ with the sRGB matrix ``M`` and divide by the white ``(X_n, Y_n, Z_n) = M 1`` (so
   white maps exactly to ``a = b = 0``; this is D65, ``(0.95047, 1, 1.08883)``);
3. ``f(t) = t^(1/3)`` if ``t > (6/29)^3`` else ``t / (3 (6/29)^2) + 4/29``, and
   ``L = 116 f(Y) - 16``, ``a = 500 (f(X) - f(Y))``, ``b = 200 (f(Y) - f(Z))``.

``L`` lies in ``[0, 100]``; sRGB colours have ``a`` in about ``[-86, 98]`` and ``b`` in about
``[-108, 95]``. :func:`lab_to_rgb` inverts every step; Lab values outside the sRGB gamut (a network's
prediction may be) are clipped to ``[0, 1]`` in RGB.

References:
    [1] IEC 61966-2-1:1999, sRGB; CIE 15:2004 Colorimetry (the L*a*b* formulas).
"""

from __future__ import annotations

import torch

# linear sRGB -> XYZ (D65), rows X, Y, Z
_M = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                   [0.2126729, 0.7151522, 0.0721750],
                   [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_DELTA = 6.0 / 29.0


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A 3x3 colour matrix on the channel axis of ``(B, 3, H, W)``."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(x), x)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB floats in ``[0, 1]``, ``(B, 3, H, W)`` -> ``(L, a, b)``, ``(B, 3, H, W)``."""
    rgb = rgb.clamp(0, 1)
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).pow(2.4))
    white = _M.sum(1).view(1, 3, 1, 1).to(rgb)
    t = _apply(_M, lin) / white  # (B, 3, H, W): X/Xn, Y/Yn, Z/Zn
    f = torch.where(t > _DELTA ** 3, t.clamp_min(_DELTA ** 3).pow(1 / 3), t / (3 * _DELTA ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """``(L, a, b)``, ``(B, 3, H, W)`` -> sRGB floats clipped to ``[0, 1]``, ``(B, 3, H, W)``."""
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    t = torch.where(f > _DELTA, f.pow(3), 3 * _DELTA ** 2 * (f - 4 / 29))
    white = _M.sum(1).view(1, 3, 1, 1).to(lab)
    lin = _apply(torch.linalg.inv(_M), t * white).clamp(0, 1)
    return torch.where(lin <= 0.0031308, 12.92 * lin,
                       1.055 * lin.clamp_min(0.0031308).pow(1 / 2.4) - 0.055).clamp(0, 1)
