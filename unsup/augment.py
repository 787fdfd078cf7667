"""Batch data augmentation on the training device, for the contrastive methods.

Contrastive learning is defined by its augmentations: two random *views* ``t(x), t'(x)`` of an
image must be recognised as the same instance among many others, so whatever the views do not share
(position, scale, colour, sharpness) the features learn to ignore. The SimCLR ablations [1] found
the composition of random crops and colour distortion the decisive pair; MoCo v2 [2] added Gaussian
blur and stronger colour jitter to MoCo v1 [3].

The transformations run on whole batches of float images in ``[0, 1]``, ``(B, C, H, W)``, on the
device they live on, with their parameters drawn per image from torch's global generator (so a
seeded run, and a resumed one, draws the same views). They come from Kornia [4], which implements
them as differentiable tensor operations on CPU and CUDA alike; torchvision's per-image PIL
transforms would need a data-loader worker per core and are not installed here.

Pipelines by name (``--augment``):

* ``simclr`` [1]: random resized crop (scale ``0.08-1``, aspect ``3/4-4/3``), horizontal flip,
  colour jitter with probability 0.8 (brightness, contrast and saturation ``0.8 s``, hue ``0.2 s``,
  strength ``s`` = ``--jitter``, 0.5 for CIFAR in [1]), greyscale with probability 0.2, Gaussian
  blur with probability 0.5 (kernel ~ 10 % of the image side, sigma ``0.1-2``; [1] drops it on
  CIFAR: ``--blur 0``);
* ``moco-v1`` [3]: crop (scale ``0.2-1``), greyscale 0.2, colour jitter ``0.4`` (always), flip;
* ``moco-v2`` [2]: crop (scale ``0.2-1``), colour jitter ``(0.4, 0.4, 0.4, 0.1)`` with probability
  0.8, greyscale 0.2, blur with probability 0.5, flip;
* ``crop``: crop (scale ``0.2-1``) and flip only (no colour: the ablation of [1]);
* ``none``: the identity.

Greyscale images (``C = 1``) get brightness and contrast jitter only: saturation, hue and
greyscale conversion have no meaning there.

References:
    [1] Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of Visual
        Representations. ICML 2020.
    [2] Chen, Fan, Girshick, He. Improved Baselines with Momentum Contrastive Learning. 2020.
    [3] He, Fan, Wu, Xie, Girshick. Momentum Contrast for Unsupervised Visual Representation
        Learning. CVPR 2020.
    [4] Riba, Mishkin, Ponsa, Rublee, Bradski. Kornia: an Open Source Differentiable Computer
        Vision Library for PyTorch. WACV 2020.
"""

from __future__ import annotations

import torch
from torch import nn

from unsup.errors import ConfigError

PIPELINES = ("simclr", "moco-v1", "moco-v2", "crop", "none")


def _odd(n: float) -> int:
    k = max(3, int(round(n)))
    return k if k % 2 else k + 1


def pipeline(name: str, channels: int, size: tuple[int, int], jitter: float = 0.5,
             blur: float = 0.5) -> nn.Module:
    """The augmentation ``t`` called ``name``, for images of ``channels`` x ``size``.

    Args:
        name: one of :data:`PIPELINES`.
        channels: 1 (greyscale) or 3 (RGB).
        size: ``(H, W)``; crops are resized back to it.
        jitter: colour-jitter strength ``s`` of ``simclr`` (the others use their papers' values).
        blur: probability of Gaussian blur in ``simclr`` and ``moco-v2`` (0 disables it).

    Returns:
        A module mapping float images ``(B, C, H, W)`` in ``[0, 1]`` to views of the same shape.

    Raises:
        ConfigError: an unknown name, channels not 1 or 3, or probabilities out of range.
    """
    import kornia.augmentation as K  # 0.2 s to import: only when views are built

    if name not in PIPELINES:
        raise ConfigError(f"augmentation {name!r} is unknown; expected one of {', '.join(PIPELINES)}")
    if channels not in (1, 3):
        raise ConfigError(f"augmentation expects 1 or 3 image channels, got {channels}")
    if not 0 <= blur <= 1 or jitter < 0:
        raise ConfigError(f"augmentation needs blur in [0, 1] and jitter >= 0, got blur={blur}, "
                          f"jitter={jitter}")
    if name == "none":
        return nn.Identity()
    rgb = channels == 3
    scale = (0.08, 1.0) if name == "simclr" else (0.2, 1.0)
    ops: list[nn.Module] = [K.RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3)),
                            K.RandomHorizontalFlip()]
    if name == "crop":
        return nn.Sequential(*ops)
    b, c, s, h, p = {"simclr": (0.8 * jitter, 0.8 * jitter, 0.8 * jitter, 0.2 * jitter, 0.8),
                     "moco-v1": (0.4, 0.4, 0.4, 0.4, 1.0),
                     "moco-v2": (0.4, 0.4, 0.4, 0.1, 0.8)}[name]
    h = min(h, 0.5)
    ops.append(K.ColorJitter(b, c, s if rgb else 0.0, h if rgb else 0.0, p=p))
    if rgb:
        ops.append(K.RandomGrayscale(p=0.2))
    if name != "moco-v1" and blur > 0:
        k = _odd(0.1 * min(size))
        ops.append(K.RandomGaussianBlur((k, k), (0.1, 2.0), p=blur))
    return nn.Sequential(*ops)


class Views(nn.Module):
    """Draw augmented views of a batch: ``views(x, n)`` -> ``n`` tensors shaped like ``x``.

    Args:
        transform: a pipeline from :func:`pipeline` (or any batch transform of float images).
    """

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, images: torch.Tensor, n: int = 2) -> list[torch.Tensor]:
        # independent draws per view and per image; clamped because jitter can leave [0, 1]
        return [self.transform(images).clamp(0, 1) for _ in range(n)]
