"""Gated PixelCNN: the receptive field (no blind spot) by gradients, normalisation, cached
sampling equal to naive sampling, conditioning, training, errors."""

import itertools

import pytest
import torch
from model_checks import all_images, assert_training_reduces_loss
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for

TINY = {"hidden": 8, "num_layers": 3, "kernel_size": 3, "first_kernel_size": 3}


def _gated(shape=(1, 4, 4), levels=2, classes=None, **options):
    return unsup.create("gated-pixelcnn", DataSpec(shape, levels, classes), **{**TINY, **options})


def _visible(model, i, j):
    """The receptive field the architecture promises for the output at (i, j): the rectangle of
    rows above within reach R, and R pixels to the left in the row."""
    c = model.config
    r = c.first_kernel_size // 2 + (c.num_layers - 1) * (c.kernel_size // 2)
    out = torch.zeros(model.height, model.width, dtype=torch.bool)
    out[max(i - 1 - r, 0):i, max(j - r, 0):j + r + 1] = True
    out[i, max(j - r, 0):j] = True
    return out


def _input_gradient(model, i, j, c=0, y=None):
    """|d logits(c, i, j) / d inputs| (summed over levels), shape (C, H, W), in float64 so that
    no real dependence underflows to zero."""
    model = model.double()
    inputs = (torch.rand(1, *model.image_shape, dtype=torch.float64) * 2 - 1).requires_grad_()
    proj = torch.randn(model.levels, dtype=torch.float64)  # a random mix of the levels' logits
    (grad,) = torch.autograd.grad((model.logits(inputs, y)[0, c, i, j] * proj).sum(), inputs)
    return grad[0].abs()


@pytest.mark.parametrize("options", [
    {},
    {"kernel_size": 5, "first_kernel_size": 3, "num_layers": 2},
    {"first_kernel_size": 5, "skip": True},
    {"num_layers": 1, "first_kernel_size": 7},
])
def test_every_earlier_pixel_in_reach_is_seen_and_no_later_one(options):
    torch.manual_seed(0)
    model = _gated((2, 9, 9), 3, hidden=16, **options)  # wide enough that no ReLU is dead
    for i, j in itertools.product(range(9), range(9)):
        seen = _input_gradient(model, i, j).sum(0) > 0  # (H, W)
        assert torch.equal(seen, _visible(model, i, j)), (i, j)


def test_colour_channels_in_sequence():
    torch.manual_seed(0)
    model = _gated((3, 5, 5), 3, hidden=48, channel_dependence="autoregressive")
    for c, i, j in itertools.product(range(3), range(5), range(5)):
        grad = _input_gradient(model, i, j, c)  # (C, H, W)
        assert torch.all(grad[:c, i, j] > 0) and torch.all(grad[c:, i, j] == 0), (c, i, j)
        seen = grad.sum(0) > 0
        seen[i, j] = False
        assert torch.equal(seen, _visible(model, i, j)), (c, i, j)


def test_blind_spot_of_pixelcnn_is_gone():
    """Four stacked 3x3 masked convolutions reach 4 rows up and 4 columns either side but never
    see the wedge up and to the right (pixel (i - a, j + b) with b > a); the gated stacks see
    every earlier pixel of their rectangle."""
    torch.manual_seed(0)
    spec = DataSpec((1, 11, 11), 2)
    i, j, r = 8, 5, 4
    plain = unsup.create("pixelcnn", spec, hidden=16, num_layers=3, kernel_size=3,
                         first_kernel_size=3)
    seen = _input_gradient(plain, i, j)[0] > 0
    blind = {(p, q) for p in range(i - r, i + 1) for q in range(j - r, j + r + 1)
             if (p, q) < (i, j) and not seen[p, q]}
    wedge = {(i - a, j + b) for a in range(1, r + 1) for b in range(a + 1, r + 1)}
    assert blind == wedge and (i - 1, j + 2) in blind
    assert not seen[i:].flatten()[j:].any()  # and nothing later

    gated = unsup.create("gated-pixelcnn", spec, hidden=8, num_layers=3, kernel_size=3,
                         first_kernel_size=3)
    seen = _input_gradient(gated, i, j)[0] > 0
    assert torch.equal(seen, _visible(gated, i, j))
    assert all(seen[p, q] for p, q in wedge if q - j <= 3)  # the wedge within reach


@pytest.mark.parametrize("shape,levels,options", [
    ((1, 2, 2), 2, {}),
    ((1, 2, 3), 3, {"skip": True}),
    ((2, 2, 2), 2, {}),
    ((2, 2, 2), 2, {"channel_dependence": "autoregressive"}),
])
def test_probabilities_of_all_images_sum_to_one(shape, levels, options):
    torch.manual_seed(0)
    model = _gated(shape, levels, **options).eval()
    x = all_images(shape, levels)
    assert torch.isclose(model.log_prob(x).exp().sum(), torch.tensor(1.0), atol=1e-5)


