"""Generated toy data: specs, value ranges, split seeding, and the documented densities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unsup.data import load, toy
from unsup.errors import ConfigError

DISCRETE = {"toy-1d": ((1,), 20), "toy-1d-bimodal": ((1,), 100), "toy-2d-image": ((2,), 25),
            "shapes": ((1, 20, 20), 2)}
CONTINUOUS = {"two-moons": 2, "rings": 3, "gaussian-grid": 25, "swiss-roll": None}


@pytest.mark.parametrize("name", list(DISCRETE))
def test_discrete_specs(name: str) -> None:
    shape, levels = DISCRETE[name]
    ds = load(name, "test", n_test=300)
    assert ds.spec.shape == shape and ds.spec.levels == levels and len(ds) == 300
    assert ds.x.dtype == torch.long and 0 <= int(ds.x.min()) and int(ds.x.max()) < levels


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_specs(name: str) -> None:
    ds = load(name, "train", n=500, val_fraction=0.2)
    assert ds.spec.shape == (2,) and ds.spec.levels is None and len(ds) == 400
    assert ds.x.dtype == torch.float32 and 0 <= float(ds.x.min()) and float(ds.x.max()) <= 1
    assert ds.spec.num_classes == CONTINUOUS[name]
    if ds.y is not None:
        assert set(ds.y.unique().tolist()) == set(range(CONTINUOUS[name]))
    assert load(name, "train", "levels:8", n=500).spec.levels == 8  # quantisable: in [0, 1]


def test_test_split_is_fixed_train_follows_seed() -> None:
    t0, t1 = load("two-moons", "test", seed=0), load("two-moons", "test", seed=1)
    assert torch.equal(t0.x, t1.x)
    a, b = load("two-moons", "train", seed=0), load("two-moons", "train", seed=0)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, load("two-moons", "train", seed=1).x)
    assert not torch.equal(a.x[:100], t0.x[:100])


def test_val_is_carved_from_train() -> None:
    full = load("toy-2d-image", "train", n=200, val_fraction=0.25)
    val = load("toy-2d-image", "val", n=200, val_fraction=0.25)
    assert len(full) == 150 and len(val) == 50


def test_toy_1d_densities() -> None:
    x = load("toy-1d", "train", n=20000).x.float()
    assert abs(x.mean().item() - (0.4 * 20 - 0.5)) < 0.1  # floor(u * 20) of N(0.4, 0.1)
    b = load("toy-1d-bimodal", "train", n=20000).x[:, 0]
    hist = torch.bincount(b, minlength=100)
    assert hist[25:35].sum() > 5 * hist[50:60].sum() and hist[75:85].sum() > 5 * hist[50:60].sum()


def test_toy_2d_image_follows_the_image() -> None:
    d = 10
    x = load("toy-2d-image", "train", n=50000, d=d).x.numpy()
    emp = np.zeros((d, d))
    np.add.at(emp, (d - 1 - x[:, 1], x[:, 0]), 1)  # (x1, x2) = (column, height): back to (row, col)
    p = toy.image_density(d)
    assert np.corrcoef(emp.ravel(), p.ravel())[0, 1] > 0.97
    with pytest.raises(ConfigError, match="d=1"):
        load("toy-2d-image", d=1)


def test_gaussian_grid_option_k() -> None:
    ds = load("gaussian-grid", "test", k=3, n_test=900)
    assert ds.spec.num_classes == 9 and len(ds.class_names) == 9
    centre = (torch.stack([ds.y // 3, ds.y % 3], 1).float() + 0.5) / 3
    assert (ds.x - centre).abs().max() < 0.2


def test_shapes_are_drawn() -> None:
    ds = load("shapes", "test", n_test=200)
    assert ds.class_names == ["square", "circle", "triangle", "line"]
    on = ds.x.flatten(1).sum(1)
    assert int(on.min()) > 0  # every image shows something
    lines, squares = on[ds.y == 3].float().mean(), on[ds.y == 0].float().mean()
    assert lines < squares  # lines are thin


def test_size_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="n_test"):
        load("rings", n_test=0)
    with pytest.raises(ConfigError, match="should be a int"):
        load("rings", n="many")


def test_course_gaussians_have_the_documented_covariances() -> None:
    ds = load("gaussian-diag", "train", n=40000)
    assert ds.spec.shape == (2,) and ds.spec.levels is None and ds.x.dtype == torch.float32
    diag, full = ds.x.double(), load("gaussian-full", "train", n=40000).x.double()
    for x in (diag, full):
        assert torch.allclose(x.mean(0), torch.tensor([1.0, 2.0], dtype=torch.float64), atol=0.1)
    c = torch.cov(diag.T)
    assert abs(c[0, 0] - 25) < 1 and abs(c[1, 1] - 1) < 0.1 and abs(c[0, 1]) < 0.3
    c = torch.cov(full.T)  # R diag(25, 1) R^T at 45 degrees: 13 on the diagonal, 12 off it
    assert abs(c[0, 0] - 13) < 0.6 and abs(c[1, 1] - 13) < 0.6 and abs(c[0, 1] - 12) < 0.6

