"""NADE: autoregressive dependence in the ordering, the vectorised likelihood against a per-position
reference, exact normalisation, cached == naive sampling, training, errors."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from model_checks import assert_training_reduces_loss
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for


def _nade(shape=(5,), levels=2, classes=None, **options):
    options.setdefault("hidden", 16)
    kind = "vector" if len(shape) == 1 else "image"
    return unsup.create("nade", DataSpec(shape, levels, classes, kind), **options)


def _all_points(shape, levels):
    n = math.prod(shape)
    return torch.tensor(list(itertools.product(range(levels), repeat=n))).view(-1, *shape)


@pytest.mark.parametrize("options", [{}, {"ordering": "random"}, {"activation": "relu"}])
def test_binary_conditionals_depend_only_on_earlier_inputs_by_gradient(options):
    """Binary NADE reads x_d as a number, so its logits are differentiable in the inputs."""
    torch.manual_seed(0)
    model = _nade((6,), 2, **options).double()
    with torch.no_grad():
        model.c.normal_()  # c = 0 would leave ReLU units at their kink
    seq = torch.randint(2, (1, 6)).double().requires_grad_()
    z = model.logits(seq)[0, :, 0]  # (T,): Bernoulli logit of each position
    for t in range(6):
        (g,) = torch.autograd.grad(z[t], seq, retain_graph=True)
        assert torch.all(g[0, t:] == 0), t
        if t > 0:
            assert torch.all(g[0, :t] != 0), t


@pytest.mark.parametrize("levels,options", [(2, {}), (4, {}), (3, {"ordering": "random"})])
def test_changing_an_element_changes_only_later_conditionals(levels, options):
    torch.manual_seed(0)
    model = _nade((1, 2, 3), levels, **options)
    x = torch.randint(levels, (1, 1, 2, 3))
    order = model.order.tolist()
    base = model.logits(model.to_sequence(x))[0]  # (T, L)
    for s, d in enumerate(order):
        y = x.clone().view(-1)
        y[d] = (y[d] + 1) % levels
        out = model.logits(model.to_sequence(y.view(1, 1, 2, 3)))[0]
        assert torch.equal(out[:s + 1], base[:s + 1])  # positions up to s: bitwise the same
        if s < 5:
            assert not torch.allclose(out[s + 1:], base[s + 1:])


@pytest.mark.parametrize("levels,options", [
    (2, {}), (5, {}), (3, {"ordering": "random", "activation": "relu"}),
])
def test_vectorised_logits_match_a_per_position_reference(levels, options):
    torch.manual_seed(0)
    model = _nade((7,), levels, **options)
    x = torch.randint(levels, (4, 7))
    seq = model.to_sequence(x)
    got = model.logits(seq)
    act = torch.sigmoid if model.config.activation == "sigmoid" else F.relu
    a = model.c.expand(4, -1)
    for t, d in enumerate(model.order.tolist()):
        z = act(a) @ model.V[d].T + model.b[d]  # (4, 1 or L)
        assert torch.allclose(got[:, t], z, atol=1e-5)
        e = seq[:, t:t + 1].float() if levels == 2 else F.one_hot(seq[:, t], levels).float()
        a = a + e @ model.W[d]  # W[:, d] e(x_d)
    assert torch.equal(model.from_sequence(seq), x)


@pytest.mark.parametrize("shape,levels,options", [
    ((6,), 2, {}),
    ((1, 2, 2), 4, {}),
    ((1, 2, 2), 4, {"ordering": "random", "order_seed": 3, "activation": "relu"}),
    ((3,), 5, {"hidden": 1}),
])
def test_probabilities_of_all_points_sum_to_one(shape, levels, options):
    torch.manual_seed(0)
    model = _nade(shape, levels, **options)
    lp = model.log_prob(_all_points(shape, levels))
    assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("levels,options", [
    (2, {}), (4, {"ordering": "random"}), (3, {"activation": "relu"}),
])
def test_cached_and_naive_samplers_draw_the_same_samples(levels, options):
    torch.manual_seed(0)
    model = _nade((2, 4, 4), levels, hidden=32, **options)
    torch.manual_seed(1)
    fast = model.sample(6, temperature=0.9)
    torch.manual_seed(1)
    naive = model.sample(6, temperature=0.9, fast=False)
    assert fast.shape == (6, 2, 4, 4) and torch.equal(fast, naive)
    assert torch.equal(model.sample(2, temperature=0), model.sample(2, temperature=0, fast=False))


def test_samples_follow_the_model_distribution():
    torch.manual_seed(0)
    model = _nade((2,), 3, ordering="random", order_seed=1)
    assert model.order.tolist() == [1, 0]  # x_1 first: exercises the ordering in sampling
    with torch.no_grad():  # sharpen the untrained model so the test has power
        model.V.mul_(20)
        model.b.normal_()
    grid = _all_points((2,), 3)  # index = 3 x0 + x1
    probs = model.log_prob(grid).exp().detach().double()
    n = 3000
    for fast in (True, False):
        x = model.sample(n, fast=fast)
        counts = torch.bincount(x[:, 0] * 3 + x[:, 1], minlength=9).numpy()
        assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _nade((1, 2, 2), 2, classes=3, conditional=True)
    x = _all_points((1, 2, 2), 2)
    for c in range(3):
        lp = model.log_prob(x, torch.full((16,), c))
        assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(model.log_prob(x, torch.zeros(16, dtype=torch.long)),
                              model.log_prob(x, torch.ones(16, dtype=torch.long)))
    torch.manual_seed(2)
    a = model.sample(4, y=torch.tensor([2, 0, 1, 1]))
    torch.manual_seed(2)
    assert torch.equal(a, model.sample(4, y=torch.tensor([2, 0, 1, 1]), fast=False))
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)


@pytest.mark.parametrize("represent,options", [("binary", {}), ("native", {"ordering": "random"})])
def test_training_steps_reduce_loss_on_digits(represent, options):
    torch.manual_seed(0)
    train = unsup.data.load("digits", "train", represent)
    batch = train.batch(torch.arange(32))
    model = unsup.create("nade", train, hidden=32, **options)
    assert_training_reduces_loss(model, batch, lr=1e-2, steps=8)


def test_presets_defaults_and_checkpoint_keeps_the_ordering():
    paper = config_for("nade", "paper")
    assert (paper.hidden, paper.activation, paper.ordering) == (500, "sigmoid", "natural")
    default = config_for("nade")
    assert default.hidden == 500
    model = _nade((1, 3, 3), 2, hidden=500)
    assert model.W.shape == (9, 1, 500) and model.V.shape == (9, 1, 500)
    assert model.supports_fast_sampling
    a = _nade((8,), 3, ordering="random", order_seed=5)
    b = _nade((8,), 3, ordering="random", order_seed=6)
    assert sorted(a.order.tolist()) == list(range(8)) and not torch.equal(a.order, b.order)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.order, b.order)


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("nade", DataSpec((4,), None, None, "vector"))
    with pytest.raises(ConfigError, match="labelled"):
        _nade(conditional=True)
    with pytest.raises(ConfigError, match="activation"):
        _nade(activation="tanh")
    with pytest.raises(ConfigError, match="ordering"):
        _nade(ordering="reverse")
    with pytest.raises(ConfigError, match="hidden"):
        _nade(hidden=0)
    with pytest.raises(ConfigError, match="output logits"):
        _nade((3, 64, 64), 256)
    model = _nade()
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(1, 5))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((1, 5), 2))
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(1, 4, dtype=torch.long))
