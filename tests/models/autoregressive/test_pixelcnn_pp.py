"""PixelCNN++: raster-order dependence of the mixture parameters (no blind spot), R -> G -> B means,
exact normalisation, sampling, conditioning, training, errors."""

import itertools
import os
from pathlib import Path

import pytest
import torch
from model_checks import all_images
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for
from unsup.nn.layers import discretized_logistic_mixture_log_prob, discretized_logistic_mixture_table

TINY = {"hidden": 8, "res_per_stage": 1, "num_stages": 3, "num_logistics": 2}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _model(shape=(1, 4, 4), levels=4, classes=None, **options):
    kind = "vector" if len(shape) == 1 else "image"
    return unsup.create("pixelcnn++", DataSpec(shape, levels, classes, kind), **{**TINY, **options})


@pytest.mark.parametrize("shape,options", [
    ((1, 5, 6), {}),  # odd sizes: 5 x 6 -> 3 x 3 -> 2 x 2 and back, cropped
    ((3, 4, 4), {"res_per_stage": 2, "num_stages": 2}),
])
def test_mixture_parameters_depend_on_every_earlier_pixel_and_nothing_else(shape, options):
    torch.manual_seed(0)
    model = _model(shape, 4, **options).double().eval()
    c_n, h_n, w_n = shape
    inputs = model.scale(torch.randint(4, (1, *shape)))
    proj = torch.randn(3, model.config.num_logistics, dtype=torch.float64)

    def f(inp):
        logit_pi, mu, log_s = model.params(inp)
        pi = (logit_pi * proj[0]).sum(-1)[:, None].expand(-1, c_n, -1, -1)  # (1, C, H, W)
        return torch.stack([pi, (mu * proj[1]).sum(-1), (log_s * proj[2]).sum(-1)])  # (3, 1, C, H, W)

    jac = torch.autograd.functional.jacobian(f, inputs)[:, 0, :, :, :, 0]  # (3, C, H, W, C, H, W)
    for c, i, j in itertools.product(range(c_n), range(h_n), range(w_n)):
        for p, q in itertools.product(range(h_n), range(w_n)):
            dep = jac[:, c, i, j, :, p, q].abs()  # (3, C): parameters of (c, i, j) vs pixel (p, q)
            if (p, q) < (i, j):
                assert dep.sum() > 0, (c, i, j, p, q)  # every earlier pixel: no blind spot
            elif (p, q) > (i, j):
                assert dep.sum() == 0, (c, i, j, p, q)
            else:  # the pixel itself: only mu_c, and only through the colours before c
                assert dep[0].sum() == 0 and dep[2].sum() == 0
                assert dep[1, c:].sum() == 0
                assert (dep[1, :c] > 0).all()


def test_colour_means_shift_linearly_with_earlier_colours():
    torch.manual_seed(0)
    model = _model((3, 2, 2), 256).eval()
    x = torch.randint(256, (2, 3, 2, 2))
    inputs = model.scale(x)
    _, mu, _, alpha = model.network(inputs)
    shifted = model.params(inputs)[1]
    v = inputs[..., None]  # (B, C, H, W, 1)
    assert torch.allclose(shifted[:, 0], mu[:, 0])
    assert torch.allclose(shifted[:, 1], mu[:, 1] + alpha[:, 0] * v[:, 0])
    assert torch.allclose(shifted[:, 2], mu[:, 2] + alpha[:, 1] * v[:, 0] + alpha[:, 2] * v[:, 1])
    assert alpha.abs().max() < 1  # tanh


