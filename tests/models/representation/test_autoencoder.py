"""Autoencoders: the corruption processes, the emphasized loss, the linear-AE = PCA result."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup.models as models
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.autoencoder import corrupt, emphasized_error, reconstruction_error
from unsup.models.representation.backbones import Backbone

TINY = {"width": 4, "depth": 2, "code_dim": 8, "decoder_width": 4}
IMAGES = DataSpec((1, 12, 12), 256, 10)
N = 40_000  # dimensions for the binomial checks


def _fraction_ok(chosen: torch.Tensor, p: float) -> None:
    """The observed fraction is within 5 binomial standard errors of ``p``."""
    assert abs(chosen.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / chosen.numel())


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masking_zeroes_the_expected_fraction(p):
    x = torch.rand(N) * 0.9 + 0.1  # no zeros before corruption
    x_tilde, chosen = corrupt(x, "masking", p)
    _fraction_ok(chosen, p)
    assert torch.equal(x_tilde == 0, chosen)
    assert torch.equal(x_tilde[~chosen], x[~chosen])


def test_salt_pepper_sets_the_expected_fraction_to_0_or_1():
    x = torch.full((N,), 0.5)
    x_tilde, chosen = corrupt(x, "salt-pepper", 0.3)
    _fraction_ok(chosen, 0.3)
    assert set(x_tilde[chosen].unique().tolist()) == {0.0, 1.0}
    _fraction_ok(x_tilde[chosen] == 1, 0.5)  # a fair coin between salt and pepper
    assert torch.equal(x_tilde[~chosen], x[~chosen])


def test_gaussian_noise_has_the_requested_std_and_touches_every_dimension():
    x = torch.rand(N)
    x_tilde, chosen = corrupt(x, "gaussian", 0.2)
    eps = x_tilde - x
    assert chosen is None
    assert abs(eps.std().item() - 0.2) < 5 * 0.2 / math.sqrt(2 * N)  # se of a sample std
    assert abs(eps.mean().item()) < 5 * 0.2 / math.sqrt(N)


@pytest.mark.parametrize("noise", ["none", "gaussian", "masking", "salt-pepper"])
def test_noise_level_zero_is_the_identity(noise):
    x = torch.rand(3, 1, 5, 5)
    x_tilde, chosen = corrupt(x, noise, 0.0)
    assert torch.equal(x_tilde, x)
    assert chosen is None or not chosen.any()


def test_emphasized_error_matches_a_hand_computation():
    error = torch.tensor([[1.0, 2.0], [3.0, 10.0]])
    chosen = torch.tensor([[True, False], [False, True]])
    # weights 2 alpha = 1.6 on the corrupted, 2 (1 - alpha) = 0.4 on the others, mean over 4
    assert emphasized_error(error, chosen, 0.8).item() == pytest.approx((1.6 + 0.8 + 1.2 + 16) / 4)
    assert emphasized_error(error, chosen, 0.5).item() == pytest.approx(error.mean().item())
    assert emphasized_error(error, chosen, 1.0).item() == pytest.approx(2 * 11 / 4)
    assert emphasized_error(error, None, 0.9).item() == pytest.approx(4.0)


def test_bce_error_is_the_cross_entropy_of_the_sigmoid_output():
    out, x = torch.tensor([-1.0, 0.3, 2.0]), torch.tensor([0.0, 0.4, 1.0])
    s = torch.sigmoid(out)
    expected = -(x * s.log() + (1 - x) * (1 - s).log())
    assert torch.allclose(reconstruction_error(out, x, "bce"), expected, atol=1e-6)


def test_model_loss_is_the_emphasized_error_of_the_masked_input():
    model = models.create("denoising-autoencoder", IMAGES, arch="mlp", hidden=[16], code_dim=4,
                          corrupted_weight=0.9)
    x = torch.randint(0, 256, (5, 1, 12, 12))
    torch.manual_seed(3)
    loss = model.loss({"x": x})["loss"]
    torch.manual_seed(3)
    images = x.float() / 255
    chosen = torch.rand_like(images) < 0.25
    out = model.decode(model.codes(images.masked_fill(chosen, 0)))
    w = torch.where(chosen, 1.8, 0.2)
    assert loss.item() == pytest.approx((w * (out - images) ** 2).mean().item(), rel=1e-5)


def test_linear_autoencoder_spans_the_principal_subspace():
    """A linear autoencoder (no activation, squared error) with k code units has no spurious
    minima and its optimum spans the top-k principal subspace [Baldi & Hornik 1989]: minimised
    (full batch, L-BFGS) it reaches PCA's error, and its decoder's columns lie in that subspace."""
    k, n = 3, 512
    spec = DataSpec((1, 4, 5), None)
    q = torch.linalg.qr(torch.randn(20, 20)).Q  # principal directions
    scales = torch.cat([torch.tensor([0.3, 0.2, 0.15]), torch.linspace(0.05, 0.02, 17)])
    x = 0.5 + (torch.randn(n, 20) * scales) @ q.T  # (n, 20)
    xc = x - x.mean(0)
    v = torch.linalg.svd(xc, full_matrices=False).Vh[:k]  # (k, 20)
    pca = (xc - xc @ v.T @ v).pow(2).mean().item()
    model = models.create("autoencoder", spec, arch="mlp", hidden=[], code_dim=k, activation="none")
    batch = {"x": x.view(n, *spec.shape)}
    opt = torch.optim.LBFGS(model.parameters(), max_iter=150, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = model.loss(batch)["loss"]
        loss.backward()
        return loss

    opt.step(closure)
    ae = model.loss(batch)["loss"].item()
    assert pca * (1 - 1e-4) <= ae < 1.01 * pca, (ae, pca)
    w = model.decoder[1].weight.detach()  # (20, k)
    assert (w - v.T @ (v @ w)).norm() < 0.02 * w.norm()  # no component outside the subspace


def test_encode_is_the_backbone_features_for_conv_and_the_code_for_mlp():
    x = torch.randint(0, 256, (3, 1, 12, 12))
    conv = models.create("autoencoder", IMAGES, **TINY)
    assert conv.encode(x).shape == (3, conv.encoder.dim) and conv.feature_dim == 8  # 2 stages: 4, 8
    mlp = models.create("autoencoder", IMAGES, arch="mlp", hidden=[32, 16], code_dim=5)
    assert mlp.feature_dim == 5 and mlp.encode(x).shape == (3, 5)
    assert torch.allclose(mlp.encode(x), mlp.codes(x.float() / 255))
    assert not any(isinstance(m, Backbone) for m in mlp.modules())


@pytest.mark.parametrize("recon", ["mse", "bce"])
def test_reconstruct_returns_the_data_representation(recon):
    model = models.create("autoencoder", IMAGES, recon=recon, **TINY).eval()
    x = torch.randint(0, 256, (4, 1, 12, 12))
    r = model.reconstruct(x)
    assert r.shape == x.shape and not r.is_floating_point() and 0 <= r.min() and r.max() <= 255
    f = model.reconstruction(x.float() / 255)
    assert f.is_floating_point() and 0 <= f.min() and f.max() <= 1


def test_validation_loss_is_the_corrupted_objective():
    model = models.create("denoising-autoencoder", IMAGES, **TINY).eval()
    x = torch.randint(0, 256, (4, 1, 12, 12))
    a, b = model.loss({"x": x})["loss"], model.loss({"x": x})["loss"]
    assert a != b  # a fresh corruption per call in eval mode too


@pytest.mark.parametrize("name,options", [
    ("autoencoder", TINY),
    ("autoencoder", {"arch": "mlp", "hidden": [32], "code_dim": 8, "recon": "bce"}),
    ("autoencoder", {**TINY, "noise": "gaussian", "noise_level": 0.1}),
    ("denoising-autoencoder", {**TINY, "noise": "salt-pepper", "corrupted_weight": 0.7}),
])
def test_few_adam_steps_reduce_the_loss(name, options):
    torch.manual_seed(0)
    model = models.create(name, IMAGES, **options)
    x = torch.randint(0, 256, (16, 1, 12, 12))
    out = model.loss({"x": x})
    assert set(out) == {"loss", "mse"} and torch.isfinite(out["loss"])
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=5)


def test_continuous_rgb_images():
    model = models.create("autoencoder", DataSpec((3, 10, 10), None), **TINY)
    x = torch.rand(2, 3, 10, 10)
    assert model.loss({"x": x})["loss"].isfinite() and model.reconstruct(x).shape == x.shape


def test_paper_presets_build():
    for name in ("autoencoder", "denoising-autoencoder"):
        models.config_for(name, "paper")
    dae = models.create("denoising-autoencoder", IMAGES, preset="paper")
    assert dae.config.noise == "masking" and dae.feature_dim == 1000


@pytest.mark.parametrize("options,match", [
    ({"arch": "vit"}, "arch"),
    ({"noise": "speckle"}, "noise"),
    ({"noise": "masking", "noise_level": 1.5}, "noise_level"),
    ({"noise": "gaussian", "noise_level": -0.1}, "noise_level"),
    ({"noise": "gaussian", "corrupted_weight": 0.8}, "corrupted_weight"),
    ({"noise": "masking", "corrupted_weight": 1.2}, "corrupted_weight"),
    ({"recon": "l1"}, "recon"),
    ({"code_dim": 0}, "code_dim"),
    ({"arch": "mlp", "hidden": [0]}, "hidden"),
    ({"arch": "mlp", "activation": "gelu"}, "activation"),
])
def test_bad_options_raise(options, match):
    with pytest.raises(ConfigError, match=match):
        models.create("autoencoder", IMAGES, **{**TINY, **options})
