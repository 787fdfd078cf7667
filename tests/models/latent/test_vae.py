"""VAE / IWAE: the bounds are ordered, the importance-sampled log p(x) is right where it is known,
every decoder likelihood normalises, and the KL schedule survives a checkpoint."""

import math

import pytest
import torch
from model_checks import all_images, assert_training_reduces_loss, fit, iwae_bound_means

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.latent.parts import Bernoulli, DiscretizedLogistic, Gaussian

BINARY_VEC = DataSpec((8,), 2, kind="vector")
FLOAT_VEC = DataSpec((3,), None, kind="vector")
SMALL_IMAGE = DataSpec((1, 8, 8), 4)


def binary_patterns(n: int, seed: int) -> torch.Tensor:
    """Four prototype 8-bit patterns with 10% of the bits flipped: data with a 2-D latent cause."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1],
                           [1, 0, 1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1, 1, 0]])
    x = protos[torch.randint(0, 4, (n,), generator=g)]
    flip = (torch.rand(x.shape, generator=g) < 0.1).long()
    return x ^ flip


@pytest.fixture(scope="module")
def trained_vae():
    torch.manual_seed(0)
    model = unsup.create("vae", BINARY_VEC, z_dim=2, hidden=[32])
    return fit(model, binary_patterns(512, seed=1), steps=150, batch=64)


# ----------------------------------------------------------------------------------- bounds


def test_elbo_below_iwae_k_below_iwae_k_prime(trained_vae):
    x = binary_patterns(200, seed=2)  # held out
    torch.manual_seed(3)
    repeats = 16
    means = iwae_bound_means(trained_vae, x, repeats)
    lp, se = trained_vae.log_prob_with_se(x, k=2000)
    assert means[50].mean() <= lp.mean() + 2 * se.mean()


def test_marginal_of_binary_vae_sums_to_one(trained_vae):
    """exp(log p^) is an unbiased estimate of p(x): summed over all 256 vectors it is ~1."""
    torch.manual_seed(4)
    x = all_images((8,), 2)
    lp, se = trained_vae.log_prob_with_se(x, k=2000)
    p = lp.double().exp()
    se_total = (p * se).pow(2).sum().sqrt()  # delta method: se(p^) = p^ se(log p^)
    assert abs(p.sum() - 1) < 3 * se_total + 0.01


def ppca_vae(sigma: float, exact_posterior: bool) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A linear-Gaussian VAE (probabilistic PCA) set by hand: p(x) = N(b, W W^T + sigma^2 I).

    W has orthogonal columns, so the true posterior is the diagonal Gaussian
    N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I, and the encoder holds it exactly
    (or a deliberately wrong one)."""
    model = unsup.create("vae", FLOAT_VEC, z_dim=2, hidden=[], decoder="gaussian", eval_chunk=4096)
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])  # (D, z), orthogonal columns
    b = torch.tensor([0.5, -1.0, 0.2])
    m_diag = (w * w).sum(0) + sigma**2  # (z,)
    a = w.T / m_diag[:, None]  # M^-1 W^T, (z, D)
    post_log_s = 0.5 * torch.log(sigma**2 / m_diag)
    if not exact_posterior:
        a, post_log_s = a * 0.9, post_log_s + 0.5
    enc, dec = model.encoder[0], model.decoder[0]
    with torch.no_grad():
        enc.weight.zero_()
        enc.weight[:2] = a
        enc.bias[:2] = -a @ b
        enc.bias[2:] = post_log_s
        dec.weight.zero_()
        dec.weight[:3] = w
        dec.bias[:3] = b
        dec.bias[3:] = math.log(sigma)
    cov = w @ w.T + sigma**2 * torch.eye(3)
    return model.eval(), b, cov


@pytest.mark.parametrize("exact_posterior", [True, False])
def test_importance_sampled_log_p_matches_probabilistic_pca(exact_posterior):
    model, b, cov = ppca_vae(0.5, exact_posterior)
    torch.manual_seed(5)
    x = torch.distributions.MultivariateNormal(b, cov).sample((20,))
    exact = torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    lp, se = model.log_prob_with_se(x, k=300)
    if exact_posterior:  # every importance weight equals p(x): no variance at all
        torch.testing.assert_close(lp, exact, atol=1e-4, rtol=0)
        assert se.max() < 1e-3
    else:
        assert se.min() > 1e-3
        assert ((lp - exact).abs() <= 3 * se + 1e-4).float().mean() >= 0.9
        assert abs((lp - exact).mean()) < 3 * se.pow(2).mean().sqrt() / math.sqrt(20) + 1e-4


# ------------------------------------------------------------------------------ likelihoods