@pytest.mark.parametrize("levels", [2, 3, 256])
def test_edge_levels_take_the_tails_exactly(levels):
    """The shared likelihood in float64: level 0 is P(X <= -1 + h) and level L-1 is P(X > 1 - h),
    equal to direct sigmoids to machine precision, so all L levels sum to 1."""
    torch.manual_seed(levels)
    n, k, h = 50, 3, 1 / (levels - 1)
    logit_pi = torch.randn(n, k, dtype=torch.float64)
    mu = torch.rand(n, k, dtype=torch.float64) * 2 - 1
    log_s = torch.rand(n, k, dtype=torch.float64) * 2 - 3
    w, s = torch.softmax(logit_pi, -1), log_s.exp()
    first = (w * torch.sigmoid((-1 + h - mu) / s)).sum(-1)
    last = (w * (1 - torch.sigmoid((1 - h - mu) / s))).sum(-1)
    lp = discretized_logistic_mixture_log_prob
    zeros = torch.zeros(n, dtype=torch.long)
    assert torch.allclose(lp(zeros, logit_pi, mu, log_s, levels).exp(), first, rtol=0, atol=1e-14)
    assert torch.allclose(lp(zeros + levels - 1, logit_pi, mu, log_s, levels).exp(), last,
                          rtol=0, atol=1e-14)
    total = discretized_logistic_mixture_table(logit_pi, mu, log_s, levels).exp().sum(-1)
    assert torch.allclose(total, torch.ones(n, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape,levels,options", [
    ((1, 2, 2), 4, {}),
    ((2, 1, 2), 3, {}),  # colours coupled through the shared mixture and the mean shift
    ((1, 2, 2), 2, {"num_stages": 2, "res_per_stage": 2}),
    ((2,), 5, {}),  # a vector as a one-row image
])
def test_probabilities_of_all_images_sum_to_one(shape, levels, options):
    torch.manual_seed(0)
    model = _model(shape, levels, **options).eval()
    lp = model.log_prob(all_images(shape, levels))
    assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


def test_sampling_tables_are_normalised_and_match_the_likelihood():
    """The per-colour conditionals the sampler draws from (R, then G given R, ..) are normalised
    over all 256 levels and multiply to p(x)."""
    torch.manual_seed(0)
    model = _model((3, 4, 4), 256).eval()
    x = torch.randint(256, (3, 3, 4, 4))
    with torch.no_grad():
        tables = model.logits(model.scale(x))  # (B, C, H, W, L)
        assert tables.shape == (3, 3, 4, 4, 256)
        assert torch.allclose(tables.logsumexp(-1), torch.zeros(3, 3, 4, 4), atol=1e-4)
        picked = tables.gather(-1, x[..., None])[..., 0].flatten(1).sum(1)
        assert torch.allclose(picked, model.log_prob(x), atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 2, 2), (2, 1, 2)])
def test_samples_follow_the_model_distribution(shape):
    torch.manual_seed(0)
    model = _model(shape, 2).eval()
    with torch.no_grad():  # sharpen the untrained model so the test has power
        model.out.weight.mul_(4)
        model.out.bias.normal_()
    n = 3000
    x = model.sample(n)
    assert x.shape == (n, *shape) and x.dtype == torch.long
    probs = model.log_prob(all_images(shape, 2)).exp().detach().double()
    index = (x.reshape(n, -1) * torch.tensor([8, 4, 2, 1])).sum(1)  # images in binary order
    counts = torch.bincount(index, minlength=16).numpy()
    assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


def test_per_pixel_and_per_colour_samplers_agree_and_temperature():
    torch.manual_seed(0)
    model = _model((3, 3, 4), 16).eval()
    assert not model.supports_fast_sampling
    torch.manual_seed(1)
    a = model.sample(3, temperature=0.8)
    torch.manual_seed(1)
    b = model.sample(3, temperature=0.8, fast=False)
    assert torch.equal(a, b) and a.shape == (3, 3, 3, 4) and 0 <= a.min() and a.max() < 16
    greedy = torch.zeros(1, 3, 3, 4, dtype=torch.long)
    for i, j, c in itertools.product(range(3), range(4), range(3)):
        greedy[0, c, i, j] = model.logits(model.scale(greedy))[0, c, i, j].argmax()
    assert torch.equal(model.sample(2, temperature=0), greedy.expand(2, -1, -1, -1))


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _model((1, 2, 2), 2, classes=3, conditional=True).eval()
    x = all_images((1, 2, 2), 2)
    with torch.no_grad():
        for blocks in (model.up_u, model.down_ul):
            for block in blocks[0]:
                block.label.weight.normal_()
    for c in range(3):
        lp = model.log_prob(x, torch.full((16,), c))
        assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(model.log_prob(x, torch.zeros(16, dtype=torch.long)),
                              model.log_prob(x, torch.ones(16, dtype=torch.long)))
    assert model.sample(3, y=torch.tensor([2, 0, 1])).shape == (3, 1, 2, 2)
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)


