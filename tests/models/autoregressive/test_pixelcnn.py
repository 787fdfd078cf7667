"""PixelCNN: raster-order dependence by Jacobian, exact normalisation, sampling, conditioning."""

import itertools
import math

import pytest
import torch
from model_checks import all_images, assert_training_reduces_loss
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for
from unsup.models.base import nats_to_bits_per_dim

TINY = {"hidden": 8, "num_layers": 2, "kernel_size": 3, "first_kernel_size": 3}


def _pixelcnn(shape=(1, 4, 4), levels=2, classes=None, **options):
    return unsup.create("pixelcnn", DataSpec(shape, levels, classes), **{**TINY, **options})


CASES = [
    ((1, 5, 5), 2, {}),
    ((1, 5, 5), 4, {}),
    ((3, 4, 4), 4, {}),
    ((3, 4, 4), 3, {"channel_dependence": "autoregressive", "hidden": 30}),
    ((2, 4, 4), 2, {"residual": True, "first_kernel_size": 5}),
    ((3, 4, 4), 3, {"residual": True, "hidden": 12, "channel_dependence": "autoregressive"}),
]


@pytest.mark.parametrize("shape,levels,options", CASES)
def test_logits_depend_only_on_earlier_pixels(shape, levels, options):
    torch.manual_seed(0)
    model = _pixelcnn(shape, levels, **options)
    c_n, h_n, w_n = shape
    inputs = model.scale(torch.randint(levels, (1, *shape)))
    proj = torch.randn(levels)  # a random mix of the levels' logits

    def f(inp):
        return (model.logits(inp) * proj).sum(-1)  # (1, C, H, W)

    jac = torch.autograd.functional.jacobian(f, inputs)[0, :, :, :, 0]  # (C,H,W, C,H,W)
    sequential = options.get("channel_dependence") == "autoregressive"
    for c, i, j in itertools.product(range(c_n), range(h_n), range(w_n)):
        dep = jac[c, i, j]  # (C, H, W): d logit(c, i, j) / d input
        for c2, p, q in itertools.product(range(c_n), range(h_n), range(w_n)):
            visible = (p, q) < (i, j) or ((p, q) == (i, j) and sequential and c2 < c)
            if not visible:
                assert dep[c2, p, q] == 0, (c, i, j, c2, p, q)
        # Not vacuous: the left and upper neighbours matter, and earlier colours in sequence.
        if j > 0:
            assert dep[:, i, j - 1].abs().sum() > 0
        if i > 0:
            assert dep[:, i - 1, j].abs().sum() > 0
        if sequential and c > 0:
            assert dep[:c, i, j].abs().sum() > 0


@pytest.mark.parametrize("shape,levels,options", [
    ((1, 2, 2), 2, {}),
    ((1, 2, 2), 3, {"residual": True}),
    ((2, 2, 2), 2, {}),
    ((2, 2, 2), 2, {"channel_dependence": "autoregressive"}),
])
def test_probabilities_of_all_images_sum_to_one(shape, levels, options):
    torch.manual_seed(0)
    model = _pixelcnn(shape, levels, **options).eval()
    x = all_images(shape, levels)
    assert torch.isclose(model.log_prob(x).exp().sum(), torch.tensor(1.0), atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"channel_dependence": "autoregressive"}])
def test_samples_follow_the_model_distribution(options):
    torch.manual_seed(0)
    shape = (2, 1, 2) if options else (1, 2, 2)
    model = _pixelcnn(shape, 2, **options).eval()
    with torch.no_grad():  # sharpen the untrained model so the test has power
        model.output_conv.weight.mul_(4)
        model.output_conv.bias.normal_()
    n = 4000
    x = model.sample(n)
    assert x.shape == (n, *shape) and x.dtype == torch.long
    images = all_images(shape, 2)
    probs = model.log_prob(images).exp().detach().double()
    index = (x.view(n, -1) * torch.tensor([8, 4, 2, 1])).sum(1)  # images are in binary order
    counts = torch.bincount(index, minlength=16).numpy()
    assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