def test_bernoulli_and_logistic_likelihoods_normalise():
    torch.manual_seed(6)
    x = all_images((3,), 2)  # (8, 3)
    params = torch.randn(1, 1, 3).expand(len(x), 1, 3)
    assert torch.allclose(Bernoulli().log_prob(params, x).exp().sum(), torch.tensor(1.0), atol=1e-5)
    x = all_images((2,), 5)  # (25, 2)
    params = torch.randn(1, 2, 2).expand(len(x), 2, 2)
    lik = DiscretizedLogistic(5)
    assert torch.allclose(lik.log_prob(params, x).exp().sum(), torch.tensor(1.0), atol=1e-5)


def test_gaussian_likelihood_integrates_to_one():
    grid = torch.linspace(-12, 12, 20001, dtype=torch.float64)[:, None]  # (N, 1)
    params = torch.tensor([[[0.7], [0.4]]], dtype=torch.float64).expand(len(grid), 2, 1)
    p = Gaussian().log_prob(params, grid).exp()
    assert abs(torch.trapezoid(p, grid[:, 0]) - 1) < 1e-6


# --------------------------------------------------------------------------------- training


@pytest.mark.parametrize("name,spec,opts", [
    ("vae", BINARY_VEC, {"hidden": [32]}),
    ("iwae", SMALL_IMAGE, {"arch": "conv", "channels": 4, "z_dim": 4}),
    ("vae", FLOAT_VEC, {"hidden": [16], "beta": 0.5, "free_bits": 0.1}),
])
def test_training_reduces_loss(name, spec, opts):
    torch.manual_seed(7)
    model = unsup.create(name, spec, **opts)
    if spec.levels is None:
        x = torch.randn(64, *spec.shape)
    else:
        x = torch.randint(0, spec.levels, (64, *spec.shape))
    out = model.loss({"x": x})
    assert set(out) >= {"loss", "bpd", "kl", "recon"}
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=30)


def test_kl_anneal_counter_survives_state_dict_round_trip():
    model = unsup.create("vae", BINARY_VEC, hidden=[8], kl_anneal_steps=10, beta=2.0)
    x = binary_patterns(16, seed=0)
    assert model.loss({"x": x})["kl_weight"] == 0  # step 0: no KL yet
    for _ in range(3):
        model.loss({"x": x})
    model.eval()
    model.loss({"x": x})  # evaluation does not advance the schedule
    assert int(model.step) == 4 and model.kl_weight() == pytest.approx(0.8)
    clone = unsup.create("vae", BINARY_VEC, hidden=[8], kl_anneal_steps=10, beta=2.0)
    clone.load_state_dict(model.state_dict())
    assert int(clone.step) == 4 and clone.kl_weight() == pytest.approx(0.8)


def test_free_bits_floors_the_kl_term():
    losses = {}
    for lam in (0.0, 0.25):
        torch.manual_seed(8)
        model = unsup.create("vae", BINARY_VEC, hidden=[8], z_dim=3, free_bits=lam)
        with torch.no_grad():  # q(z | x) = p(z): zero KL in every dimension
            model.encoder[-1].weight.zero_()
            model.encoder[-1].bias.zero_()
        torch.manual_seed(8)
        out = model.loss({"x": binary_patterns(32, seed=0)})
        assert out["kl"] == 0
        losses[lam] = out["loss"].detach()
    assert float(losses[0.25] - losses[0.0]) == pytest.approx(3 * 0.25 / 8, abs=1e-6)


# ----------------------------------------------------------------------- samples and codes


@pytest.mark.parametrize("spec,dtype", [(BINARY_VEC, torch.long), (SMALL_IMAGE, torch.long),
                                        (FLOAT_VEC, torch.float)])
def test_samples_and_codes(spec, dtype):
    torch.manual_seed(9)
    model = unsup.create("vae", spec, z_dim=2, hidden=[8]).eval()
    for t in (1.0, 0.0):
        s = model.sample(5, temperature=t)
        assert s.shape == (5, *spec.shape) and s.dtype == dtype
        if spec.levels is not None:
            assert s.min() >= 0 and s.max() < spec.levels
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0))
    x = model.sample(6)
    assert model.encode(x).shape == (6, 2)
    assert model.reconstruct(x).shape == x.shape
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, *spec.shape)
    with pytest.raises(ConfigError, match="not class-conditional"):
        model.sample(2, y=torch.zeros(2, dtype=torch.long))


