"""Pieces shared by the spatial pretext tasks (:mod:`~unsup.models.representation.rotation`,
:mod:`~unsup.models.representation.relative_patch`, :mod:`~unsup.models.representation.jigsaw`).

* :func:`crop_patches` cuts ``N`` square patches per image at given top-left corners, one gather
  for the whole batch (no Python loop over images), so that every patch may sit somewhere else;
* :func:`normalise_patches` standardises each patch on its own (``(p - mean(p)) / std(p)``), which
  removes the brightness and contrast a network could use to match neighbouring patches instead
  of their content (Noroozi and Favaro's per-tile normalisation);
* :func:`classifier` is the pretext head: a linear layer, or ``Linear -> ReLU -> Linear``.
"""

from __future__ import annotations

import torch
from torch import nn


def crop_patches(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Square patches at given corners: ``patches[b, n] = images[b, :, top[b,n]:+size, left[b,n]:+size]``.

    Args:
        images: ``(B, C, H, W)``.
        top: row of each patch's top-left pixel, ``(B, N)`` integers.
        left: column of each patch's top-left pixel, ``(B, N)`` integers.
        size: side of the patches.

    Returns:
        ``(B, N, C, size, size)``.

    Raises:
        ValueError: a patch that does not lie inside the image.
    """
    B, C, H, W = images.shape
    if top.shape != left.shape or top.shape[0] != B:
        raise ValueError(f"top and left must both be (B={B}, N), got {tuple(top.shape)} "
                         f"and {tuple(left.shape)}")
    if top.numel() and (int(top.min()) < 0 or int(left.min()) < 0 or int(top.max()) + size > H
                        or int(left.max()) + size > W):
        raise ValueError(f"{size}x{size} patches at rows {int(top.min())}..{int(top.max())}, columns "
                         f"{int(left.min())}..{int(left.max())} do not fit in {H}x{W} images")
    offsets = torch.arange(size, device=images.device)
    rows = (top.to(images.device).long()[..., None] + offsets)[..., :, None]  # (B, N, s, 1)
    cols = (left.to(images.device).long()[..., None] + offsets)[..., None, :]  # (B, N, 1, s)
    b = torch.arange(B, device=images.device)[:, None, None, None]  # (B, 1, 1, 1)
    return images.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 1, 4, 2, 3)  # (B, N, C, s, s)


def normalise_patches(patches: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each patch minus its mean over channels and pixels, divided by its standard deviation.

    Args:
        patches: ``(..., C, h, w)``.
        eps: added to the variance, so a constant patch becomes zeros.

    Returns:
        the normalised patches, same shape.
    """
    mean = patches.mean((-3, -2, -1), keepdim=True)
    var = patches.var((-3, -2, -1), keepdim=True, unbiased=False)
    return (patches - mean) / (var + eps).sqrt()


def classifier(in_dim: int, classes: int, hidden: int = 0) -> nn.Module:
    """The pretext classifier: ``Linear(in_dim, classes)`` if ``hidden == 0``, else
    ``Linear(in_dim, hidden) -> ReLU -> Linear(hidden, classes)``."""
    if hidden == 0:
        return nn.Linear(in_dim, classes)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, classes))
