"""Gumbel-softmax VAE: evaluation is of the discrete model (exact one-hot samples, exact log q), so
the importance-sampled log p(x) agrees with log p(x) computed by enumerating every latent
configuration; training uses the annealed relaxation, whose schedule survives a checkpoint."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from model_checks import (
    all_images,
    assert_marginal_sums_to_one,
    assert_training_reduces_loss,
    fit,
    iwae_bound_means,
)
from test_vae import binary_patterns

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError

BINARY_VEC = DataSpec((8,), 2, kind="vector")
FLOAT_VEC = DataSpec((3,), None, kind="vector")
SMALL_IMAGE = DataSpec((1, 8, 8), 4)
N, K = 2, 4  # 16 latent configurations


@pytest.fixture(scope="module")
def trained_gumbel():
    torch.manual_seed(0)
    model = unsup.create("gumbel-vae", BINARY_VEC, latents=N, categories=K, hidden=[32],
                         anneal_rate=1e-2)
    return fit(model, binary_patterns(512, seed=1), steps=150, batch=64)


def all_codes() -> torch.Tensor:
    """Every one-hot configuration of N variables with K values, ``(K**N, N K)``."""
    idx = torch.tensor(list(itertools.product(range(K), repeat=N)))  # (C, N)
    return F.one_hot(idx, K).flatten(1).float()


@torch.no_grad()
def exact_log_p_and_elbo(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) = log sum_z K^-N p(x | z) and the ELBO sum_z q(z | x) log(p(x, z) / q(z | x)), both
    by enumeration, ``(B,)`` each."""
    codes = all_codes()
    c, b = len(codes), len(x)
    xs = x.repeat(c, *[1] * (x.dim() - 1))  # (C B, ...), code-major
    log_joint = model.decoder_log_prob(xs, codes.repeat_interleave(b, 0)).view(c, b) \
        - N * math.log(K)
    log_q = model.posterior_log_probs(x)  # (B, N, K)
    log_q_code = (codes.view(c, 1, N, K) * log_q).sum((-2, -1))  # (C, B)
    elbo = (log_q_code.exp() * (log_joint - log_q_code)).sum(0)
    return torch.logsumexp(log_joint, 0), elbo


# -------------------------------------------------------------------------- exact vs estimate


def test_enumerated_marginal_normalises(trained_gumbel):
    lp, _ = exact_log_p_and_elbo(trained_gumbel, all_images((8,), 2))
    assert lp.double().exp().sum() == pytest.approx(1.0, abs=1e-5)


def test_importance_sampled_log_p_matches_enumeration_and_elbo_is_below(trained_gumbel):
    x = binary_patterns(40, seed=2)  # held out
    exact, elbo = exact_log_p_and_elbo(trained_gumbel, x)
    assert (elbo <= exact + 1e-5).all()
    torch.manual_seed(3)
    lp, se = trained_gumbel.log_prob_with_se(x, k=300)
    assert se.min() > 0  # q is not the exact posterior
    assert ((lp - exact).abs() <= 3 * se + 1e-4).float().mean() >= 0.9
    assert abs((lp - exact).mean()) < 3 * se.pow(2).mean().sqrt() / math.sqrt(len(x)) + 1e-4
    # one-sample bound and the evaluation-mode loss are unbiased for the enumerated ELBO
    repeats = 200
    l1 = torch.stack([trained_gumbel.iwae_bound(x, 1) for _ in range(repeats)]).float()  # (R, B)
    assert abs(l1.mean() - elbo.mean()) < 4 * l1.mean(1).std() / math.sqrt(repeats) + 1e-4
    with torch.no_grad():
        bpd = torch.stack([trained_gumbel.loss({"x": x})["bpd"] for _ in range(repeats)])
    elbo_bpd = -elbo.mean() / (8 * math.log(2))
    assert abs(bpd.mean() - elbo_bpd) < 4 * bpd.std() / math.sqrt(repeats) + 1e-4


def test_marginal_of_binary_gumbel_vae_sums_to_one(trained_gumbel):
    torch.manual_seed(4)
    assert_marginal_sums_to_one(trained_gumbel, (8,), k=500)


def test_elbo_below_iwae_k_below_iwae_k_prime(trained_gumbel):
    x = binary_patterns(100, seed=5)
    torch.manual_seed(6)
    repeats = 16
    means = iwae_bound_means(trained_gumbel, x, repeats)
    exact, _ = exact_log_p_and_elbo(trained_gumbel, x)
    assert means[50].mean() <= exact.mean() + 1e-4


# ----------------------------------------------------------------------- the two posteriors


def test_draw_posterior_is_exact_in_evaluation_and_relaxed_in_training():
    torch.manual_seed(7)
    model = unsup.create("gumbel-vae", BINARY_VEC, latents=3, categories=5, hidden=[8])
    x = binary_patterns(6, seed=0)
    log_q = model.posterior_log_probs(x)  # (B, N, K)
    z, lq = model.draw_posterior(x, 4)  # training mode, gradients on: relaxed
    assert z.shape == (4, 6, 15) and lq.shape == (4, 6)
    zz = z.view(4, 6, 3, 5)
    torch.testing.assert_close(zz.sum(-1), torch.ones(4, 6, 3))
    assert ((zz > 1e-3) & (zz < 1 - 1e-3)).any()  # not one-hot
    for mode in ("eval", "no_grad"):
        if mode == "eval":
            model.eval()
            z, lq = model.draw_posterior(x, 4)
        else:
            model.train()
            with torch.no_grad():
                z, lq = model.draw_posterior(x, 4)
        zz = z.view(4, 6, 3, 5)
        assert set(zz.unique().tolist()) <= {0.0, 1.0} and (zz.sum(-1) == 1).all()
        cat = torch.distributions.Categorical(logits=log_q)
        torch.testing.assert_close(lq, cat.log_prob(zz.argmax(-1)).sum(-1))
    model.train()
    model.encoder[-1].bias.data.zero_()
    model.encoder[-1].weight.data.zero_()  # q = the uniform prior: exactly zero KL
    assert float(model.loss({"x": x})["kl"]) == pytest.approx(0.0, abs=1e-6)


