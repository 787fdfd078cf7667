"""PixelVAE: the decoder is autoregressive and normalised, its sampler draws from the distribution
it scores, the bounds are ordered, and bad options or data are refused."""

import math

import pytest
import torch
from model_checks import all_images, assert_training_reduces_loss, fit, iwae_bound_means

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError

TINY = DataSpec((1, 2, 2), 2)  # 16 binary images
TINY_COLOUR = DataSpec((2, 1, 2), 3)  # 81 images of two 3-level channels
SMALL = DataSpec((1, 4, 4), 2)


def tiny_model(spec: DataSpec, seed: int = 0, **opts) -> torch.nn.Module:
    """A small PixelVAE with sharpened output weights, so its conditionals are far from uniform."""
    torch.manual_seed(seed)
    model = unsup.create("pixelvae", spec, z_dim=3,
                         **{"channels": 2, "pixel_channels": 4, "pixel_layers": 2, **opts}).eval()
    with torch.no_grad():
        model.output_conv.weight.mul_(4)
        model.input_conv.weight.mul_(3)
    return model


def patterns(n: int, seed: int) -> torch.Tensor:
    """4 x 4 binary images: four prototypes (bars, checkerboard, a square) with 10% of the pixels
    flipped -- a 2-D latent cause plus local noise."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.tensor([1, 0, 1, 0])
    protos = torch.stack([rows[:, None].expand(4, 4), rows[None, :].expand(4, 4),
                          (rows[:, None] + rows[None, :]) % 2,
                          torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])])
    x = protos[torch.randint(0, 4, (n,), generator=g)]
    flip = (torch.rand(x.shape, generator=g) < 0.1).long()
    return (x ^ flip)[:, None]  # (n, 1, 4, 4)


# ------------------------------------------------------------------------------ the decoder


def raster_index(shape: tuple[int, int, int]) -> torch.Tensor:
    """Position of every (c, i, j) in the decoder's order: pixels in raster order, then channels."""
    c, h, w = shape
    ci, ii, jj = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    return ((ii * w + jj) * c + ci).flatten()


@pytest.mark.parametrize("spec", [DataSpec((1, 4, 5), 2), DataSpec((3, 3, 4), 4)])
def test_decoder_is_autoregressive_in_x_and_depends_on_z(spec):
    model = tiny_model(spec, pixel_layers=3, pixel_channels=12, channels=4)
    torch.manual_seed(1)
    z = torch.randn(1, 3)
    feats = model.conditioning(z).detach()
    d = spec.dims
    jac = torch.zeros(d, d)  # |d logits / d input| summed over levels and a few images (ReLUs
    for _ in range(4):       # that happen to be off at one image would hide a dependence)
        inputs = model.scale(torch.randint(0, spec.levels, (1, *spec.shape)))
        j = torch.autograd.functional.jacobian(lambda v: model.pixel_logits(v, feats), inputs)
        jac += j.reshape(d, model.num_logits, d).abs().sum(1)  # (output position, input position)
    order = raster_index(spec.shape)
    later_or_same = order[None, :] >= order[:, None]  # input at or after the output's position
    assert jac[later_or_same].max() == 0
    # ... and the earlier inputs are used: each position sees the one just before it in its row
    # (or, for channel c > 0, the earlier channels of its own pixel)
    assert (jac[~later_or_same].sum() > 0) and (jac.sum(1)[order > 0] > 0).all()

    jz = sum(torch.autograd.functional.jacobian(
        lambda zz: model.pixel_logits(inputs, model.conditioning(zz)), torch.randn(1, 3)).abs()
        for _ in range(4))
    assert (jz.reshape(d, model.num_logits, -1).sum((1, 2)) > 0).all()  # every pixel sees z


@pytest.mark.parametrize("spec", [TINY, TINY_COLOUR])
def test_decoder_normalises_over_all_images(spec):
    model = tiny_model(spec)
    x = all_images(spec.shape, spec.levels)
    torch.manual_seed(2)
    for _ in range(3):
        z = torch.randn(1, 3).expand(len(x), 3)
        with torch.no_grad():
            total = model.decoder_log_prob(x, z).double().exp().sum()
        assert abs(total - 1) < 1e-5


def test_importance_sampled_marginal_sums_to_one():
    """exp(log p^(x)) is unbiased for p(x) = E_p(z) p(x | z): over all 16 images it sums to ~1."""
    model = tiny_model(TINY, seed=8)
    torch.manual_seed(9)
    lp, se = model.log_prob_with_se(all_images(TINY.shape, 2), k=2000)
    p = lp.double().exp()
    se_total = (p * se.double()).pow(2).sum().sqrt()  # delta method: se(p^) = p^ se(log p^)
    assert abs(p.sum() - 1) < 3 * se_total + 0.01