def test_samples_follow_the_model_distribution():
    torch.manual_seed(0)
    model = _gated((1, 2, 2), 2).eval()
    with torch.no_grad():  # sharpen the untrained model so the test has power
        model.output_conv.weight.mul_(4)
        model.output_conv.bias.normal_()
    n = 4000
    x = model.sample(n)
    assert x.shape == (n, 1, 2, 2) and x.dtype == torch.long
    probs = model.log_prob(all_images((1, 2, 2), 2)).exp().detach().double()
    index = (x.view(n, -1) * torch.tensor([8, 4, 2, 1])).sum(1)  # images are in binary order
    counts = torch.bincount(index, minlength=16).numpy()
    assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


@pytest.mark.parametrize("shape,levels,classes,options", [
    ((1, 7, 6), 2, None, {}),
    ((1, 5, 5), 4, None, {"skip": True, "kernel_size": 5}),
    ((3, 4, 5), 3, None, {"hidden": 12, "channel_dependence": "autoregressive"}),
    ((1, 6, 5), 2, 3, {"conditional": True}),
    ((2, 4, 4), 5, 4, {"conditional": True, "num_layers": 1}),
])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_cached_sampling_equals_naive_sampling(shape, levels, classes, options, temperature):
    torch.manual_seed(0)
    model = _gated(shape, levels, classes, **options).eval()
    y = None if classes is None else torch.tensor([2, 0, 1, 2, 1, 0])
    torch.manual_seed(7)
    naive = model.sample(6, y=y, temperature=temperature, fast=False)
    torch.manual_seed(7)
    fast = model.sample(6, y=y, temperature=temperature)
    assert torch.equal(naive, fast)
    assert naive.min() >= 0 and naive.max() < levels and naive.shape == (6, *shape)


def test_incremental_logits_equal_full_logits():
    torch.manual_seed(0)
    model = _gated((1, 5, 6), 3, classes=3, conditional=True, skip=True).eval()
    x, y = torch.randint(3, (4, 1, 5, 6)), torch.tensor([0, 2, 1, 2])
    inputs = model.scale(x)
    with torch.no_grad():
        full = model.logits(inputs, y)
        step = model.incremental(4, y)
        for i, j in itertools.product(range(5), range(6)):
            assert torch.allclose(step(inputs, i, j), full[:, :, i, j], atol=1e-6)


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _gated((1, 2, 2), 2, classes=3, conditional=True).eval()
    x = all_images((1, 2, 2), 2)
    for c in range(3):
        y = torch.full((len(x),), c)
        assert torch.isclose(model.log_prob(x, y).exp().sum(), torch.tensor(1.0), atol=1e-5)
    lp0 = model.log_prob(x, torch.zeros(len(x), dtype=torch.long))
    lp1 = model.log_prob(x, torch.ones(len(x), dtype=torch.long))
    assert not torch.allclose(lp0, lp1)
    assert model.sample(5).shape == (5, 1, 2, 2)  # default labels: arange(n) % classes
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)
    with pytest.raises(ConfigError, match="labels in"):
        model.sample(1, y=torch.tensor([3]))
    with pytest.raises(ConfigError, match="not class-conditional"):
        _gated().sample(1, y=torch.tensor([0]))


@pytest.mark.parametrize("options", [{}, {"skip": True, "conditional": True}])
def test_training_steps_reduce_loss_on_digits(options):
    torch.manual_seed(0)
    train = unsup.data.load("digits", "train", "binary")
    batch = train.batch(torch.arange(32))
    model = unsup.create("gated-pixelcnn", train, hidden=16, num_layers=2, **options)
    assert_training_reduces_loss(model, batch, lr=3e-3, steps=6)


def test_presets_and_defaults():
    paper = config_for("gated-pixelcnn", "paper")
    assert (paper.num_layers, paper.hidden, paper.kernel_size) == (20, 384, 5)
    assert paper.channel_dependence == "autoregressive"
    model = unsup.create("gated-pixelcnn", DataSpec((3, 4, 4), 256), preset="paper", num_layers=1)
    assert model.log_prob(torch.randint(256, (2, 3, 4, 4))).shape == (2,)
    default = unsup.create("gated-pixelcnn", DataSpec((1, 28, 28), 2))
    assert default.supports_fast_sampling and default.config.num_layers >= 5


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("gated-pixelcnn", DataSpec((1, 4, 4), None))
    with pytest.raises(ConfigError, match="image"):
        unsup.create("gated-pixelcnn", DataSpec((2,), 5, None, "vector"))
    with pytest.raises(ConfigError, match="at most 256"):
        unsup.create("gated-pixelcnn", DataSpec((1, 4, 4), 1024))
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("gated-pixelcnn", DataSpec((1, 4, 4), 2), conditional=True)
    for bad in ({"kernel_size": 4}, {"first_kernel_size": 1}):
        with pytest.raises(ConfigError, match="odd"):
            _gated(**bad)
    with pytest.raises(ConfigError, match="num_layers"):
        _gated(num_layers=0)
    with pytest.raises(ConfigError, match="channel_dependence"):
        _gated(channel_dependence="rgb")
    with pytest.raises(ConfigError, match="hidden"):
        _gated((3, 4, 4), 2, hidden=2, channel_dependence="autoregressive")
    with pytest.raises(ConfigError, match="no option"):
        _gated(residual=True)
    model = _gated()
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((1, 1, 4, 4), 2))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(1, temperature=-1)
