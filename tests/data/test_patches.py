"""natural-patches: shapes, per-patch mean removal, unit scale, fixed draws, disjoint splits."""

import pytest
import torch

import unsup.data as udata
from unsup.errors import ConfigError


def test_patches():
    train = udata.load("natural-patches", "train", n=2000, n_test=500, size=6)
    test = udata.load("natural-patches", "test", n=2000, n_test=500, size=6)
    assert train.spec.shape == (36,) and train.spec.levels is None and train.spec.num_classes is None
    assert len(train) + len(udata.load("natural-patches", "val", n=2000, n_test=500, size=6)) == 2000
    assert len(test) == 500
    assert train.x.mean(1).abs().max() < 1e-5  # each patch's mean removed
    # the scale is fitted on the train+val draw (~1); test comes from other image rows
    assert 0.8 < float(train.x.std()) < 1.2
    assert torch.equal(train.x, udata.load("natural-patches", "train", n=2000, n_test=500, size=6).x)
    train_rows = {tuple(r) for r in train.x.numpy().round(5).tolist()}
    assert not any(tuple(r) in train_rows for r in test.x.numpy().round(5).tolist() if any(r))


def test_zca_whitens():
    x = udata.load("natural-patches", "train", n=3000, size=4, whiten="zca").x
    eig = torch.linalg.eigvalsh(x.T @ x / len(x))
    # the DC direction is empty (means removed); the others are near-equal after whitening
    assert eig[1:].max() / eig[1:].min() < 3


def test_bad_options():
    for opts in ({"size": 1}, {"whiten": "pca"}, {"n": 1}):
        with pytest.raises(ConfigError):
            udata.load("natural-patches", "train", **opts)
