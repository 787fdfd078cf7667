"""Colorization: ab quantisation, class-rebalancing weights, the annealed mean, the L-only encoder,
the running histogram; smoke and training."""

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.color import lab_to_rgb, rgb_to_lab
from unsup.models.representation.colorization import (
    ab_bin_centres,
    annealed_mean,
    nearest_bins,
    rebalancing_weights,
    smoothed_distribution,
    soft_encode,
)

RGB = DataSpec((3, 16, 16), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "decoder_width": 4}


def test_bin_centres_are_in_gamut_grid_points_and_map_to_themselves():
    c = ab_bin_centres(10)
    assert 200 < len(c) < 320 and torch.equal(c, (c / 10).round() * 10)
    assert torch.equal(nearest_bins(c.T.reshape(1, 2, -1, 1), c).flatten(), torch.arange(len(c)))
    # every sRGB colour lies within half a cell diagonal of its bin's centre
    ab = rgb_to_lab(torch.rand(1, 3, 64, 64))[:, 1:]
    d = (ab - c[nearest_bins(ab, c)].permute(0, 3, 1, 2)).norm(dim=1)
    assert d.max() <= 5 * 2 ** 0.5 + 1e-4


def test_soft_encoding_sums_to_one_on_the_nearest_bins():
    c = ab_bin_centres(10)
    ab = rgb_to_lab(torch.rand(2, 3, 4, 4))[:, 1:]
    z = soft_encode(ab, c, neighbours=5)
    assert torch.allclose(z.sum(1), torch.ones(2, 4, 4)) and ((z > 0).sum(1) == 5).all()
    assert torch.equal(z.argmax(1), nearest_bins(ab, c))
    assert torch.equal(soft_encode(ab, c, 1).argmax(1), nearest_bins(ab, c))


def test_rebalancing_weights_have_unit_expectation_and_favour_rare_bins():
    p = torch.tensor([0.6, 0.25, 0.1, 0.05, 0.0])
    for lam in (0.0, 0.5, 0.9):
        w = rebalancing_weights(p[:4] if lam == 0 else p, lam)
        assert torch.allclose((p[:len(w)] * w).sum(), torch.tensor(1.0))
        assert (w[1:] > w[:-1]).all()  # rarer bin -> larger weight
    assert torch.allclose(rebalancing_weights(p, 1.0), torch.ones(5))  # λ = 1: no rebalancing
    w = rebalancing_weights(p, 0.5)
    assert torch.allclose(w, 1 / (0.5 * p + 0.5 / 5) / (p / (0.5 * p + 0.5 / 5)).sum())


def test_smoothed_distribution_is_a_distribution_spread_to_neighbours():
    c = ab_bin_centres(10)
    counts = torch.zeros(len(c))
    counts[0] = 7
    p = smoothed_distribution(counts, c)
    assert torch.allclose(p.sum(), torch.tensor(1.0)) and p.argmax() == 0
    near = (c - c[0]).norm(dim=1) == 10
    assert (p[near] > 0.01).all() and p[near].max() < p[0]


def test_annealed_mean_interpolates_between_mode_and_mean():
    c = ab_bin_centres(10)
    logits = torch.randn(2, len(c), 3, 3)
    mode = c[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(annealed_mean(logits, c, 1e-4), mode, atol=1e-3)
    assert torch.equal(annealed_mean(logits, c, 0), mode)
    mean = torch.einsum("bqhw,qd->bdhw", logits.softmax(1), c)
    assert torch.allclose(annealed_mean(logits, c, 1.0), mean, atol=1e-4)


def test_encoder_sees_only_lightness():
    model = unsup.create("colorization", RGB, **TINY).eval()
    lab = torch.cat([torch.full((2, 1, 16, 16), 60.0), 20 * torch.randn(2, 2, 16, 16).clamp(-1, 1)], 1)
    other = torch.cat([lab[:, :1], -lab[:, 1:]], 1)
    a, b = lab_to_rgb(lab), lab_to_rgb(other)
    assert (a - b).abs().max() > 0.05
    assert torch.allclose(model.features(a), model.features(b), atol=1e-3)


def test_histogram_grows_in_training_only_and_drives_the_weights():
    model = unsup.create("colorization", RGB, **TINY)
    assert torch.equal(model.class_weights(), torch.ones(len(model.centres)))
    x = torch.randint(0, 256, (3, 3, 16, 16))
    model.loss({"x": x})
    assert model.ab_counts.sum() == 3 * 8 * 8  # one target per predicted pixel (resolution 2)
    model.eval().loss({"x": x})
    assert model.ab_counts.sum() == 3 * 8 * 8
    w = model.class_weights()
    p = smoothed_distribution(model.ab_counts, model.centres)
    assert torch.allclose((p * w).sum(), torch.tensor(1.0), atol=1e-5)


def test_colorize_gives_rgb_images_and_bad_data_is_refused():
    model = unsup.create("colorization", RGB, **TINY).eval()
    x = torch.randint(0, 256, (2, 3, 16, 16))
    out = model.colorize(x)
    assert out.shape == (2, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    rows = model.illustrations(x)["colorization"]  # images, lightness, T = 0, T, 1
    assert len(rows) == 5 and torch.equal(rows[3], out) and torch.equal(rows[1][:, 0], rows[1][:, 2])
    with pytest.raises(ConfigError, match="cifar10-jpeg"):
        unsup.create("colorization", DataSpec((1, 16, 16), 256, 10, "image"), **TINY)
    with pytest.raises(ConfigError, match="resolution"):
        unsup.create("colorization", RGB, resolution=3, **TINY)
    with pytest.raises(ConfigError, match="rebalance"):
        unsup.create("colorization", RGB, rebalance=1.5, **TINY)


@pytest.mark.parametrize("options", [{}, {"neighbours": 5, "resolution": 1}, {"backbone": "resnet"}])
def test_one_step_and_training_reduces_loss(options):
    model = unsup.create("colorization", RGB, **{**TINY, **options})
    x = torch.randint(0, 256, (8, 3, 16, 16))
    out = model.loss({"x": x})
    assert torch.isfinite(out["loss"]) and 0 <= out["accuracy"] <= 1
    assert model.encode(x).shape == (8, model.feature_dim)
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=5)
