"""The noise-conditional score network: annealed Langevin sampling with the exact score of a
Gaussian, the denoising loss at the true score, sigma_max from the data."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss
from torch import nn

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError

PLANE = DataSpec((2,), None, None, "vector")
M, S = torch.tensor([0.5, -0.3]), 0.4



class GaussianScore(nn.Module):
    """``sigma`` times the score of ``N(M, (S^2 + sigma^2) I)``, the blurred Gaussian (the network
    output that :meth:`NCSN.score` divides by ``sigma``)."""

    def __init__(self, model):
        super().__init__()
        self.model = [model]

    def forward(self, x, t, y=None):
        m = self.model[0]
        lo, hi = math.log(m.config.sigma_min), math.log(float(m.sigma_max))
        sigma = torch.exp(lo + t * (hi - lo)).view(-1, 1)
        return -sigma * (x - M) / (S ** 2 + sigma ** 2)


def test_annealed_langevin_with_the_exact_score_draws_the_gaussian():
    model = unsup.create("ncsn", PLANE, sigma_max=5.0, noise_levels=8, langevin_steps=50, step_size=5e-5)
    model.net = GaussianScore(model)
    torch.manual_seed(0)
    x = model.sample(3000)
    torch.testing.assert_close(x.mean(0), M, atol=0.03, rtol=0)
    torch.testing.assert_close(x.std(0), torch.full((2,), S), atol=0.03, rtol=0)
    chains = model.trajectories(10)
    assert chains.shape == (8 + 2, 10, 2)  # the start, one state per level, the denoised end


def test_denoising_score_matching_is_smallest_at_the_true_score():
    model = unsup.create("ncsn", PLANE, sigma_max=5.0)
    model.net = GaussianScore(model)
    x = M + S * torch.randn(4000, 2)
    torch.manual_seed(0)
    best = model.loss({"x": x})["loss"]
    model.net = nn.Sequential()  # wrap: the true score scaled by 1.2
    true = GaussianScore(model)
    model.net.forward = lambda z, t, y=None: 1.2 * true(z, t)
    torch.manual_seed(0)
    assert float(model.loss({"x": x})["loss"]) > float(best)


def test_ncsn_takes_sigma_max_from_the_data_and_trains():
    train = unsup.data.load("two-moons", "train")
    model = unsup.create("ncsn", train)
    pick = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(0))[:2000]
    u = model.to_unit(train.x[pick]).double()  # the 2,000 examples measured
    assert float(model.sigma_max) == pytest.approx(float(torch.cdist(u, u).max()), rel=1e-5)
    torch.manual_seed(0)
    model.loss = lambda batch, f=model.loss: (torch.manual_seed(1), f(batch))[1]
    assert_training_reduces_loss(model, {"x": train.x[:256]}, lr=3e-3, steps=20)
    with pytest.raises(ConfigError, match="sigma_min"):
        unsup.create("ncsn", PLANE, sigma_min=0.5, sigma_max=0.1)
