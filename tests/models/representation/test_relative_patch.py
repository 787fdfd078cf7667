"""Relative patch position: the crops sit where their labels say, the jitter stays in its bounds,
labels are uniform, colour dropping, configuration errors, and training."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss, with_fixed_draws

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.patches import crop_patches
from unsup.models.representation.relative_patch import NEIGHBOURS, drop_channels, project_out_green_magenta

FASHION = DataSpec((1, 28, 28), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "hidden": 16}


def coordinates(C: int, H: int, W: int, B: int = 1) -> torch.Tensor:
    """Images whose pixel (c, y, x) holds c H W + y W + x, ``(B, C, H, W)``."""
    return torch.arange(C * H * W, dtype=torch.float).view(1, C, H, W).expand(B, C, H, W).clone()


def test_crop_patches_equals_slicing_and_rejects_patches_outside_the_image():
    images = torch.rand(3, 2, 8, 10)
    top = torch.tensor([[0, 5], [2, 3], [5, 0]])
    left = torch.tensor([[7, 0], [1, 4], [3, 3]])
    patches = crop_patches(images, top, left, 3)
    assert patches.shape == (3, 2, 2, 3, 3)
    for b in range(3):
        for n in range(2):
            t, s = top[b, n], left[b, n]
            assert torch.equal(patches[b, n], images[b, :, t:t + 3, s:s + 3])
    with pytest.raises(ValueError, match="do not fit in 8x10"):
        crop_patches(images, top, left + 1, 3)


def test_without_jitter_each_label_crops_the_centre_cell_and_that_neighbour():
    p, g, H, W = 5, 2, 19, 20  # grid 3*5 + 2*2 = 19: no room vertically, 1 pixel horizontally
    model = unsup.create("relative-patch", DataSpec((2, H, W), None, None, "image"),
                         patch=p, gap=g, jitter=0, channel_drop="none", **TINY)
    images = coordinates(2, H, W, B=400)
    patches, labels = model.pairs(images)
    assert patches.shape == (400, 2, 2, p, p)
    assert sorted(set(labels.tolist())) == list(range(8))
    corner = patches[:, :, 0, 0, 0].long()  # (B, 2): y W + x of each patch's top-left pixel
    y, x = corner // W, corner % W
    assert (y[:, 0] == p + g).all() and set(x[:, 0].tolist()) == {p + g, p + g + 1}
    for label, (dr, dc) in enumerate(NEIGHBOURS):
        mine = labels == label
        assert torch.equal(y[mine, 1] - y[mine, 0], torch.full_like(y[mine, 0], dr * (p + g)))
        assert torch.equal(x[mine, 1] - x[mine, 0], torch.full_like(x[mine, 0], dc * (p + g)))
    # every patch is a contiguous p x p block of every channel
    rows = y[..., None, None] + torch.arange(p)[:, None]
    cols = x[..., None, None] + torch.arange(p)
    for c in range(2):
        assert torch.equal(patches[:, :, c], (c * H * W + rows * W + cols).float())


def test_jitter_moves_each_patch_by_at_most_jitter_pixels_and_reaches_the_bounds():
    p, g, j = 7, 2, 2  # needs 3*7 + 2*2 + 2*2 = 29 <= 30
    model = unsup.create("relative-patch", DataSpec((1, 30, 30), None, None, "image"),
                         patch=p, gap=g, jitter=j, **TINY)
    top, left, labels = model.positions(4000)
    assert int(top.min()) >= 0 and int(left.min()) >= 0
    assert int(top.max()) + p <= 30 and int(left.max()) + p <= 30
    offsets = torch.tensor(NEIGHBOURS)[labels]
    # the neighbour's displacement from the centre: its cell's, plus two jitters in [-j, j]
    for axis, pos in ((0, top), (1, left)):
        extra = pos[:, 1] - pos[:, 0] - offsets[:, axis] * (p + g)
        assert int(extra.abs().max()) == 2 * j
    # the centre's position: grid origin in [j, 30 - 25 - j] plus (p + g) plus a jitter in [-j, j]
    centre = top[:, 0] - (p + g)
    assert set(centre.tolist()) == set(range(0, 30 - 25 + 1))


def test_labels_are_uniform_over_the_eight_neighbours():
    model = unsup.create("relative-patch", FASHION, **TINY)
    _, _, labels = model.positions(8000)
    counts = torch.bincount(labels, minlength=8).float()
    chi2 = ((counts - 1000) ** 2 / 1000).sum().item()
    assert chi2 < 24.32  # the 0.999 quantile of chi-square with 7 degrees of freedom


def test_noise_channel_drop_keeps_one_channel_and_replaces_the_others_by_faint_noise():
    patches = torch.rand(500, 2, 3, 6, 6)
    out = drop_channels(patches)
    kept = (out == patches).flatten(-2).all(-1)  # (500, 2, 3)
    assert (kept.sum(-1) == 1).all()
    assert set(kept.float().argmax(-1).flatten().tolist()) == {0, 1, 2}  # the channel is random
    s = patches.std((-2, -1))[kept].view(500, 2)  # std of the kept channel
    noise = out.masked_fill(kept[..., None, None], 0).pow(2).sum((-3, -2, -1)) / (2 * 36)
    assert torch.allclose(noise.mean().sqrt(), (s / 100).pow(2).mean().sqrt(), rtol=0.1)


def test_projection_removes_the_green_magenta_component_and_is_idempotent():
    x = torch.rand(4, 3, 5, 5)
    out = project_out_green_magenta(x)
    a = torch.tensor([-1.0, 2.0, -1.0]) / math.sqrt(6)
    assert (out * a[:, None, None]).sum(1).abs().max() < 1e-6
    assert torch.allclose(project_out_green_magenta(out), out, atol=1e-6)
    assert torch.allclose(out.mean(1), x.mean(1), atol=1e-6)  # grey level kept: a is orthogonal to (1,1,1)


@pytest.mark.parametrize("spec, options, message", [
    (FASHION, {"patch": 9}, r"3\*9 \+ 2\*2 \+ 2\*1 = 33 pixels per side, the images are 28x28: use images "
                            r"of at least 33x33, or \(gap 2, jitter 1\) patch <= 7 fits"),
    (FASHION, {"gap": 14}, "reduce gap or jitter"),
    (FASHION, {"channel_drop": "projection"}, "needs RGB images, got 1 channel"),
    (FASHION, {"channel_drop": "grey"}, "none, noise, projection"),
    (FASHION, {"jitter": -1}, "jitter >= 0"),
    (DataSpec((3, 32, 32), 256, 10, "image"), {"patch": 96, "gap": 48, "jitter": 7}, "at least 398x398"),
])
def test_bad_options_are_config_errors(spec, options, message):
    with pytest.raises(ConfigError, match=message):
        unsup.create("relative-patch", spec, **{**TINY, **options})


def test_cpu_defaults_fit_fashion_mnist_and_cifar():
    torch.manual_seed(0)
    for spec in (FASHION, DataSpec((3, 32, 32), 256, 10, "image")):
        model = unsup.create("relative-patch", spec, width=4, depth=2)
        H, W = spec.shape[1:]
        top, left, labels = model.positions(5000)  # every patch of many draws lies in the image
        p = model.config.patch
        assert top.min() >= 0 and left.min() >= 0
        assert (top + p).max() <= H and (left + p).max() <= W
        assert set(labels.tolist()) == set(range(8))


@pytest.mark.parametrize("channel_drop", ["none", "noise", "projection"])
def test_one_step_smoke(channel_drop):
    model = unsup.create("relative-patch", DataSpec((3, 32, 32), 256, 10, "image"),
                         channel_drop=channel_drop, **TINY)
    out = model.loss({"x": torch.randint(256, (4, 3, 32, 32), dtype=torch.uint8)})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and 0 <= out["accuracy"].item() <= 1
    assert model.encode(torch.randint(256, (5, 3, 32, 32))).shape == (5, model.feature_dim)


def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch():
    model = with_fixed_draws(unsup.create("relative-patch", FASHION, **TINY))  # the same pairs every call
    assert_training_reduces_loss(model, {"x": torch.randint(256, (16, 1, 28, 28))}, lr=1e-2, steps=10)
