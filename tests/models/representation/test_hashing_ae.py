"""Semantic hashing: precision@k with ties, the PCA and random-projection baselines, and the
hashing autoencoder whose noise drives its code units to 0 or 1."""

import pytest
import torch

from tests.models.model_checks import assert_training_reduces_loss
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.hashing import (
    ProductQuantizer,
    binary_codes,
    hamming_distance,
    pca_codes,
    precision_at_k,
    precision_at_k_by_distance,
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


def test_precision_by_any_distance_equals_the_hamming_one_on_hamming_distances():
    g = torch.Generator().manual_seed(0)
    db, q = torch.rand(300, 6, generator=g) > 0.5, torch.rand(40, 6, generator=g) > 0.5
    y_db, y_q = torch.randint(0, 3, (300,), generator=g), torch.randint(0, 3, (40,), generator=g)
    d = hamming_distance(q, db).float()
    for k in (1, 7, 50, 300):  # 6 bits over 300 items: every k-th neighbour is in a tied block
        by_distance = precision_at_k_by_distance(d, y_q, y_db, k)
        assert by_distance.shape == (40,)
        assert by_distance.mean().item() == pytest.approx(precision_at_k(q, y_q, db, y_db, k))
    with pytest.raises(ConfigError, match="k must be in"):
        precision_at_k_by_distance(d, y_q, y_db, 301)


def test_product_quantizer_codes_each_block_by_its_nearest_centroid():
    g = torch.Generator().manual_seed(0)
    # two blocks of 3 dimensions; each block holds 256 tight clusters, the block's cluster index
    # drawn independently, so 16 bits can name every one of the 256 x 256 combinations
    centres = torch.randn(2, 256, 3, generator=g) * 10
    idx = torch.randint(0, 256, (4000, 2), generator=g)
    idx[:512] = torch.arange(512)[:, None] % 256  # every centroid is used
    x = torch.cat([centres[j][idx[:, j]] for j in range(2)], 1) + 0.01 * torch.randn(4000, 6, generator=g)
    pq = ProductQuantizer(x, 16, seed=0)
    codes = pq.codes(x)
    assert codes.shape == (4000, 2) and pq.bounds == [0, 3, 6]
    for j in range(2):  # the k-means labels are a relabelling of the true clusters
        pairs = torch.unique(torch.stack([idx[:, j], codes[:, j]], 1), dim=0)
        assert len(pairs) == 256
    d = pq.distances(codes[:10], codes)
    brute = torch.cdist(torch.cat([pq.centroids[j][codes[:10, j]] for j in range(2)], 1),
                        torch.cat([pq.centroids[j][codes[:, j]] for j in range(2)], 1)).square()
    assert torch.allclose(d, brute, rtol=1e-4, atol=1e-3)
    assert (d[torch.arange(10), torch.arange(10)] == 0).all()
    same = (codes[:10, None] == codes[None]).all(-1)
    assert torch.equal(d == 0, same)  # distance 0 exactly between equal codes


@pytest.mark.parametrize("bits,n,message", [(12, 300, "multiple of 8"), (4, 300, "multiple of 8"),
                                            (16, 100, "at least 256")])
def test_product_quantizer_refuses_what_it_cannot_fit(bits, n, message):
    with pytest.raises(ConfigError, match=message):
        ProductQuantizer(torch.randn(n, 6), bits)
    if n >= 256:
        return
    with pytest.raises(ConfigError, match="fitted on 6"):
        ProductQuantizer(torch.randn(300, 6), 8).codes(torch.randn(3, 5))


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
