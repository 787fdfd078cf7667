"""MADE: autoregressive masks, exact normalisation (single masks and ensembles), sampling."""

import itertools
import math

import pytest
import torch
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for
from unsup.models.base import nats_to_bits_per_dim


def _made(shape=(5,), levels=3, classes=None, **options):
    options.setdefault("hidden", [16, 16])
    spec = DataSpec(shape, levels, classes, "vector" if len(shape) == 1 else "image")
    return unsup.create("made", spec, **options)


def _all_points(d, levels):
    return torch.tensor(list(itertools.product(range(levels), repeat=d)))


CONFIGS = [
    {"ordering": "natural"},
    {"ordering": "random"},
    {"ordering": "random", "num_masks": 3},
    {"ordering": "natural", "num_masks": 3},
    {"ordering": "random", "hidden": []},
    {"ordering": "random", "hidden": [32], "input_encoding": "scaled"},
]


@pytest.mark.parametrize("options", CONFIGS)
def test_mask_product_is_strictly_triangular_in_the_ordering(options):
    model = _made(**options)
    for k in range(model.config.num_masks):
        product = None
        for mask in model.masks(k):
            product = mask if product is None else mask @ product  # (out, in) paths
        # Collapse units to dimensions: (D, L) outputs x (D, levels or 1) inputs.
        reach = product.view(5, 3, 5, -1).sum(dim=(1, 3))  # (D_out, D_in) path counts
        pos = model.orderings[k] - 1  # 0-based position of each dimension
        allowed = pos[None, :] < pos[:, None]  # input earlier than output
        assert torch.all(reach[~allowed] == 0)
        assert reach[allowed].sum() > 0
        # Rows/columns permuted into the ordering: strictly lower triangular.
        perm = torch.argsort(pos)
        assert torch.equal(torch.tril(reach[perm][:, perm], -1), reach[perm][:, perm])


@pytest.mark.parametrize("levels", [2, 3, 5])
@pytest.mark.parametrize("options", CONFIGS)
def test_logits_depend_only_on_earlier_dimensions(levels, options):
    torch.manual_seed(0)
    model = _made(levels=levels, **options)
    x = torch.randint(levels, (1, 5))
    h = model.encode(x)
    for k in range(model.config.num_masks):
        jac = torch.autograd.functional.jacobian(
            lambda f, k=k: model.logits_from_features(f, None, k), h)  # (1, D, L, 1, F)
        per_in = jac[0, :, :, 0].abs().sum(1).view(5, 5, -1).sum(-1)  # (D_out, D_in)
        pos = model.orderings[k] - 1
        later_or_same = pos[None, :] >= pos[:, None]
        assert torch.all(per_in[later_or_same] == 0)
        assert per_in[~later_or_same].sum() > 0  # not vacuous: earlier dimensions matter
        last = int(torch.argmax(pos))
        assert per_in[last].sum() > 0


@pytest.mark.parametrize("options", [{}, {"ordering": "random", "num_masks": 4},
                                     {"hidden": []}, {"input_encoding": "scaled"}])
def test_probabilities_of_all_inputs_sum_to_one(options):
    model = _made(shape=(3,), levels=3, **options).eval()
    x = _all_points(3, 3)
    assert torch.isclose(model.log_prob(x).exp().sum(), torch.tensor(1.0), atol=1e-5)


def test_ensemble_is_log_mean_exp_of_members_and_images_are_flattened():
    model = _made(shape=(1, 2, 2), levels=2, ordering="random", num_masks=3).eval()
    x = _all_points(4, 2).view(-1, 1, 2, 2)
    members = torch.stack([model.log_prob_mask(x, None, k) for k in range(3)])
    assert torch.allclose(model.log_prob(x), members.exp().mean(0).log(), atol=1e-6)
    assert torch.isclose(model.log_prob(x).exp().sum(), torch.tensor(1.0), atol=1e-5)
    # Training draws one member per step.
    model.train()
    torch.manual_seed(3)
    loss = model.loss({"x": x})["loss"]
    member_losses = -members.mean(1) / 4
    assert torch.isclose(member_losses, loss, atol=1e-6).any()


@pytest.mark.parametrize("options", [{"ordering": "random"},
                                     {"ordering": "random", "num_masks": 3}])
def test_samples_follow_the_model_distribution(options):
    torch.manual_seed(0)
    model = _made(shape=(2,), levels=3, **options).eval()
    with torch.no_grad():  # sharpen the untrained model so the test has power
        for p in model.parameters():
            p.mul_(3)
    n = 6000
    x = model.sample(n)
    assert x.shape == (n, 2) and x.min() >= 0 and x.max() < 3
    probs = model.log_prob(_all_points(2, 3)).exp().detach().double()
    counts = torch.bincount(x[:, 0] * 3 + x[:, 1], minlength=9).numpy()
    assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


def test_temperature_zero_is_greedy_decoding():
    torch.manual_seed(0)
    model = _made(shape=(4,), levels=4, ordering="random").eval()
    greedy = torch.zeros(1, 4, dtype=torch.long)
    for d in torch.argsort(model.orderings[0]).tolist():
        logits = model.logits_from_features(model.encode(greedy), None, 0)
        greedy[0, d] = logits[0, d].argmax()
    assert torch.equal(model.sample(5, temperature=0), greedy.expand(5, 4))
    assert torch.equal(model.sample(5, temperature=1e-4), greedy.expand(5, 4))


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _made(shape=(3,), levels=3, classes=4, conditional=True).eval()
    x = _all_points(3, 3)
    for c in range(4):
        y = torch.full((len(x),), c)
        assert torch.isclose(model.log_prob(x, y).exp().sum(), torch.tensor(1.0), atol=1e-5)
    y0, y1 = torch.zeros(len(x), dtype=torch.long), torch.ones(len(x), dtype=torch.long)
    assert not torch.allclose(model.log_prob(x, y0), model.log_prob(x, y1))
    s = model.sample(6, y=torch.tensor([0, 1, 2, 3, 0, 1]))
    assert s.shape == (6, 3)
    assert model.sample(8).shape == (8, 3)  # default labels: arange(n) % classes
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)
    with pytest.raises(ConfigError, match="labels in"):
        model.sample(2, y=torch.tensor([0, 4]))
    with pytest.raises(ConfigError, match="not class-conditional"):
        _made().sample(2, y=torch.tensor([0, 1]))


