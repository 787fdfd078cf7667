"""Discretized logistic mixture model: a normalised density over levels, trainable, sampleable."""

import math

import pytest
import torch
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for


def _spec(levels):
    return DataSpec((1,), levels, None, "vector")


def _random_model(levels, k=3, seed=0):
    torch.manual_seed(seed)
    model = unsup.create("logistic-mixture", _spec(levels), num_components=k)
    with torch.no_grad():
        model.logit_pi.normal_()
        model.mu.uniform_(-1, 1)
        model.log_s.uniform_(-4, 0)
    return model


@pytest.mark.parametrize("levels", [2, 3, 20, 256])
def test_probabilities_over_all_levels_sum_to_one(levels):
    model = _random_model(levels)
    x = torch.arange(levels)[:, None]
    assert torch.isclose(model.log_prob(x).exp().sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(model.log_prob(x), model.log_prob_table())


def test_edges_match_direct_sigmoid_computation():
    levels = 10
    model = _random_model(levels, k=2)
    pi = torch.softmax(model.logit_pi.double(), 0)
    mu, s = model.mu.double(), model.log_s.double().exp()
    h = 1 / (levels - 1)
    p0 = (pi * torch.sigmoid((-1 + h - mu) / s)).sum()
    p_last = (pi * (1 - torch.sigmoid((1 - h - mu) / s))).sum()
    v = 2 * 4 / (levels - 1) - 1
    p4 = (pi * (torch.sigmoid((v + h - mu) / s) - torch.sigmoid((v - h - mu) / s))).sum()
    got = model.log_prob(torch.tensor([[0], [levels - 1], [4]])).exp().double()
    assert torch.allclose(got, torch.stack([p0, p_last, p4]), atol=1e-6)


def test_samples_follow_the_level_probabilities_and_temperature():
    model = _random_model(8)
    torch.manual_seed(1)
    x = model.sample(20000)
    assert x.shape == (20000, 1) and x.dtype == torch.long and x.min() >= 0 and x.max() < 8
    probs = model.log_prob_table().exp().detach().double()
    counts = torch.bincount(x[:, 0], minlength=8).numpy()
    assert stats.chisquare(counts, (probs / probs.sum() * 20000).numpy()).pvalue > 1e-3
    mode = int(probs.argmax())
    assert torch.all(model.sample(50, temperature=1e-3) == mode)
    assert torch.all(model.sample(50, temperature=0) == mode)


def test_training_fits_a_bimodal_distribution():
    torch.manual_seed(0)
    levels = 20
    x = torch.cat([torch.randint(2, 5, (300,)), torch.randint(14, 17, (300,))])[:, None]
    model = unsup.create("logistic-mixture", _spec(levels))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = model.loss({"x": x})["loss"].item()
    for _ in range(200):
        opt.zero_grad()
        loss = model.loss({"x": x})["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    # Six equally likely levels: the optimum is log 6 nats; a uniform guess is log 20.
    assert loss.item() < first
    assert loss.item() < math.log(6) + 0.1
    out = model.loss({"x": x})
    assert torch.isclose(out["bpd"], -model.log_prob(x).mean() / math.log(2))


def test_presets_and_defaults():
    assert config_for("logistic-mixture", "course").num_components == 4
    assert config_for("logistic-mixture").num_components == 4


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("logistic-mixture", DataSpec((1,), None, None, "vector"))
    with pytest.raises(ConfigError, match="shape"):
        unsup.create("logistic-mixture", DataSpec((2,), 5, None, "vector"))
    with pytest.raises(ConfigError, match="num_components"):
        unsup.create("logistic-mixture", _spec(5), num_components=0)
    model = unsup.create("logistic-mixture", _spec(5))
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.tensor([[5]]))
    with pytest.raises(ConfigError, match="class-conditional"):
        model.sample(1, y=torch.tensor([0]))
