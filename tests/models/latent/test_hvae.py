"""Two-level hierarchical VAE: its densities are the Gaussians they claim to be, the estimate of
p(x) normalises, the bounds are ordered, per-level KLs expose a collapsed level."""

import math

import pytest
import torch
from model_checks import assert_marginal_sums_to_one, assert_training_reduces_loss, fit, iwae_bound_means
from test_vae import binary_patterns

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.latent.hvae import normal_kl

BINARY_VEC = DataSpec((8,), 2, kind="vector")
FLOAT_VEC = DataSpec((3,), None, kind="vector")
SMALL_IMAGE = DataSpec((1, 8, 8), 4)
Normal = torch.distributions.Normal


@pytest.fixture(scope="module")
def trained_hvae():
    torch.manual_seed(0)
    model = unsup.create("hvae", BINARY_VEC, z_dims=[2, 2], hidden=[32], top_hidden=[16])
    return fit(model, binary_patterns(512, seed=1), steps=150, batch=64)


def randomised(model):
    """Larger random weights so every mean and scale differs visibly from 0 and 1."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


# --------------------------------------------------------------------------------- densities


def test_log_q_and_log_prior_match_torch_distributions():
    torch.manual_seed(1)
    model = randomised(unsup.create("hvae", BINARY_VEC, z_dims=[3, 2], hidden=[16], top_hidden=[8]))
    x = binary_patterns(5, seed=2)
    z, log_q = model.draw_posterior(x, 4)
    assert z.shape == (4, 5, 5) and log_q.shape == (4, 5)
    z1, z2 = z[..., :3], z[..., 3:]
    # the networks' outputs, combined here independently of the model's code
    d1 = model.encoder[:-1](2.0 * x.float() - 1.0)
    h1, h2 = model.encoder[-1](d1), model.up(d1)
    q2 = Normal(h2[:, :2], h2[:, 2:].exp())
    hp = model.top_down(z2)
    mu_p, s_p = hp[..., :3], hp[..., 3:].exp()
    m, t = h1[:, :3], h1[:, 3:].exp()
    var_q = 1.0 / (t**-2 + s_p**-2)
    q1 = Normal(var_q * (m / t**2 + mu_p / s_p**2), var_q.sqrt())
    expected_q = q2.log_prob(z2).sum(-1) + q1.log_prob(z1).sum(-1)
    torch.testing.assert_close(log_q, expected_q, atol=1e-4, rtol=1e-5)
    expected_p = Normal(0.0, 1.0).log_prob(z2).sum(-1) + Normal(mu_p, s_p).log_prob(z1).sum(-1)
    torch.testing.assert_close(model.prior_log_prob(z), expected_p, atol=1e-4, rtol=1e-5)
    # the per-level closed-form KL of the loss
    kl = torch.distributions.kl_divergence(q1, Normal(mu_p, s_p))
    torch.testing.assert_close(normal_kl(q1.loc, q1.scale.log(), mu_p, s_p.log()), kl,
                               atol=1e-5, rtol=1e-5)


def test_loss_reports_the_kl_of_each_level():
    torch.manual_seed(3)
    model = randomised(unsup.create("hvae", BINARY_VEC, z_dims=[3, 2], hidden=[16], top_hidden=[8]))
    x = binary_patterns(4, seed=4)
    outs = [model.loss({"x": x}) for _ in range(5)]
    assert set(outs[0]) >= {"loss", "bpd", "kl", "kl1", "kl2", "recon"}
    for out in outs:
        assert float(out["kl"]) == pytest.approx(float(out["kl1"] + out["kl2"]), rel=1e-5)
        assert float(out["kl2"]) == pytest.approx(float(outs[0]["kl2"]), rel=1e-6)  # closed form
    # E_z2[KL1(z2)] + KL2 is the KL of the joint: E_q[log q(z1, z2 | x) - log p(z1, z2)]
    r = model._infer(x, 20000)
    kl1 = normal_kl(r["mu_q"], r["log_s_q"], r["mu_p"], r["log_s_p"]).sum(-1).mean(0)  # (B,)
    z, log_q = torch.cat([r["z1"], r["z2"]], -1), r["log_q1"] + r["log_q2"]
    mc = log_q - model.prior_log_prob(z)  # (k, B)
    q2 = Normal(r["mu2"], r["log_s2"].exp())
    kl2 = torch.distributions.kl_divergence(q2, Normal(0.0, 1.0)).sum(-1)  # (B,)
    assert float(outs[0]["kl2"]) == pytest.approx(float(kl2.mean().detach()), rel=1e-5)
    se = mc.std(0) / math.sqrt(len(mc))
    assert ((kl1 + kl2 - mc.mean(0)).abs() < 4 * se + 1e-3).all(), (kl1 + kl2, mc.mean(0), se)


def test_bottom_up_inference_is_the_markov_chain_it_claims():
    """q(z1 | x) q(z2 | z1) against torch's Normals; the loss's KL1 is log q(z1 | x) - log p(z1 | z2)
    at its draw and KL2 the closed form of KL(q(z2 | z1) || N(0, I)) at the drawn z1, so that their
    sum is unbiased for the KL of the joint."""
    torch.manual_seed(12)
    model = randomised(unsup.create("hvae", BINARY_VEC, z_dims=[3, 2], hidden=[16], top_hidden=[8],
                                    inference="bottom-up"))
    x = binary_patterns(5, seed=2)
    z, log_q = model.draw_posterior(x, 4)
    z1, z2 = z[..., :3], z[..., 3:]
    h1 = model.encoder(2.0 * x.float() - 1.0)
    q1 = Normal(h1[:, :3], h1[:, 3:].exp())
    h2 = model.up(z1)  # (4, 5, 4): from z1, not from x
    q2 = Normal(h2[..., :2], h2[..., 2:].exp())
    torch.testing.assert_close(log_q, q1.log_prob(z1).sum(-1) + q2.log_prob(z2).sum(-1), atol=1e-4, rtol=1e-5)
    torch.manual_seed(13)
    out = model.loss({"x": x})
    torch.manual_seed(13)  # the same draws
    z, _ = model.draw_posterior(x, 1)
    z1, z2 = z[0, :, :3], z[0, :, 3:]
    hp = model.top_down(z2)
    kl1 = q1.log_prob(z1).sum(-1) - Normal(hp[:, :3], hp[:, 3:].exp()).log_prob(z1).sum(-1)
    h2 = model.up(z1)
    kl2 = torch.distributions.kl_divergence(Normal(h2[:, :2], h2[:, 2:].exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(out["kl1"], kl1.mean(), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out["kl2"], kl2.mean(), atol=1e-4, rtol=1e-5)
    assert model.latent_levels() == (2, 3) and model.inference == "bottom-up"


# ------------------------------------------------------------------------------------ bounds


def test_marginal_of_binary_hvae_sums_to_one(trained_hvae):
    torch.manual_seed(4)
    assert_marginal_sums_to_one(trained_hvae, (8,), k=500)


def test_bottom_up_bounds_are_ordered():
    torch.manual_seed(0)
    model = unsup.create("hvae", BINARY_VEC, z_dims=[2, 2], hidden=[32], top_hidden=[16],
                         inference="bottom-up")
    model = fit(model, binary_patterns(512, seed=1), steps=150, batch=64)
    assert_marginal_sums_to_one(model, (8,), k=500)
    x = binary_patterns(100, seed=2)
    means = iwae_bound_means(model, x, 16)
    lp, se = model.log_prob_with_se(x, k=1000)
    assert means[1].mean() <= means[50].mean() <= lp.mean() + 2 * se.mean()


def test_elbo_below_iwae_k_below_iwae_k_prime(trained_hvae):
    x = binary_patterns(100, seed=2)  # held out
    torch.manual_seed(5)
    repeats = 16
    means = iwae_bound_means(trained_hvae, x, repeats)
    lp, se = trained_hvae.log_prob_with_se(x, k=1000)
    assert means[50].mean() <= lp.mean() + 2 * se.mean()


# -------------------------------------------------------------------------------- collapse


def test_a_level_equal_to_its_prior_has_zero_kl_and_no_active_units():
    torch.manual_seed(6)
    model = unsup.create("hvae", BINARY_VEC, z_dims=[3, 2], hidden=[16], top_hidden=[8])
    with torch.no_grad():  # bottom-up precision of z1 -> 0: q(z1 | z2, x) = p(z1 | z2)
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias[3:] = 30.0
        model.up[-1].weight.zero_()  # q(z2 | x) = N(0, I) = p(z2)
        model.up[-1].bias.zero_()
    x = binary_patterns(64, seed=0)
    out = model.loss({"x": x})
    assert float(out["kl1"]) < 1e-4 and float(out["kl2"]) < 1e-6
    assert model.active_units_per_level(x) == (0, 0)
    model = unsup.create("hvae", BINARY_VEC, z_dims=[3, 2], hidden=[16], top_hidden=[8])
    a1, a2 = randomised(model).active_units_per_level(binary_patterns(300, seed=0))
    assert a1 > 0 and a2 > 0 and model.active_units(binary_patterns(300, seed=0)) == a1 + a2


# ---------------------------------------------------------------------------------- training


@pytest.mark.parametrize("spec,opts", [
    (BINARY_VEC, {"hidden": [32], "z_dims": [4, 2]}),
    (SMALL_IMAGE, {"arch": "conv", "channels": 4, "z_dims": [2, 2], "k": 2}),
    (FLOAT_VEC, {"hidden": [16], "z_dims": [3, 2], "beta": 0.5, "free_bits": 0.1}),
    (BINARY_VEC, {"hidden": [32], "z_dims": [4, 2], "inference": "bottom-up"}),
    (SMALL_IMAGE, {"arch": "conv", "channels": 4, "z_dims": [2, 2], "k": 2, "inference": "bottom-up"}),
])
def test_training_reduces_loss(spec, opts):
    torch.manual_seed(7)
    model = unsup.create("hvae", spec, **opts)
    if spec.levels is None:
        x = torch.randn(64, *spec.shape)
    else:
        x = torch.randint(0, spec.levels, (64, *spec.shape))
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=30)


# -------------------------------------------------------------------------- samples, codes


@pytest.mark.parametrize("spec,dtype", [(BINARY_VEC, torch.long), (SMALL_IMAGE, torch.long),
                                        (FLOAT_VEC, torch.float)])
def test_samples_and_codes(spec, dtype):
    torch.manual_seed(9)
    model = unsup.create("hvae", spec, z_dims=[3, 2], hidden=[8], top_hidden=[8]).eval()
    for t in (1.0, 0.5, 0.0):
        s = model.sample(5, temperature=t)
        assert s.shape == (5, *spec.shape) and s.dtype == dtype
        if spec.levels is not None:
            assert s.min() >= 0 and s.max() < spec.levels
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0))
    assert model.sample_prior(4).shape == (4, 5)
    x = model.sample(6)
    assert model.encode(x).shape == (6, 5)
    assert model.reconstruct(x).shape == x.shape
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, *spec.shape)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("opts,match", [
    ({"z_dim": 4}, "z_dims"),
    ({"z_dims": [4]}, "two positive sizes"),
    ({"z_dims": [4, 2, 1]}, "two positive sizes"),
    ({"z_dims": [4, 0]}, "two positive sizes"),
    ({"top_hidden": [0]}, "top_hidden"),
    ({"hidden": [-1]}, "hidden"),
    ({"arch": "conv"}, "image"),
    ({"k": 5, "beta": 2.0}, "use k = 1"),
    ({"decoder": "gaussian"}, "continuous data"),
    ({"inference": "sideways"}, "top-down or bottom-up"),
])
def test_bad_config_raises(opts, match):
    with pytest.raises(ConfigError, match=match):
        unsup.create("hvae", BINARY_VEC, **opts)


def test_paper_preset_and_defaults():
    c = unsup.models.config_for("hvae", "paper")
    assert c.z_dims == [64, 32] and c.eval_samples == 5000
    model = unsup.create("hvae", BINARY_VEC)
    assert model.z_dims == (32, 16) and model.z_dim == 48 and not model.exact_likelihood
