"""SimCLR: the loss is NT-Xent of the projected views, the views are augmented, training lowers
the loss, and the probes read the features before the head."""

import pytest
import torch
from model_checks import assert_training_reduces_loss, with_fixed_draws

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.contrastive import nt_xent

FASHION = DataSpec((1, 12, 12), 256, 10, "image")
RGB = DataSpec((3, 12, 12), None, None, "image")
TINY = {"width": 4, "depth": 2, "head_hidden": 8, "dim": 4}


def test_the_loss_is_nt_xent_of_the_projected_views():
    torch.manual_seed(0)
    model = unsup.create("simclr", RGB, **TINY)
    x = torch.rand(6, 3, 12, 12)
    torch.manual_seed(5)
    got = model.loss({"x": x})
    torch.manual_seed(5)
    v1, v2 = model.views(x, 2)
    z = model.head(model.encoder(torch.cat([v1, v2])))
    want, accuracy = nt_xent(*z.chunk(2), 0.5)
    torch.testing.assert_close(got["loss"], want)
    torch.testing.assert_close(got["accuracy"], accuracy)
    assert not torch.allclose(v1, x)  # the default pipeline changes the images


def test_without_augmentation_and_head_the_views_coincide():
    torch.manual_seed(0)
    model = unsup.create("simclr", FASHION, augment="none", head="none", **TINY).eval()
    x = torch.randint(0, 256, (5, 1, 12, 12))
    h = model.encode(x)
    assert h.shape == (5, model.feature_dim) and model.embedding_dim == model.feature_dim
    with torch.no_grad():
        torch.testing.assert_close(model.loss({"x": x})["loss"], nt_xent(h, h, 0.5)[0])


def test_training_lowers_the_loss_and_the_pictures_show_the_views():
    torch.manual_seed(0)
    model = with_fixed_draws(unsup.create("simclr", FASHION, **TINY))
    batch = {"x": torch.randint(0, 256, (16, 1, 12, 12))}
    assert_training_reduces_loss(model, batch, lr=1e-2, steps=15)
    rows = model.illustrations(batch["x"][:4])["views"]
    assert [r.shape for r in rows] == [(4, 1, 12, 12)] * 3


@pytest.mark.parametrize("options, words", [({"head": "deep"}, ["head", "mlp"]),
                                            ({"temperature": 0.0}, ["temperature", "0.0"]),
                                            ({"augment": "rand"}, ["augmentation", "simclr"])])
def test_bad_options_are_named(options, words):
    with pytest.raises(ConfigError) as e:
        unsup.create("simclr", RGB, **{**TINY, **options})
    assert all(w in str(e.value) for w in words), str(e.value)


def test_the_paper_preset_is_the_cifar_configuration():
    config = unsup.models.config_for("simclr", "paper")
    assert (config.backbone, config.width, config.blocks, config.head_hidden, config.dim) == (
        "resnet", 64, 2, 2048, 128)
    assert config.temperature == 0.5 and config.blur == 0.0
