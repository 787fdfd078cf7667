"""The 8x8 handwritten digits shipped inside scikit-learn: the embedded default dataset.

1,797 greyscale images with 17 intensity levels (0..16) and labels 0..9. There is no official
test split, so a fixed seeded 20 % of the images is the test set (the same for every seed), and
``val`` is carved out of the rest with the request's seed.
"""

from __future__ import annotations

import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request, with_val_split

TEST_FRACTION = 0.2
_SPLIT_SEED = 1234  # fixed: the test set must not change with the run's seed


@DATASETS.register("digits", "8x8 handwritten digits from scikit-learn, 17 levels, 10 classes (default)")
def digits(req: Request) -> TensorDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.long).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_test = int(len(x) * TEST_FRACTION)
    spec = DataSpec((1, 8, 8), 17, 10, "image")
    names = [str(i) for i in range(10)]

    def load_split(split: str) -> TensorDataset:
        idx = perm[:n_test] if split == "test" else perm[n_test:]
        idx = idx.sort().values
        return TensorDataset(x[idx], spec, y=y[idx], name="digits", split=split, class_names=names)

    return with_val_split(req, load_split)