def test_hard_samples_are_one_hot_with_relaxed_gradients():
    torch.manual_seed(8)
    model = unsup.create("gumbel-vae", BINARY_VEC, latents=3, categories=5, hidden=[8], hard=True)
    x = binary_patterns(6, seed=0)
    z, _ = model.draw_posterior(x, 2)
    assert set(z.unique().tolist()) <= {0.0, 1.0}
    model.decoder_log_prob(x.repeat(2, 1), z.flatten(0, 1)).sum().backward()
    assert model.encoder[-1].weight.grad.abs().sum() > 0


def test_encode_gives_posterior_probabilities_and_samples_are_one_hot_codes():
    torch.manual_seed(9)
    model = unsup.create("gumbel-vae", BINARY_VEC, latents=3, categories=5, hidden=[8]).eval()
    p = model.encode(binary_patterns(7, seed=0))
    assert p.shape == (7, 15)
    torch.testing.assert_close(p.view(7, 3, 5).sum(-1), torch.ones(7, 3))
    z = model.sample_prior(1000).view(1000, 3, 5)
    assert (z.sum(-1) == 1).all() and set(z.unique().tolist()) == {0.0, 1.0}
    freq = z.mean(0)  # uniform categories
    assert (freq - 0.2).abs().max() < 0.06


# ---------------------------------------------------------------------- temperature schedule


def test_temperature_schedule_survives_state_dict_round_trip():
    opts = {"hidden": [8], "tau_start": 1.0, "tau_min": 0.5, "anneal_rate": 0.1, "anneal_every": 2}
    model = unsup.create("gumbel-vae", BINARY_VEC, **opts)
    x = binary_patterns(16, seed=0)
    assert float(model.loss({"x": x})["tau"]) == 1.0
    for _ in range(2):
        model.loss({"x": x})
    assert model.temperature() == pytest.approx(math.exp(-0.2))  # step 3: updated at step 2
    model.loss({"x": x})
    model.eval()
    model.loss({"x": x})  # evaluation does not advance the schedule
    assert int(model.step) == 4 and model.temperature() == pytest.approx(math.exp(-0.4))
    clone = unsup.create("gumbel-vae", BINARY_VEC, **opts)
    clone.load_state_dict(model.state_dict())
    assert int(clone.step) == 4 and clone.temperature() == pytest.approx(math.exp(-0.4))
    clone.step.fill_(1000)
    assert clone.temperature() == 0.5  # the floor


# ---------------------------------------------------------------------------------- training


@pytest.mark.parametrize("spec,opts", [
    (BINARY_VEC, {"hidden": [32]}),
    (BINARY_VEC, {"hidden": [32], "hard": True, "free_bits": 0.05}),
    (SMALL_IMAGE, {"arch": "conv", "channels": 4, "latents": 4, "categories": 3}),
    (FLOAT_VEC, {"hidden": [16], "beta": 0.5, "kl_anneal_steps": 10}),
])
def test_training_reduces_loss(spec, opts):
    torch.manual_seed(10)
    model = unsup.create("gumbel-vae", spec, **opts)
    if spec.levels is None:
        x = torch.randn(64, *spec.shape)
    else:
        x = torch.randint(0, spec.levels, (64, *spec.shape))
    assert set(model.loss({"x": x})) >= {"loss", "bpd", "kl", "recon", "tau"}
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=30)


@pytest.mark.parametrize("spec,dtype", [(BINARY_VEC, torch.long), (SMALL_IMAGE, torch.long),
                                        (FLOAT_VEC, torch.float)])
def test_samples(spec, dtype):
    torch.manual_seed(11)
    model = unsup.create("gumbel-vae", spec, latents=3, categories=4, hidden=[8]).eval()
    for t in (1.0, 0.0):
        s = model.sample(5, temperature=t)
        assert s.shape == (5, *spec.shape) and s.dtype == dtype
        if spec.levels is not None:
            assert s.min() >= 0 and s.max() < spec.levels
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0))
    x = model.sample(6)
    assert model.reconstruct(x).shape == x.shape
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, *spec.shape)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("opts,match", [
    ({"z_dim": 4}, "latents and categories"),
    ({"k": 5}, "k must be 1"),
    ({"latents": 0}, "latents must be"),
    ({"categories": 1}, "categories >= 2"),
    ({"tau_min": 0.0}, "0 < tau_min"),
    ({"tau_min": 2.0}, "tau_min <= tau_start"),
    ({"anneal_rate": -1.0}, "anneal_rate"),
    ({"anneal_every": 0}, "anneal_every"),
    ({"arch": "conv"}, "image"),
    ({"decoder": "gaussian"}, "continuous data"),
])
def test_bad_config_raises(opts, match):
    with pytest.raises(ConfigError, match=match):
        unsup.create("gumbel-vae", BINARY_VEC, **opts)


def test_paper_preset():
    c = unsup.models.config_for("gumbel-vae", "paper")
    assert (c.latents, c.categories, c.hidden, c.anneal_every) == (20, 10, [512, 256], 500)
    assert not unsup.create("gumbel-vae", BINARY_VEC).exact_likelihood