@pytest.mark.parametrize("num_masks", [1, 3])
def test_masks_are_restored_from_a_checkpoint(num_masks):
    a = _made(ordering="random", num_masks=num_masks, mask_seed=1).eval()
    b = _made(ordering="random", num_masks=num_masks, mask_seed=2).eval()
    assert not torch.equal(a.orderings, b.orderings)
    state = a.state_dict()
    assert "orderings" in state and not any(k.endswith(".mask") for k in state)
    b.load_state_dict(state)
    x = torch.randint(3, (8, 5))
    assert torch.equal(a.orderings, b.orderings)
    assert torch.allclose(a.log_prob(x), b.log_prob(x))
    # The same seed always builds the same masks.
    c = _made(ordering="random", num_masks=num_masks, mask_seed=1)
    assert torch.equal(c.orderings, a.orderings)


def test_bits_per_dim():
    model = _made(shape=(1, 2, 3), levels=2).eval()
    x = torch.randint(2, (7, 1, 2, 3))
    out = model.loss({"x": x})
    nll = -model.log_prob(x).mean()
    assert torch.isclose(out["bpd"], nll / (6 * math.log(2)))
    assert torch.isclose(out["bpd"], nats_to_bits_per_dim(nll, 6))


@pytest.mark.parametrize("options", [{}, {"num_masks": 2, "ordering": "random"},
                                     {"conditional": True}])
def test_training_steps_reduce_loss(options):
    torch.manual_seed(0)
    model = _made(shape=(1, 4, 4), levels=2, classes=10, **options)
    batch = {"x": torch.randint(2, (16, 1, 4, 4)), "y": torch.randint(10, (16,))}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    first = model.loss(batch)["loss"].item()
    model.train()
    for _ in range(10):
        opt.zero_grad()
        loss = model.loss(batch)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    model.eval()
    assert model.loss(batch)["loss"].item() < first


def test_presets_and_defaults():
    assert config_for("made").hidden is None  # resolved by the data:
    binary = unsup.create("made", DataSpec((1, 28, 28), 2, None, "image"))
    assert binary.config.hidden == [8000] and binary.onehot is False and binary.num_logits == 1
    assert binary.config.ordering == "random"
    levels = unsup.create("made", DataSpec((1, 8, 8), 17, None, "image"))
    assert levels.config.hidden == [512, 512] and levels.onehot is True and levels.num_logits == 17
    assert levels.config.ordering == "natural"
    large = unsup.create("made", DataSpec((1, 65, 65), 2, None, "image"), hidden=None, ordering="natural")
    assert large.config.hidden == [512, 512] and large.config.ordering == "natural"
    assert config_for("made", "course").num_masks == 1
    paper = config_for("made", "paper")
    assert paper.hidden == [8000, 8000] and paper.num_masks == 32
    train = unsup.data.load("digits", "train", "binary")
    assert torch.isfinite(unsup.create("made", train).loss(train.batch(torch.arange(4)))["loss"])


def test_fvsbn_preset_is_a_logistic_regression_per_pixel_on_the_pixels_before_it():
    spec = DataSpec((1, 3, 3), 2, None, "image")
    fvsbn = unsup.create("made", spec, **vars(config_for("made", "fvsbn")))
    assert len(fvsbn.layers) == 1 and fvsbn.num_logits == 1
    torch.manual_seed(0)
    with torch.no_grad():
        fvsbn.layers[0].weight.normal_()
        fvsbn.layers[0].bias.normal_()
    layer = fvsbn.layers[0]
    w = layer.weight * layer.mask  # (D, D): what the masked layer uses
    assert torch.equal(layer.mask, torch.ones(9, 9).tril(-1))  # x_d sees exactly x_1 .. x_{d-1}
    x = torch.randint(0, 2, (32, 1, 3, 3))
    flat = x.reshape(32, 9).float()
    expected = torch.zeros(32)
    for d in range(9):  # the logistic regression of pixel d, written out
        p1 = torch.sigmoid(layer.bias[d] + (2 * flat[:, :d] - 1) @ w[d, :d])
        expected += torch.where(flat[:, d] == 1, p1, 1 - p1).log()
    assert torch.allclose(fvsbn.log_prob(x), expected, atol=1e-5)
    assert sum(int(m.sum()) for m in fvsbn.masks(0)) == 9 * 8 // 2


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("made", DataSpec((4,), None, None, "vector"))
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("made", DataSpec((4,), 2, None, "vector"), conditional=True)
    with pytest.raises(ConfigError, match="levels"):
        unsup.create("made", DataSpec((1, 128, 128), 256))
    with pytest.raises(ConfigError, match="ordering"):
        _made(ordering="reverse")
    with pytest.raises(ConfigError, match="input_encoding"):
        _made(input_encoding="binary")
    with pytest.raises(ConfigError, match="list of positive"):
        _made(hidden=64)
    with pytest.raises(ConfigError, match="num_masks"):
        _made(num_masks=0)
    with pytest.raises(ConfigError, match="no option"):
        _made(width=3)
    model = _made()
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((2, 5), 3))
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(2, 4, dtype=torch.long))