def test_temperature_zero_is_greedy_decoding():
    torch.manual_seed(0)
    model = _pixelcnn((1, 3, 3), 4).eval()
    greedy = torch.zeros(1, 1, 3, 3, dtype=torch.long)
    for i, j in itertools.product(range(3), range(3)):
        greedy[0, 0, i, j] = model.logits(model.scale(greedy))[0, 0, i, j].argmax()
    assert torch.equal(model.sample(3, temperature=0), greedy.expand(3, 1, 3, 3))
    assert torch.equal(model.sample(3, temperature=1e-4), greedy.expand(3, 1, 3, 3))
    x = model.sample(20, temperature=2.0)
    assert x.min() >= 0 and x.max() < 4


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _pixelcnn((1, 2, 2), 2, classes=3, conditional=True).eval()
    x = all_images((1, 2, 2), 2)
    for c in range(3):
        y = torch.full((len(x),), c)
        assert torch.isclose(model.log_prob(x, y).exp().sum(), torch.tensor(1.0), atol=1e-5)
    lp0 = model.log_prob(x, torch.zeros(len(x), dtype=torch.long))
    lp1 = model.log_prob(x, torch.ones(len(x), dtype=torch.long))
    assert not torch.allclose(lp0, lp1)
    assert model.sample(4, y=torch.tensor([2, 1, 0, 2])).shape == (4, 1, 2, 2)
    assert model.sample(5).shape == (5, 1, 2, 2)  # default labels: arange(n) % classes
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)
    with pytest.raises(ConfigError, match="labels in"):
        model.sample(1, y=torch.tensor([3]))
    with pytest.raises(ConfigError, match="not class-conditional"):
        _pixelcnn().sample(1, y=torch.tensor([0]))


def test_bits_per_dim():
    model = _pixelcnn((2, 3, 3), 4).eval()
    x = torch.randint(4, (5, 2, 3, 3))
    out = model.loss({"x": x})
    nll = -model.log_prob(x).mean()
    assert torch.isclose(out["bpd"], nll / (18 * math.log(2)))
    assert torch.isclose(out["bpd"], nats_to_bits_per_dim(nll, 18))


@pytest.mark.parametrize("options", [{}, {"residual": True}, {"conditional": True}])
def test_training_steps_reduce_loss_on_digits(options):
    torch.manual_seed(0)
    train = unsup.data.load("digits", "train", "binary")
    batch = train.batch(torch.arange(32))
    model = unsup.create("pixelcnn", train, hidden=16, num_layers=2, **options)
    assert_training_reduces_loss(model, batch, lr=3e-3, steps=8)


def test_presets_and_defaults():
    course = config_for("pixelcnn", "course")
    assert (course.first_kernel_size, course.kernel_size, course.num_layers, course.hidden) == (7, 3, 5, 64)
    paper = config_for("pixelcnn", "paper")
    assert paper.residual and paper.num_layers == 15 and paper.kernel_size == 3
    spec = DataSpec((3, 4, 4), 4)
    model = unsup.create("pixelcnn", spec, preset="paper")
    assert model.log_prob(torch.randint(4, (2, 3, 4, 4))).shape == (2,)
    default = config_for("pixelcnn")
    assert (default.hidden, default.num_layers, default.kernel_size) == (64, 5, 3)


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("pixelcnn", DataSpec((1, 4, 4), None))
    with pytest.raises(ConfigError, match="image"):
        unsup.create("pixelcnn", DataSpec((16,), 2, None, "sequence"))
    with pytest.raises(ConfigError, match="at most 256"):
        unsup.create("pixelcnn", DataSpec((1, 4, 4), 1024))
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("pixelcnn", DataSpec((1, 4, 4), 2), conditional=True)
    with pytest.raises(ConfigError, match="odd"):
        _pixelcnn(kernel_size=4)
    with pytest.raises(ConfigError, match="channel_dependence"):
        _pixelcnn(channel_dependence="rgb")
    with pytest.raises(ConfigError, match="hidden"):
        _pixelcnn((3, 4, 4), 2, hidden=2, channel_dependence="autoregressive")
    model = _pixelcnn()
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((1, 1, 4, 4), 2))
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(1, 4, 4, dtype=torch.long))


def test_vectors_are_one_row_images():
    """The 2-D toy densities: x2 may depend on x1, never the reverse, and p sums to 1."""
    import itertools

    spec = DataSpec((2,), 5, None, "vector")
    torch.manual_seed(0)
    model = unsup.create("pixelcnn", spec, hidden=8, num_layers=1)
    inputs = torch.randn(1, 1, 1, 2, requires_grad=True)
    logits = model.logits(inputs)  # (1, 1, 1, 2, L)
    (g0,) = torch.autograd.grad(logits[0, 0, 0, 0].sum(), inputs, retain_graph=True)
    (g1,) = torch.autograd.grad(logits[0, 0, 0, 1].sum(), inputs)
    assert torch.all(g0 == 0) and g1[0, 0, 0, 1] == 0 and g1[0, 0, 0, 0] != 0
    grid = torch.tensor(list(itertools.product(range(5), repeat=2)))
    assert torch.logsumexp(model.log_prob(grid), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    x = model.sample(7)
    assert x.shape == (7, 2) and x.min() >= 0 and x.max() < 5