def test_completion_of_colour_conditional_images():
    torch.manual_seed(0)
    model = _model((3, 4, 4), 8, classes=2, conditional=True).eval()
    x = torch.randint(8, (2, 3, 4, 4))
    known = torch.rand(2, 1, 4, 4) < 0.5  # whole pixels, broadcast over the colours
    y = torch.tensor([1, 0])
    torch.manual_seed(1)
    out = model.complete(x, known, y=y)
    torch.manual_seed(1)
    assert torch.equal(model.complete(x, known, y=y, fast=False), out)
    assert torch.equal(out[known.expand_as(x)], x[known.expand_as(x)])
    assert out.min() >= 0 and out.max() < 8


def _train(model, x, steps=6):
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = model.loss({"x": x})["loss"].item()
    for _ in range(steps):
        opt.zero_grad()
        loss = model.loss({"x": x})["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert model.loss({"x": x})["loss"].item() < first


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir() and not os.environ.get("CI"),
                    reason="needs Debian's dataset-fashion-mnist (always run in CI)")
def test_training_steps_on_native_fashion_mnist():
    torch.manual_seed(0)
    train = unsup.data.load("fashion-mnist", "train", "native")
    assert train.spec.shape == (1, 28, 28) and train.spec.levels == 256
    model = unsup.create("pixelcnn++", train, hidden=8, dropout=0.1)
    _train(model, train.batch(torch.arange(4))["x"], steps=4)


def test_training_steps_on_colour_images():
    torch.manual_seed(0)
    model = _model((3, 32, 32), 256, hidden=8)
    x = torch.randint(256, (2, 3, 32, 32))
    _train(model, x, steps=3)


def test_presets_and_defaults():
    paper = config_for("pixelcnn++", "paper")
    assert (paper.hidden, paper.res_per_stage, paper.num_stages, paper.num_logistics,
            paper.dropout) == (160, 5, 3, 10, 0.5)
    default = config_for("pixelcnn++")
    assert (default.res_per_stage, default.num_stages, default.num_logistics) == (1, 3, 5)
    model = unsup.create("pixelcnn++", DataSpec((3, 8, 8), 256))
    assert model.out.out_channels == 5 * (1 + 3 + 3 + 3)  # pi, mu, log s, coefficients
    assert model.log_prob(torch.randint(256, (2, 3, 8, 8))).shape == (2,)


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("pixelcnn++", DataSpec((1, 4, 4), None))
    with pytest.raises(ConfigError, match="image"):
        unsup.create("pixelcnn++", DataSpec((16,), 2, None, "sequence"))
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("pixelcnn++", DataSpec((1, 4, 4), 2), conditional=True)
    for bad in ({"hidden": 0}, {"num_stages": 0}, {"num_logistics": 0}, {"res_per_stage": 0}):
        with pytest.raises(ConfigError, match=">= 1"):
            _model(**bad)
    with pytest.raises(ConfigError, match="dropout"):
        _model(dropout=1.0)
    with pytest.raises(ConfigError, match="no option"):
        _model(channel_dependence="autoregressive")
    model = _model()
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((1, 1, 4, 4), 4))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(1, temperature=-1)
