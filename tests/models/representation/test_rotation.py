"""RotNet: exact rot90 and resampled rotations agree, the direction of 45-degree rotations, labels
of the rotated copies, configuration errors, and training."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.rotation import rotate, rotate_by_sampling

FASHION = DataSpec((1, 12, 12), 256, 10, "image")
RGB = DataSpec((3, 10, 10), None, None, "image")
TINY = {"width": 4, "depth": 2}


@pytest.mark.parametrize("padding", ["zeros", "reflection", "border"])
def test_sampled_rotation_equals_rot90_at_multiples_of_90_degrees_everywhere(padding):
    x = torch.rand(2, 3, 9, 9)
    for k in range(4):
        assert torch.allclose(rotate_by_sampling(x, 90 * k, padding), torch.rot90(x, k, (2, 3)),
                              atol=1e-5), k


def test_rotation_is_counter_clockwise_also_at_45_degrees():
    # a smooth blob right of the centre moves up-right under a 45-degree counter-clockwise turn
    n, r, sigma = 41, 10.0, 2.0
    y, x = torch.meshgrid(torch.arange(n) - 20.0, torch.arange(n) - 20.0, indexing="ij")
    blob = torch.exp(-((x - r) ** 2 + y ** 2) / (2 * sigma ** 2))[None, None]
    out = rotate_by_sampling(blob, 45)[0, 0]
    cx, cy = (out * x).sum() / out.sum(), (out * y).sum() / out.sum()
    assert cx.item() == pytest.approx(r / math.sqrt(2), abs=0.05)
    assert cy.item() == pytest.approx(-r / math.sqrt(2), abs=0.05)  # rows grow downwards
    assert out.sum().item() == pytest.approx(blob.sum().item(), rel=0.01)  # nothing cut off
    # and 90 degrees (rot90) moves it straight up
    up = rotate(blob, 90)[0, 0]
    assert (up * y).sum() / up.sum() == pytest.approx(-r, abs=1e-4)


@pytest.mark.parametrize("angles", [2, 4, 8])
def test_each_copy_is_its_image_rotated_by_its_label_times_360_over_K(angles):
    model = unsup.create("rotation", RGB, angles=angles, **TINY)
    images = torch.rand(3, 3, 10, 10)
    copies, labels = model.rotations(images)
    assert copies.shape == (3 * angles, 3, 10, 10)
    assert labels.tolist() == [k for k in range(angles) for _ in range(3)]
    for j, k in enumerate(labels.tolist()):
        degrees = 360 * k / angles
        if degrees % 90 == 0:
            expected = torch.rot90(images[j % 3], int(degrees // 90), (1, 2))
            assert torch.equal(copies[j], expected), (j, k)  # exact: pixels permuted
        else:
            expected = rotate_by_sampling(images[j % 3: j % 3 + 1], degrees)[0]
            assert torch.allclose(copies[j], expected), (j, k)
            assert not torch.allclose(copies[j], images[j % 3], atol=1e-2)


def test_two_angles_is_a_half_turn_and_works_on_non_square_images():
    spec = DataSpec((1, 6, 9), 256, None, "image")
    model = unsup.create("rotation", spec, angles=2, **TINY)
    images = torch.rand(2, 1, 6, 9)
    copies, labels = model.rotations(images)
    assert torch.equal(copies[2:], images.flip(2, 3))
    assert labels.tolist() == [0, 0, 1, 1]
    assert torch.isfinite(model.loss({"x": torch.randint(256, (2, 1, 6, 9))})["loss"])


@pytest.mark.parametrize("options, message", [
    ({"angles": 3}, "one of 2, 4, 8"), ({"angles": 6}, "one of 2, 4, 8"),
    ({"padding": "wrap"}, "zeros, reflection, border"), ({"hidden": -1}, "hidden")])
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        unsup.create("rotation", FASHION, **options, **TINY)


@pytest.mark.parametrize("angles", [4, 8])
def test_quarter_turns_reject_non_square_images(angles):
    with pytest.raises(ConfigError, match="square images, got 6x9"):
        unsup.create("rotation", DataSpec((1, 6, 9), 256, None, "image"), angles=angles, **TINY)


@pytest.mark.parametrize("angles, hidden", [(2, 0), (4, 16), (8, 0)])
def test_one_step_smoke(angles, hidden):
    model = unsup.create("rotation", FASHION, angles=angles, hidden=hidden, **TINY)
    out = model.loss({"x": torch.randint(256, (4, 1, 12, 12), dtype=torch.uint8)})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and 0 <= out["accuracy"].item() <= 1
    assert model.encode(torch.randint(256, (5, 1, 12, 12))).shape == (5, model.feature_dim)
    with torch.no_grad():  # a head that scores every angle alike: cross-entropy over `angles` classes
        for param in model.head.parameters():
            param.zero_()
    flat = model.loss({"x": torch.randint(256, (4, 1, 12, 12), dtype=torch.uint8)})["loss"]
    assert flat.item() == pytest.approx(math.log(angles), abs=1e-6)


def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch():
    model = unsup.create("rotation", FASHION, **TINY)
    assert_training_reduces_loss(model, {"x": torch.randint(256, (8, 1, 12, 12))}, lr=1e-2, steps=10)


def test_paper_preset_is_the_resnet_with_four_angles():
    model = unsup.create("rotation", DataSpec((3, 32, 32), 256, 10, "image"), preset="paper")
    assert model.config.backbone == "resnet" and model.config.angles == 4 and model.feature_dim == 512