def test_active_units_counts_dimensions_the_encoder_uses():
    model, _, _ = ppca_vae(0.5, exact_posterior=True)  # both latents depend on x
    x = torch.randn(500, 3) * 2
    assert model.active_units(x) == 2
    with torch.no_grad():
        model.encoder[0].weight[1] = 0  # the second posterior mean is now constant
    assert model.active_units(x) == 1


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("spec,opts,match", [
    (SMALL_IMAGE, {"decoder": "bernoulli"}, "binary data"),
    (BINARY_VEC, {"decoder": "gaussian"}, "continuous data"),
    (FLOAT_VEC, {"decoder": "logistic"}, "discrete levels"),
    (FLOAT_VEC, {"decoder": "poisson"}, "decoder must be"),
    (BINARY_VEC, {"arch": "conv"}, "image"),
    (DataSpec((1, 6, 6), 2), {"arch": "conv"}, "divisible by 4"),
    (BINARY_VEC, {"arch": "rnn"}, "arch must be"),
    (BINARY_VEC, {"k": 5, "beta": 2.0}, "use k = 1"),
    (BINARY_VEC, {"free_bits": -1.0}, ">= 0"),
    (BINARY_VEC, {"eval_samples": 0}, ">= 1"),
    (BINARY_VEC, {"activation": "gelu"}, "activation"),
])
def test_bad_config_raises(spec, opts, match):
    with pytest.raises(ConfigError, match=match):
        unsup.create("vae", spec, **opts)


def test_bad_data_raises_and_iwae_defaults():
    model = unsup.create("vae", BINARY_VEC, hidden=[4])
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"values in \[0, 1\]"):
        model.loss({"x": torch.full((2, 8), 3)})
    assert unsup.create("iwae", BINARY_VEC).config.k == 5
    assert unsup.models.config_for("iwae", "paper").k == 50
    assert not model.exact_likelihood


# ------------------------------------------------------------------ evaluation plumbing


def test_validation_scores_the_cheap_bound_and_the_test_the_estimate(trained_vae, monkeypatch):
    from unsup.data.base import TensorDataset
    from unsup.train import evaluate

    ds = TensorDataset(binary_patterns(64, seed=4), BINARY_VEC, split="val")
    final = evaluate(trained_vae, ds, batch_size=32)
    assert final["nll_se"] > 0 and not final["exact"]
    # validation never runs the eval_samples estimate
    monkeypatch.setattr(trained_vae, "log_prob_with_se", lambda *a: pytest.fail("IS at validation"))
    monkeypatch.setattr(trained_vae, "log_prob", lambda *a: pytest.fail("IS at validation"))
    val = evaluate(trained_vae, ds, batch_size=32, validation=True)
    assert "nll_se" not in val and val["nll"] >= final["nll"] - 4 * final["nll_se"]


def test_cli_eval_sets_importance_samples_and_subset(tmp_path, capsys):
    import json

    from cli_helpers import run

    out = tmp_path / "vae"
    code, _, _ = run(capsys, "train", "vae", "--data", "digits", "--represent", "binary",
                     "--steps", "20", "--no-test", "--out", str(out), "--z-dim", "4")
    assert code == 0
    code, text, _ = run(capsys, "eval", str(out), "--json", "--importance-samples", "30",
                        "--examples", "25")
    r = json.loads(text)
    assert (code, r["n"], r["importance_samples"]) == (0, 25, 30) and r["bpd_se"] > 0
    # the estimate is random: --seed repeats it, another seed moves it by about its error
    again = json.loads(run(capsys, "eval", str(out), "--json", "--importance-samples", "30",
                           "--examples", "25")[1])
    other = json.loads(run(capsys, "eval", str(out), "--json", "--importance-samples", "30",
                           "--examples", "25", "--seed", "1")[1])
    assert again["nll_nats"] == r["nll_nats"] and other["nll_nats"] != r["nll_nats"]
    assert abs(other["nll_nats"] - r["nll_nats"]) < 6 * r["nll_se"]
    # one sample (the ELBO's estimate) cannot measure its own error: none is reported, not 0
    one = json.loads(run(capsys, "eval", str(out), "--json", "--importance-samples", "1",
                         "--examples", "25")[1])
    assert "nll_se" not in one and one["nll_nats"] > r["nll_nats"] - 6 * r["nll_se"]
    # what the latents carry, on the evaluated examples: KL + recon is the ELBO's NLL
    lat = r["latent"]
    assert lat["examples"] == 25 and 0 <= lat["active_units"] <= lat["latent_dims"] == 4
    assert lat["kl"] >= 0 and lat["recon"] + lat["kl"] > r["nll_nats"] - 6 * r["nll_se"]
    code, text, _ = run(capsys, "eval", str(out), "--examples", "25")
    assert code == 0 and "active units" in text
    code, _, err = run(capsys, "eval", str(out), "--examples", "0")
    assert code == 2 and "--examples must be in" in err
    code, _, err = run(capsys, "eval", str(out), "--importance-samples", "0")
    assert code == 2 and "--importance-samples must be" in err
