"""Histogram: exact normalisation, the closed-form MLE, and sampling that follows the table."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.autoregressive.histogram import Histogram, histogram_mle
from unsup.models.base import nats_to_bits_per_dim

SPEC1 = DataSpec((1,), 6, None, "vector")
SPEC2 = DataSpec((2,), 4, None, "vector")


def _all_points(spec):
    levels, d = spec.levels, spec.shape[0]
    grid = torch.cartesian_prod(*[torch.arange(levels)] * d)
    return grid.view(-1, d)


def _random_model(spec):
    model = unsup.create("histogram", spec)
    with torch.no_grad():
        model.logits.normal_()
    return model


@pytest.mark.parametrize("spec", [SPEC1, SPEC2])
def test_probabilities_sum_to_one(spec):
    model = _random_model(spec)
    total = model.log_prob(_all_points(spec)).exp().sum()
    assert torch.isclose(total, torch.tensor(1.0), atol=1e-6)
    assert model.log_prob_table().shape == (spec.levels,) * spec.shape[0]


def test_fit_is_counts_over_n_with_optional_smoothing():
    x = torch.tensor([[0, 1], [0, 1], [3, 2], [1, 0]])
    probs = histogram_mle(x, 4)
    expected = torch.zeros(4, 4)
    expected[0, 1], expected[3, 2], expected[1, 0] = 0.5, 0.25, 0.25
    assert torch.allclose(probs, expected)
    smoothed = histogram_mle(x, 4, alpha=1.0)
    assert torch.allclose(smoothed[0, 1], torch.tensor(3 / 20)) and smoothed[2, 2] == 1 / 20
    model = Histogram.fit(SPEC2, x)
    assert torch.allclose(model.log_prob(x).exp(), torch.tensor([0.5, 0.5, 0.25, 0.25]))
    assert model.log_prob(torch.tensor([[2, 2]])).item() == -math.inf


def test_mle_is_a_stationary_point_and_gradient_descent_reaches_it():
    torch.manual_seed(0)
    x = torch.cat([torch.randint(6, (500, 1)) // 2 * 2, torch.arange(6)[:, None]])  # all seen
    # The gradient of the NLL is softmax(theta) - frequencies: zero at the closed-form MLE.
    model = Histogram.fit(SPEC1, x)
    model.loss({"x": x})["loss"].backward()
    assert model.logits.grad.abs().max() < 1e-6
    # Training from uniform logits converges to the empirical frequencies.
    model = unsup.create("histogram", SPEC1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        model.loss({"x": x})["loss"].backward()
        opt.step()
    assert torch.allclose(model.log_prob_table().exp(), histogram_mle(x, 6), atol=5e-3)


@pytest.mark.parametrize("spec", [SPEC1, SPEC2])
def test_samples_follow_the_table(spec):
    torch.manual_seed(0)
    model = _random_model(spec)
    n = 20000
    x = model.sample(n)
    assert x.shape == (n, spec.shape[0]) and x.dtype == torch.long
    d = spec.shape[0]
    cells = x[:, 0] * spec.levels + x[:, 1] if d == 2 else x[:, 0]
    counts = torch.bincount(cells, minlength=spec.levels**d).numpy()
    probs = model.log_prob_table().exp().flatten().detach().double()
    expected = (probs / probs.sum() * n).numpy()
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_temperature_zero_gives_the_mode():
    model = _random_model(SPEC2)
    mode = int(model.logits.argmax())
    for t in (0.0, 1e-3):
        x = model.sample(100, temperature=t)
        assert torch.all(x[:, 0] * 4 + x[:, 1] == mode)


def test_bits_per_dim():
    model = _random_model(SPEC2)
    x = torch.tensor([[0, 1], [3, 3], [2, 0]])
    out = model.loss({"x": x})
    nll = -model.log_prob(x).mean()
    assert torch.isclose(out["bpd"], nll / (2 * math.log(2)))
    assert torch.isclose(out["bpd"], nats_to_bits_per_dim(nll, 2))


def test_training_step_reduces_loss():
    model = unsup.create("histogram", SPEC2)
    batch = {"x": torch.tensor([[0, 0], [0, 0], [1, 2]])}
    assert_training_reduces_loss(model, batch, lr=0.05, steps=5)


def test_errors():
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("histogram", DataSpec((1,), None, None, "vector"))
    with pytest.raises(ConfigError, match="shape"):
        unsup.create("histogram", DataSpec((1, 8, 8), 2))
    with pytest.raises(ConfigError, match="too large"):
        unsup.create("histogram", DataSpec((2,), 4096, None, "vector"))
    model = unsup.create("histogram", SPEC2)
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.tensor([[0, 4]]))
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ConfigError, match="class-conditional"):
        model.sample(2, y=torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(2, temperature=-1)