@pytest.mark.parametrize("spec,n", [(TINY, 20000), (TINY_COLOUR, 40000)])
def test_decoder_draws_match_teacher_forced_probabilities(spec, n):
    """Pixel-by-pixel draws for one z against exp(log p(x | z)) of every image: Pearson's
    chi-square below df + 4.5 sd (past its 0.1% point, so a correct sampler passes for almost any
    seed; a fixed one here), while a wrong conditional shifts it by ~n times the squared error."""
    model = tiny_model(spec, seed=3)
    x = all_images(spec.shape, spec.levels)
    torch.manual_seed(4)
    z = torch.randn(1, 3)
    with torch.no_grad():
        p = model.decoder_log_prob(x, z.expand(len(x), 3)).double().exp()
    draws = model.decoder_draw(z.expand(n, 3))
    assert draws.dtype == torch.long and draws.shape == (n, *spec.shape)
    codes = (draws.flatten(1) * spec.levels ** torch.arange(spec.dims - 1, -1, -1)).sum(1)
    counts = torch.bincount(codes, minlength=len(x)).double()  # all_images enumerates in this order
    expected = n * p
    chi2 = ((counts - expected) ** 2 / expected).sum()
    df = len(x) - 1
    assert chi2 < df + 4.5 * math.sqrt(2 * df), (chi2, df)
    assert p.max() > 2 / len(x)  # the test is not against a uniform distribution


def test_cached_and_naive_sampling_agree_and_mode_is_greedy():
    model = tiny_model(DataSpec((2, 3, 4), 3), seed=5)
    z = torch.randn(6, 3)
    torch.manual_seed(6)
    fast = model.decoder_draw(z)
    torch.manual_seed(6)
    assert torch.equal(fast, model.decoder_draw(z, fast=False))
    mode = model.decoder_draw(z, mode=True)
    with torch.no_grad():  # each greedy step is the argmax given the greedy prefix
        logits = model.pixel_logits(model.scale(mode), model.conditioning(z))
    assert torch.equal(logits.argmax(-1), mode)


# ---------------------------------------------------------------------------------- bounds


@pytest.fixture(scope="module")
def trained():
    """Briefly trained on the 4 x 4 patterns. With free bits: without them the PixelCNN decoder
    models these images alone, the KL collapses to ~0.002 nats and every bound is the same."""
    torch.manual_seed(0)
    model = unsup.create("pixelvae", SMALL, z_dim=4, channels=4, pixel_channels=8, pixel_layers=2,
                         free_bits=0.5)
    return fit(model, patterns(512, seed=1), steps=40, batch=32)


def test_elbo_below_iwae_k_below_log_p_estimate(trained):
    x = patterns(100, seed=2)  # held out
    torch.manual_seed(3)
    repeats = 10
    means = iwae_bound_means(trained, x, repeats)
    lp, se = trained.log_prob_with_se(x, k=300)
    assert means[50].mean() <= lp.mean() + 2 * se.mean()
    assert not trained.exact_likelihood


# -------------------------------------------------------------------------------- training


@pytest.mark.parametrize("spec", [DataSpec((1, 8, 8), 4), DataSpec((3, 4, 4), 2)])
def test_training_reduces_loss(spec):
    torch.manual_seed(7)
    model = unsup.create("pixelvae", spec, z_dim=4, channels=4, pixel_channels=6)
    x = torch.randint(0, spec.levels, (32, *spec.shape))
    out = model.loss({"x": x})
    assert set(out) >= {"loss", "bpd", "kl", "recon"}
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=15)


# --------------------------------------------------------------------- samples and codes


@pytest.mark.parametrize("spec", [SMALL, DataSpec((3, 5, 6), 4)])
def test_samples_and_codes(spec):
    torch.manual_seed(9)
    model = unsup.create("pixelvae", spec, z_dim=2, channels=2, pixel_channels=6).eval()
    for t in (1.0, 0.5, 0.0):
        s = model.sample(5, temperature=t)
        assert s.shape == (5, *spec.shape) and s.dtype == torch.long
        assert s.min() >= 0 and s.max() < spec.levels
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0))
    x = model.sample(6)
    assert model.encode(x).shape == (6, 2)
    assert model.reconstruct(x).shape == x.shape
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, *spec.shape)
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(2, temperature=-1.0)


def test_paper_preset():
    cfg = unsup.models.config_for("pixelvae", "paper")
    assert (cfg.kernel_size, cfg.eval_samples, cfg.arch) == (5, 1000, "conv")


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("spec,opts,match", [
    (DataSpec((8,), 2, kind="vector"), {}, "image data"),
    (DataSpec((16,), 4, kind="sequence"), {}, "image data"),
    (DataSpec((1, 4, 4), None), {}, "discrete"),
    (DataSpec((1, 4, 4), 1000), {}, "256 levels"),
    (SMALL, {"arch": "mlp"}, "arch must be conv"),
    (SMALL, {"decoder": "bernoulli"}, "decoder must be auto"),
    (SMALL, {"pixel_layers": 0}, "pixel_layers"),
    (SMALL, {"pixel_channels": 0}, "pixel_channels"),
    (DataSpec((3, 4, 4), 2), {"pixel_channels": 2}, "pixel_channels must be >="),
    (SMALL, {"kernel_size": 4}, "kernel_size"),
    (SMALL, {"kernel_size": 1}, "kernel_size"),
    (SMALL, {"z_dim": 0}, ">= 1"),
    (SMALL, {"k": 5, "beta": 2.0}, "use k = 1"),
])
def test_bad_config_raises(spec, opts, match):
    with pytest.raises(ConfigError, match=match):
        unsup.create("pixelvae", spec, **opts)


def test_bad_data_raises():
    model = unsup.create("pixelvae", SMALL, z_dim=2, channels=2, pixel_channels=4)
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(2, 1, 4, 5, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"values in \[0, 1\]"):
        model.loss({"x": torch.full((2, 1, 4, 4), 3)})
