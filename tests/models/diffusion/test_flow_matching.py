"""Flow matching and the score model: their samplers and likelihood on Gaussians with known answers,
Hutchinson's estimator against the exact divergence, training, and the shared network."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss
from torch import nn
from torch.distributions import MultivariateNormal

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.diffusion.flow_matching import divergence

PLANE = DataSpec((2,), None, None, "vector")
IMAGES = DataSpec((1, 6, 6), 4, 2, "image")
PLANE_BINARY = DataSpec((2,), 2, None, "vector")
M, S = torch.tensor([0.5, -0.3]), 0.4


class GaussianVelocity(nn.Module):
    """The marginal velocity ``E[x_1 - x_0 | x_t]`` of the straight path from ``N(0, I)`` to
    ``N(M, S^2 I)``: ``M + (t S^2 - (1 - t)) (x - t M) / ((1 - t)^2 + t^2 S^2)``."""

    def forward(self, x, t, y=None):
        t = t.view(-1, 1)
        return M + (t * S ** 2 - (1 - t)) * (x - t * M) / ((1 - t) ** 2 + t ** 2 * S ** 2)


def exact_flow(**options):
    model = unsup.create("flow-matching", PLANE, hidden=4, layers=1, **options)
    model.net = GaussianVelocity()
    return model.eval()


@pytest.mark.parametrize("sampler,steps,tol", [("euler", 200, 0.02), ("heun", 10, 0.02)])
def test_ode_samplers_draw_the_known_gaussian(sampler, steps, tol):
    torch.manual_seed(0)
    x = exact_flow().sample(4000, sampler=sampler, steps=steps)
    torch.testing.assert_close(x.mean(0), M, atol=tol, rtol=0)
    torch.testing.assert_close(x.std(0), torch.full((2,), S), atol=tol, rtol=0)


def test_heun_is_second_order_and_euler_first():
    torch.manual_seed(0)
    model = exact_flow()
    errors = {}
    for sampler in ("euler", "heun"):
        for steps in (16, 32):
            torch.manual_seed(1)
            end = model.draw(200, None, 1.0, sampler=sampler, steps=steps)
            torch.manual_seed(1)
            fine = model.draw(200, None, 1.0, sampler="heun", steps=1000)
            errors[sampler, steps] = float((end - fine).abs().max())
    assert 1.7 < errors["euler", 16] / errors["euler", 32] < 2.3  # halving h halves the error
    assert 3.2 < errors["heun", 16] / errors["heun", 32] < 4.6  # ... and quarters Heun's


def test_likelihood_by_the_ode_is_the_true_density():
    torch.manual_seed(0)
    x = M + S * torch.randn(300, 2)
    true = MultivariateNormal(M, S ** 2 * torch.eye(2)).log_prob(x)
    model = exact_flow(ode_tolerance=1e-6)
    with torch.no_grad():
        lp, se = model.log_prob_with_se(x)  # 2-D: the exact divergence, no probe noise
    torch.testing.assert_close(lp, true, atol=2e-3, rtol=0)
    assert float(se.abs().max()) < 1e-4


def test_a_fixed_grid_estimator_takes_ode_steps_and_converges_to_the_true_density():
    torch.manual_seed(0)
    x = M + S * torch.randn(300, 2)
    true = MultivariateNormal(M, S ** 2 * torch.eye(2)).log_prob(x)
    model = exact_flow()
    errors = {}
    for steps in (2, 4, 8):
        assert model.set_estimator({"ode_method": "rk4", "ode_steps": str(steps)}) == {
            "ode_method": "rk4", "ode_steps": steps}
        with torch.no_grad():
            errors[steps] = float((model.log_prob(x) - true).abs().max())
    assert errors[8] < 1e-3 < errors[2]  # one rk4 step per 1/8: near the adaptive solve's accuracy
    assert errors[2] > 8 * errors[4] > 64 * errors[8] / 4  # fourth order: halving h cuts ~16x


def test_the_estimator_refuses_unknown_options_and_values_out_of_range():
    model = exact_flow()
    for options, words in (({"tolerance": "1"}, ["no estimator option 'tolerance'", "ode_tolerance"]),
                           ({"ode_steps": "many"}, ["takes a int", "'many'"]),
                           ({"ode_method": "newton"}, ["torchdiffeq solver", "'newton'"]),
                           ({"likelihood_repeats": "0"}, ["likelihood_repeats >= 1"])):
        with pytest.raises(ConfigError) as e:
            model.set_estimator(options)
        assert all(w in str(e.value) for w in words), str(e.value)
    with pytest.raises(ConfigError, match="no estimator option 'eval_samples'; it takes none"):
        unsup.create("made", PLANE_BINARY, hidden=[4]).set_estimator({"eval_samples": "3"})


def test_hutchinson_is_unbiased_for_the_divergence():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 5))
    x = torch.randn(3, 5, requires_grad=True)
    exact = divergence(net(x), x, None)
    jac = torch.stack([torch.autograd.functional.jacobian(net, x[i]).trace() for i in range(3)])
    torch.testing.assert_close(exact, jac)
    draws = torch.stack([divergence(net(x), x, torch.randint(0, 2, x.shape).float() * 2 - 1)
                         for _ in range(4000)])
    assert bool(((draws.mean(0) - exact).abs() < 4 * draws.std(0) / math.sqrt(4000)).all())


def test_discrete_data_likelihood_counts_the_bins_and_reports_its_spread():
    torch.manual_seed(0)
    model = unsup.create("flow-matching", IMAGES, hidden=8, mults=[1, 2], attention=[],
                         likelihood_repeats=3, ode_method="rk4").eval()
    x = torch.randint(0, 4, (5, *IMAGES.shape))
    lp, se = model.log_prob_with_se(x)
    assert lp.shape == se.shape == (5,) and bool((se > 0).all())
    # the untrained network outputs 0: the flow is the identity, the density N(0, I) at the
    # dequantised point u + w, w ~ U(-1/3, 1/3): E log N(u + w) = log N(u) - Var(w) / 2 per pixel
    u = x.float() * 2 / 3 - 1
    expected = (torch.distributions.Normal(0.0, 1.0).log_prob(u).flatten(1).sum(1)
                - 36 * (4 / 9) / 12 / 2 + 36 * math.log(2 / 3))
    assert bool(((lp - expected).abs() < 4 * se + 0.02).all()), (lp - expected, se)


def test_flow_matching_training_and_conditional_sampling():
    torch.manual_seed(0)
    model = unsup.create("flow-matching", IMAGES, hidden=8, mults=[1, 2], attention=[3],
                         conditional=True)
    x, y = torch.randint(0, 4, (16, *IMAGES.shape)), torch.randint(0, 2, (16,))
    model.loss = lambda batch, f=model.loss: (torch.manual_seed(1), f(batch))[1]
    assert_training_reduces_loss(model, {"x": x, "y": y}, lr=3e-3, steps=10)
    s = model.sample(4, y=torch.tensor([0, 1, 0, 1]), steps=3, guidance=2.0)
    assert s.shape == (4, *IMAGES.shape) and s.dtype == torch.long
    assert int(s.min()) >= 0 and int(s.max()) <= 3
    with pytest.raises(ConfigError, match="sampler"):
        model.sample(2, sampler="rk45")
    with pytest.raises(ConfigError, match="no sampling option"):
        model.sample(2, eta=0.5)
