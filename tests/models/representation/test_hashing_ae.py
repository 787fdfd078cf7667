"""Semantic hashing: precision@k with ties, the PCA and random-projection baselines, and the
hashing autoencoder whose noise drives its code units to 0 or 1."""

import pytest
import torch

from tests.models.model_checks import assert_training_reduces_loss
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.hashing import (
    binary_codes,
    hamming_distance,
    pca_codes,
    precision_at_k,
    random_projection_codes,
)
from unsup.models import create


def test_hamming_distance():
    a = torch.tensor([[0, 0, 1], [1, 1, 1]]).bool()
    b = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]]).bool()
    assert torch.equal(hamming_distance(a, b), torch.tensor([[0, 2, 2], [2, 2, 2]]))
    assert torch.equal(binary_codes(torch.tensor([0.2, 0.5, 0.51])), torch.tensor([False, False, True]))


def test_precision_at_k_by_hand():
    db = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 1]]).bool()
    y_db = torch.tensor([0, 1, 0, 1])
    q = torch.tensor([[0, 0], [1, 1]]).bool()
    y_q = torch.tensor([0, 1])
    # query 00 (label 0): distances 0, 0, 1, 2 -> k=1 falls in the tied pair {0: rel, 1: not}: 1/2
    #                      k=3: items 0, 1, 2 -> 2/3; k=4: 2/4
    # query 11 (label 1): distances 2, 2, 1, 0 -> k=1: item 3 (rel) 1; k=2: items 3, 2 -> 1/2
    #                      k=3: items 3, 2 and half of the tied pair {0, 1} (one relevant): 1.5/3
    expected = {1: (0.5 + 1) / 2, 2: (0.5 + 0.5) / 2, 3: (2 / 3 + 0.5) / 2, 4: (0.5 + 0.5) / 2}
    for k, p in expected.items():
        assert precision_at_k(q, y_q, db, y_db, k) == pytest.approx(p)
    assert precision_at_k(q, y_q, db, y_db, 3, chunk=1) == pytest.approx(expected[3])
    with pytest.raises(ConfigError):
        precision_at_k(q, y_q, db, y_db, 5)


def test_pca_codes_split_the_dominant_direction_by_sign():
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(10, generator=g), dim=0)
    t = torch.randn(500, generator=g)
    x = 3.0 + 5 * t[:, None] * u + 0.1 * torch.randn(500, 10, generator=g)  # offset: codes centre it
    codes = pca_codes(x, x, 1)[:, 0]
    clear = t.abs() > 0.2  # points far from the splitting hyperplane compared with noise and mean error
    side = t[clear] > 0
    assert clear.sum() > 400
    assert torch.equal(codes[clear], side) or torch.equal(codes[clear], ~side)  # the axis' sign is free


def test_random_projection_codes():
    g = torch.Generator().manual_seed(0)
    train, x = torch.randn(100, 6, generator=g) + 2, torch.randn(7, 6, generator=g) + 2
    a = random_projection_codes(train, x, 16, seed=3)
    assert a.shape == (7, 16) and a.dtype == torch.bool
    assert torch.equal(a, random_projection_codes(train, x, 16, seed=3))
    # centred: the training mean itself lies on every hyperplane, its bits are all 0 (x @ r = 0)
    assert not random_projection_codes(train, train.mean(0, keepdim=True), 16, seed=3).any()


SPEC = DataSpec((1, 4, 4), 2, None, "image")


def tiny_model(noise=4.0):
    torch.manual_seed(0)
    return create("hashing-autoencoder", SPEC, bits=6, hidden=[32], noise=noise)


def patterns(n=32):
    return (torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).long()


def test_smoke_and_training_reduces_loss():
    m, x = tiny_model(), patterns()
    out = m.loss({"x": x})
    assert set(out) == {"loss", "binary"} and torch.isfinite(out["loss"])
    assert m.codes(x).dtype == torch.bool and m.codes(x).shape == (32, 6)
    torch.testing.assert_close(m.codes(x), m.encode(x) > 0.5)
    assert m.reconstruct(x).shape == x.shape
    m.config.noise = 0.0  # a fixed objective for the check
    assert_training_reduces_loss(m, {"x": x}, lr=1e-2, steps=20)


def test_noise_drives_codes_to_binary():
    x = patterns()

    def binary_fraction(m):
        with torch.no_grad():
            h = m.encode(x)
        return float(((h < 0.1) | (h > 0.9)).float().mean())

    m = tiny_model()
    before = binary_fraction(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        m.loss({"x": x})["loss"].backward()
        opt.step()
    after = binary_fraction(m)
    assert after > before + 0.3 and after > 0.8, (before, after)


def test_bad_options():
    for opts in ({"bits": 0}, {"noise": -1.0}, {"reconstruction": "l1"}, {"activation": "gelu"},
                 {"hidden": [0]}):
        with pytest.raises(ConfigError):
            create("hashing-autoencoder", SPEC, **opts)
