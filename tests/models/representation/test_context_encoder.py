"""Context encoder: masks, the loss on the removed region, the one-optimiser GAN gradients,
inpainting keeps the context; smoke and training on 1- and 3-channel images."""

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.context_encoder import center_mask, random_mask

FASHION = DataSpec((1, 28, 28), 256, 10, "image")
RGB = DataSpec((3, 16, 16), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "decoder_width": 4, "disc_width": 4}


def test_center_mask_is_the_central_block():
    m = center_mask(2, (28, 28), 0.5)[0, 0]
    assert m.sum() == 14 * 14 and m[7:21, 7:21].all()


def test_random_masks_cover_about_the_fraction_and_follow_the_global_rng():
    torch.manual_seed(1)
    a = random_mask(400, (32, 32), 0.25, 3)
    torch.manual_seed(1)
    assert torch.equal(a, random_mask(400, (32, 32), 0.25, 3))
    assert abs(a.float().mean() - 0.25) < 0.04
    assert (a.float().mean((1, 2, 3)).std() > 0)  # positions vary between images


def test_loss_is_the_squared_error_on_the_removed_region_and_ignores_its_pixels():
    model = unsup.create("context-encoder", RGB, **TINY).eval()
    x = torch.randint(0, 256, (4, 3, 16, 16))
    m = model.mask(4)
    y = x.clone()
    y[m.expand_as(x)] = 255 - y[m.expand_as(x)]  # change only the removed pixels
    images = model.images(x)
    corrupted, pred = model.complete(images, m)
    corrupted2, pred2 = model.complete(model.images(y), m)
    assert torch.equal(corrupted, corrupted2) and torch.equal(pred, pred2)
    assert (corrupted[m.expand_as(corrupted)] == 0.5).all()
    expected = (pred - images)[m.expand_as(pred)].pow(2).mean()
    assert torch.allclose(model.loss({"x": x})["loss"], expected)


def test_one_loss_gives_d_only_grad_ld_and_g_only_grad_lrec_plus_lambda_lg():
    lam = 0.3
    model = unsup.create("context-encoder", RGB, adversarial=lam, **TINY)
    out = model.loss({"x": torch.randint(0, 256, (4, 3, 16, 16))})
    d_params = list(model.disc.parameters())
    g_params = [p for n, p in model.named_parameters() if not n.startswith("disc.")]

    def grads(y, params):
        return [torch.zeros_like(p) if g is None else g
                for p, g in zip(params, torch.autograd.grad(y, params, retain_graph=True, allow_unused=True),
                                    strict=True)]

    total_d, total_g = grads(out["loss"], d_params), grads(out["loss"], g_params)
    for a, b in zip(total_d, grads(out["discriminator"], d_params), strict=True):
        assert torch.allclose(a, b, atol=1e-7)
    for a, b in zip(total_g, grads(out["reconstruction"] + lam * out["generator"], g_params), strict=True):
        assert torch.allclose(a, b, atol=1e-7)
    assert all((g == 0).all() for g in grads(out["discriminator"], g_params))
    assert all((g == 0).all() for g in grads(out["generator"], d_params))
    assert any((g != 0).any() for g in grads(out["generator"], g_params))  # L_G does train G
    assert any((g != 0).any() for g in total_d)


def test_inpaint_keeps_the_context():
    model = unsup.create("context-encoder", FASHION, mask="random", **TINY).eval()
    x = torch.randint(0, 256, (3, 1, 28, 28))
    torch.manual_seed(3)
    masked, completed = model.inpaint(x)
    torch.manual_seed(3)
    m = model.mask(3)
    images = model.images(x)
    assert torch.equal(completed[~m], images[~m]) and (masked[m] == 0.5).all()
    assert completed.min() >= 0 and completed.max() <= 1


def test_bad_options_are_refused():
    for options, word in [({"mask": "ring"}, "mask"), ({"block": 1.0}, "block"),
                          ({"block_fraction": 0}, "block_fraction"), ({"adversarial": -1}, "adversarial"),
                          ({"block": 0.01}, "central block")]:
        with pytest.raises(ConfigError, match=word):
            unsup.create("context-encoder", FASHION, **{**TINY, **options})


@pytest.mark.parametrize("spec,options", [(FASHION, {}), (RGB, {"mask": "random", "context_weight": 0.1}),
                                          (RGB, {"adversarial": 0.01, "backbone": "resnet"})])
def test_one_step_and_training_reduces_loss(spec, options):
    model = unsup.create("context-encoder", spec, **{**TINY, **options})
    x = torch.randint(0, 256, (8, *spec.shape))
    assert torch.isfinite(model.loss({"x": x})["loss"])
    assert model.encode(x).shape == (8, model.feature_dim)
    torch.manual_seed(0)
    if options.get("mask") == "random":  # a fixed batch needs a fixed mask
        fixed = model.mask(8)
        model.mask = lambda n: fixed
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=5)


def test_unsup_train_pictures_the_inpainting(tmp_path, capsys):
    from cli_helpers import run
    from PIL import Image

    out = tmp_path / "ce"
    code, _, err = run(capsys, "train", "context-encoder", "--data", "digits", "--steps", "2",
                       "--samples", "8", "--no-progress", "--no-tensorboard", "--out", str(out),
                       "--width", "4", "--depth", "2")
    assert code == 0 and "inpainting.png" in err
    # rows of 8: the digits, the masked inputs, the completions (8x8 images + 1 px borders, scaled)
    img = Image.open(out / "inpainting.png")
    assert img.width / img.height == pytest.approx((8 * 9 + 1) / (3 * 9 + 1), rel=0.02)
    model = unsup.create("context-encoder", RGB, **TINY).eval()
    rows = model.illustrations(torch.randint(256, (4, *RGB.shape)))["inpainting"]
    assert [tuple(r.shape) for r in rows] == [(4, *RGB.shape)] * 3
    assert all(0 <= float(r.min()) and float(r.max()) <= 1 for r in rows)
    assert torch.equal(rows[2][rows[1] != 0.5], rows[0][rows[1] != 0.5])  # the context is kept
