"""Stacked images: ``stacked-NAME`` puts three random images of a greyscale dataset into the three
channels of one (the "stacked MNIST" of Metz et al. 2017 and the VEEGAN and PacGAN papers).

With ten classes the stacks have 1,000 class combinations, a test of how many modes a generator
covers: a classifier of the single-channel dataset labels each channel of a sample, and the
combinations seen are the modes covered (``benchmarks/gan_stacked.py``). The label of a stack is
``C^2 y_R + C y_G + y_B`` for a dataset of ``C`` classes. The images of each stack are drawn at
random from the split, by a generator seeded by the split (train and val also by the run's seed;
test is fixed); option ``n`` sets the number of stacks (default: the size of the split).
"""

from __future__ import annotations

import zlib

import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError


@DATASETS.register(
    "stacked-NAME",
    "three random images of a greyscale dataset as the RGB channels of one; C^3 classes (option n)",
)
def stacked(req: Request) -> TensorDataset:
    from unsup.data import load  # late import: unsup.data imports this module

    assert req.arg is not None  # resolve() guarantees a name after "stacked-"
    options = {key: v for key, v in req.options.items() if key != "n"}
    base = load(req.arg, req.split, "native", root=req.root, download=req.download,
                val_fraction=req.val_fraction, seed=req.seed, **options)
    s = base.spec
    if not isinstance(base, TensorDataset) or s.kind != "image" or s.shape[0] != 1 or s.levels is None:
        raise ConfigError(f"{req.name}: {req.arg} is not a single-channel discrete image dataset "
                          f"(shape {s.shape}, levels {s.levels}); stack a greyscale one, e.g. "
                          f"stacked-digits")
    n = req.option("n", len(base))
    if n < 1:
        raise ConfigError(f"{req.name}: option n={n} must be at least 1")
    run_seed = req.seed if req.split != "test" else 0
    g = torch.Generator().manual_seed(zlib.crc32(f"{req.name}|{req.split}|{run_seed}".encode()))
    pick = torch.randint(len(base), (n, 3), generator=g)
    x = base.x[pick].flatten(1, 2)  # (n, 3, 1, H, W) -> (n, 3, H, W)
    classes, y, names = s.num_classes, None, None
    if classes is not None and base.y is not None:
        y = (base.y[pick] * torch.tensor([classes * classes, classes, 1])).sum(1)
        names = [f"{a}{b}{c}" for a in range(classes) for b in range(classes) for c in range(classes)]
        classes = classes**3
    spec = DataSpec((3, *s.shape[1:]), s.levels, classes, "image")
    return TensorDataset(x, spec, y=y, name=req.name, split=req.split, class_names=names)
