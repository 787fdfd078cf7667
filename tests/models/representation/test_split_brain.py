"""Split-brain autoencoder: each half sees only its channels (input gradients), the representation
concatenates both codes; smoke and training."""

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.color import rgb_to_lab

RGB = DataSpec((3, 16, 16), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "decoder_width": 4}


def test_each_half_sees_only_its_channels():
    model = unsup.create("split-brain", RGB, **TINY)
    lab = rgb_to_lab(torch.rand(3, 3, 16, 16)).requires_grad_()
    ab_logits, l_logits = model.predictions(lab)
    g1, = torch.autograd.grad((ab_logits * torch.randn_like(ab_logits)).sum(), lab, retain_graph=True)
    g2, = torch.autograd.grad((l_logits * torch.randn_like(l_logits)).sum(), lab)
    assert (g1[:, 1:] == 0).all() and (g1[:, :1] != 0).any()  # F1: L -> ab
    assert (g2[:, :1] == 0).all() and (g2[:, 1:] != 0).any()  # F2: ab -> L
    assert ab_logits.shape == (3, len(model.centres), 8, 8) and l_logits.shape == (3, 10, 8, 8)


def test_features_concatenate_both_codes():
    model = unsup.create("split-brain", RGB, **TINY).eval()
    x = torch.randint(0, 256, (2, 3, 16, 16))
    h = model.encode(x)
    assert h.shape == (2, 2 * model.encoder.dim) and model.feature_dim == h.shape[1]
    L, ab = model.inputs(rgb_to_lab(model.images(x)))
    assert torch.allclose(h, torch.cat([model.encoder(L), model.encoder2(ab)], 1))


def test_bad_data_and_options_are_refused():
    with pytest.raises(ConfigError, match="cifar10-jpeg"):
        unsup.create("split-brain", DataSpec((1, 16, 16), 256, 10, "image"), **TINY)
    with pytest.raises(ConfigError, match="l_bins"):
        unsup.create("split-brain", RGB, l_bins=1, **TINY)


@pytest.mark.parametrize("options", [{}, {"backbone": "resnet", "l_bins": 50, "resolution": 1}])
def test_one_step_and_training_reduces_loss(options):
    model = unsup.create("split-brain", RGB, **{**TINY, **options})
    x = torch.randint(0, 256, (8, 3, 16, 16))
    out = model.loss({"x": x})
    assert torch.isfinite(out["loss"]) and torch.allclose(out["loss"], out["ab_cross_entropy"]
                                                          + out["l_cross_entropy"])
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=5)
