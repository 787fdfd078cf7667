"""Coloured versions of greyscale image datasets: ``colored-NAME`` (e.g. ``colored-mnist``).

As in CS294-158's "colored MNIST": every image gets its own random colour ``c`` in [0,1]^3 and
pixel intensity ``u = x / (levels-1)`` becomes ``round(u * c * (k-1))`` in each RGB channel, so
the result has ``k`` levels per channel (option ``k``, default 4) and shape ``(3, H, W)``. The
colour is drawn uniformly and then scaled so that its largest channel is 1: a random colour could
otherwise be near black and erase the digit.

Colours are drawn in example order from a generator seeded by the split (train and val also by
the run's seed; test is fixed), so a split always gets the same colours. Labels and class names
are the underlying dataset's; other options are passed on to it.
"""

from __future__ import annotations

import zlib

import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError

_CHUNK = 4096  # examples coloured at a time, bounding the float temporaries


def random_colours(n: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 3)`` colours, uniform then scaled so that each one's largest channel is 1."""
    c = torch.rand(n, 3, generator=generator)
    return c / c.amax(dim=1, keepdim=True).clamp_min(1e-6)


def colourise(x: torch.Tensor, levels: int, colours: torch.Tensor, k: int) -> torch.Tensor:
    """Greyscale ``(N, 1, H, W)`` with ``levels`` levels -> ``(N, 3, H, W)`` with ``k`` levels."""
    out = torch.empty((x.shape[0], 3, *x.shape[2:]), dtype=torch.long)
    for i in range(0, len(x), _CHUNK):
        u = x[i:i + _CHUNK].float() / (levels - 1)  # (n, 1, H, W)
        c = colours[i:i + _CHUNK, :, None, None]  # (n, 3, 1, 1)
        out[i:i + _CHUNK] = torch.round(u * c * (k - 1)).long()
    return out


@DATASETS.register(
    "colored-NAME",
    "a greyscale image dataset with a random colour per image, k levels per channel (option k=4)",
)
def colored(req: Request) -> TensorDataset:
    from unsup.data import load  # late import: unsup.data imports this module

    assert req.arg is not None  # resolve() guarantees a name after "colored-"
    k = req.option("k", 4)
    if k < 2:
        raise ConfigError(f"{req.name}: option k={k} must be at least 2")
    options = {key: v for key, v in req.options.items() if key != "k"}
    base = load(req.arg, req.split, "native", root=req.root, download=req.download,
                val_fraction=req.val_fraction, seed=req.seed, **options)
    s = base.spec
    greyscale = s.kind == "image" and s.shape[0] == 1 and s.levels is not None
    if not isinstance(base, TensorDataset) or not greyscale:
        raise ConfigError(
            f"{req.name}: {req.arg} is not a single-channel discrete image dataset (shape "
            f"{s.shape}, levels {s.levels}, kind {s.kind}); colour a greyscale one, e.g. "
            f"colored-mnist"
        )
    run_seed = req.seed if req.split != "test" else 0
    seed = zlib.crc32(f"{req.name}|{req.split}|{run_seed}".encode())
    colours = random_colours(len(base), torch.Generator().manual_seed(seed))
    spec = DataSpec((3, *s.shape[1:]), k, s.num_classes, "image")
    return TensorDataset(colourise(base.x, s.levels, colours, k), spec, y=base.y, name=req.name,
                         split=req.split, class_names=base.class_names)
