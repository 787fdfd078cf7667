"""CPC on images: the patch grid, a context that never sees the rows it predicts (Jacobian), the
targets of both directions, layer norm that keeps images apart, and training."""

import pytest
import torch
from model_checks import assert_training_reduces_loss, with_fixed_draws

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.cpc_image import ContextNetwork, patch_grid

FASHION = DataSpec((1, 16, 16), 256, 10, "image")
RGB = DataSpec((3, 16, 16), None, None, "image")
TINY = {"width": 4, "depth": 2, "patch": 4, "context": 8, "context_layers": 2}


def cpc(spec=FASHION, **options):
    torch.manual_seed(0)
    return unsup.create("cpc-image", spec, **{**TINY, **options})


def test_the_grid_holds_overlapping_patches_at_half_stride():
    x = torch.rand(2, 3, 16, 12)
    p = patch_grid(x, 4)
    assert p.shape == (2, 7, 5, 3, 4, 4)
    assert torch.equal(p[1, 3, 2], x[1, :, 6:10, 4:8])


def test_the_context_of_a_row_depends_on_that_row_and_those_above_only():
    torch.manual_seed(0)
    g = ContextNetwork(3, 5, 3)
    z = torch.randn(1, 3, 6, 4, requires_grad=True)
    c = g(z)
    for i in range(6):
        (grad,) = torch.autograd.grad(c[0, :, i, 1].sum(), z, retain_graph=True)
        assert grad[:, :, i + 1:].abs().sum() == 0, i  # no row below
        assert grad[:, :, i].abs().sum() > 0  # its own row
        assert i == 0 or grad[:, :, :i].abs().sum() > 0  # rows above


@pytest.mark.parametrize("direction", ["down", "up"])
def test_each_prediction_is_made_without_the_row_of_its_target(direction):
    model = cpc(steps_ahead=2, directions=direction)
    z = torch.randn(2, model.feature_dim, 7, 7, requires_grad=True)
    pred, target = model.predictions(z, direction)
    assert len(pred) == len(target) == 2 * 7 * (6 + 5)  # k = 1: 6 source rows, k = 2: 5
    rows = (target // 7) % 7
    for n in torch.randperm(len(pred))[:25].tolist():
        (grad,) = torch.autograd.grad(pred[n].sum(), z, retain_graph=True)
        r = int(rows[n])
        blind = grad[:, :, r:] if direction == "down" else grad[:, :, : r + 1]
        assert blind.abs().sum() == 0, (n, r)
        assert grad[int(target[n]) // 49].abs().sum() > 0  # it reads its own image
        assert grad[1 - int(target[n]) // 49].abs().sum() == 0  # and no other
    # targets: every patch of the rows that can be predicted (down: rows 1.., up: rows ..5)
    want = set(range(1, 7)) if direction == "down" else set(range(0, 6))
    assert set(rows.tolist()) == want


def test_layer_norm_keeps_each_image_apart_and_batch_norm_does_not():
    x = torch.rand(4, 1, 16, 16)
    for norm, apart in (("layer", True), ("batch", False)):
        model = cpc(norm=norm).train()
        alone = model.patch_features(x[:1])
        together = model.patch_features(x)[:1]
        assert torch.allclose(alone, together, atol=1e-5) == apart, norm


def test_training_lowers_the_loss_in_both_directions_with_patch_augmentation():
    model = with_fixed_draws(cpc(RGB, directions="down,up", patch_augment="crop", norm="layer"))
    batch = {"x": torch.rand(6, 3, 16, 16)}
    assert_training_reduces_loss(model, batch, lr=1e-2, steps=15)
    assert model.encode(batch["x"]).shape == (6, model.feature_dim)


@pytest.mark.parametrize("options, words", [({"patch": 20}, ["patch", "smaller"]),
                                            ({"steps_ahead": 7}, ["steps_ahead=7"]),
                                            ({"directions": "left"}, ["down,up", "left"]),
                                            ({"norm": "group"}, ["batch or layer"])])
def test_bad_options_are_named(options, words):
    with pytest.raises(ConfigError) as e:
        cpc(**options)
    assert all(w in str(e.value) for w in words), str(e.value)
