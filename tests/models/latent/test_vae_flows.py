"""VAE with a MAF prior and VAE with an IAF posterior: the densities are the change-of-variables
ones, the IAF steps are autoregressive, the importance-sampled marginal normalises, the bounds are
ordered, and training, sampling, errors and checkpoints behave."""

import math

import pytest
import torch
from model_checks import assert_marginal_sums_to_one, assert_training_reduces_loss, fit, iwae_bound_means
from test_vae import BINARY_VEC, FLOAT_VEC, SMALL_IMAGE, binary_patterns

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for

SMALL = {"vae-flow-prior": {"prior_hidden": 16}, "vae-iaf": {"iaf_hidden": 16, "context": 8}}
MODELS = list(SMALL)


def small(name: str, spec: DataSpec = BINARY_VEC, **options):
    return unsup.create(name, spec, **{"hidden": [16], **SMALL[name], **options})


def randomise(module: torch.nn.Module, std: float = 0.3, seed: int = 123) -> torch.nn.Module:
    """Perturb every parameter (the MADEs' zero-initialised output layers included)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module


def log_normal(u: torch.Tensor) -> torch.Tensor:
    return -0.5 * (u.pow(2) + math.log(2 * math.pi)).sum(-1)


@pytest.fixture(scope="module")
def trained():
    """Each model trained briefly on 8-bit patterns with a 2-D latent cause (cached per module)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            model = small(name, z_dim=2, hidden=[32])
            cache[name] = fit(model, binary_patterns(512, seed=1), steps=120, batch=64)
        return cache[name]

    return get


# ------------------------------------------------------------------ change of variables


def test_flow_prior_log_prob_is_the_change_of_variables():
    model = small("vae-flow-prior", z_dim=3, prior_layers=2)
    flow = randomise(model.prior_flow).double()
    torch.manual_seed(1)
    for z in torch.randn(3, 3, dtype=torch.double):
        u = flow(z[None])[0][0]
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], z)  # du/dz
        expected = log_normal(u) + torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(model.prior_log_prob(z), expected, atol=1e-10, rtol=0)
    # batched over (k, B) like log_weights, and sampling inverts the flow with the scaled noise
    zs = torch.randn(2, 4, 3, dtype=torch.double)
    flat = torch.stack([model.prior_log_prob(v) for v in zs.reshape(8, 3)]).view(2, 4)
    torch.testing.assert_close(model.prior_log_prob(zs), flat)
    torch.manual_seed(2)
    z = model.sample_prior(5, temperature=0.5)
    torch.manual_seed(2)
    u = torch.randn(5, 3, dtype=torch.double) * 0.5
    torch.testing.assert_close(flow(z)[0], u, atol=1e-8, rtol=0)


def iaf_pieces(z_dim: int, steps: int):
    """A randomised IAF-VAE's steps in double precision and one example's encoder outputs."""
    model = small("vae-iaf", z_dim=z_dim, iaf_steps=steps)
    randomise(model)
    with torch.no_grad():
        mu, log_s, h = (t.double() for t in model.encoder_outputs(binary_patterns(1, seed=3)))
    model.steps.double()
    return model, mu, log_s, h


def test_iaf_posterior_log_prob_is_the_change_of_variables():
    model, mu, log_s, h = iaf_pieces(z_dim=4, steps=2)
    torch.manual_seed(4)
    for eps in torch.randn(3, 4, dtype=torch.double):
        def f(e):
            return model.transform(e[None, None], mu, log_s, h)[0][0, 0]
        jac = torch.autograd.functional.jacobian(f, eps)  # dz_T / d eps
        z, logdet = model.transform(eps[None, None], mu, log_s, h)
        sign, brute = torch.linalg.slogdet(jac)
        assert sign > 0
        torch.testing.assert_close(logdet[0, 0], brute, atol=1e-10, rtol=0)
        torch.testing.assert_close(log_normal(eps) - logdet[0, 0], log_normal(eps) - brute)
    # draw_posterior's log q is log N(eps) - log|det| for the eps it drew (float model)
    model = randomise(small("vae-iaf", z_dim=4))
    x = binary_patterns(3, seed=5)
    torch.manual_seed(6)
    z, log_q = model.draw_posterior(x, 2)
    torch.manual_seed(6)
    eps = torch.randn(2, 3, 4)
    mu, log_s, h = model.encoder_outputs(x)
    z2, logdet = model.transform(eps, mu, log_s, h)
    torch.testing.assert_close(z, z2)
    torch.testing.assert_close(log_q, log_normal(eps) - logdet)


def test_iaf_steps_are_autoregressive_and_alternate_orderings():
    model, mu, log_s, h = iaf_pieces(z_dim=5, steps=2)
    torch.manual_seed(7)
    z = torch.randn(5, dtype=torch.double)
    idx = torch.arange(5)
    upper = idx[None, :] > idx[:, None]  # [d, j]: j after d in the natural order
    for t, step in enumerate(model.steps):
        jac = torch.autograd.functional.jacobian(lambda v, s=step: s(v[None], h)[0][0], z)
        later = upper if t % 2 == 0 else upper.T  # step 1 reads the reversed order
        assert torch.all(jac[later] == 0)
        assert jac[later.T].abs().sum() > 0  # earlier dimensions do matter
        m, s = step.made(z[None], h)
        sigma = torch.sigmoid(s + 1.0)[0]
        torch.testing.assert_close(jac.diagonal(), sigma)  # d z_t / d z_{t-1} diagonal = sigma_t
        assert step(z[None], h + 1.0)[0].sub(step(z[None], h)[0]).abs().max() > 1e-3  # uses h
    full = torch.autograd.functional.jacobian(
        lambda e: model.transform(e[None, None], mu, log_s, h)[0][0, 0], z)
    assert full[upper].abs().min() > 0 and full[upper.T].abs().min() > 0  # two steps: dense
    one, mu, log_s, h = iaf_pieces(z_dim=5, steps=1)  # one step: lower triangular in eps
    jac = torch.autograd.functional.jacobian(lambda e: one.transform(e[None, None], mu, log_s, h)[0][0, 0], z)
    assert torch.all(jac[upper] == 0) and jac[upper.T].abs().sum() > 0


# ----------------------------------------------------------------------- trained models


@pytest.mark.parametrize("name", MODELS)
def test_marginal_of_binary_model_sums_to_one(trained, name):
    """exp(log p^) is an unbiased estimate of p(x): summed over all 256 vectors it is ~1."""
    model = trained(name)
    torch.manual_seed(8)
    assert model.loss({"x": binary_patterns(256, seed=2)})["kl"] > 0.5  # the latents are in use
    assert_marginal_sums_to_one(model, (8,), k=1000)


@pytest.mark.parametrize("name", MODELS)
def test_elbo_below_iwae_k_below_estimate(trained, name):
    model = trained(name)
    x = binary_patterns(100, seed=9)  # held out
    torch.manual_seed(10)
    repeats = 8
    means = iwae_bound_means(model, x, repeats)
    lp, se = model.log_prob_with_se(x, k=1000)
    assert means[50].mean() <= lp.mean() + 2 * se.mean()


# ------------------------------------------------------------------------------ training


@pytest.mark.parametrize("name,spec,opts", [
    ("vae-flow-prior", BINARY_VEC, {}),
    ("vae-flow-prior", FLOAT_VEC, {"k": 3, "prior_layers": 1}),
    ("vae-iaf", BINARY_VEC, {"free_bits": 0.5}),
    ("vae-iaf", SMALL_IMAGE, {"arch": "conv", "channels": 4, "z_dim": 4, "iaf_steps": 1}),
])
def test_training_reduces_loss(name, spec, opts):
    torch.manual_seed(11)
    model = small(name, spec, **opts)
    if spec.levels is None:
        x = torch.randn(64, *spec.shape)
    else:
        x = torch.randint(0, spec.levels, (64, *spec.shape))
    assert set(model.loss({"x": x})) >= {"loss", "bpd", "kl", "recon"}
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=20)


@pytest.mark.parametrize("name", MODELS)
def test_free_bits_floors_the_whole_sampled_kl(name):
    """Without a per-dimension KL, free_bits = lambda floors the total: loss + (lambda - KL) / D."""
    x = binary_patterns(32, seed=12)
    out = {}
    for lam in (0.0, 1000.0):
        torch.manual_seed(13)
        model = randomise(small(name, z_dim=3, free_bits=lam))
        torch.manual_seed(14)
        out[lam] = model.loss({"x": x})
    kl = out[0.0]["kl"]
    assert 0 < kl < 1000
    expected = out[0.0]["loss"] + (1000.0 - kl) / 8
    torch.testing.assert_close(out[1000.0]["loss"], expected, atol=1e-4, rtol=0)


# ------------------------------------------------------------------- samples and codes


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("spec,dtype", [(BINARY_VEC, torch.long), (SMALL_IMAGE, torch.long),
                                        (FLOAT_VEC, torch.float)])
def test_samples_and_codes(name, spec, dtype):
    torch.manual_seed(15)
    model = randomise(small(name, spec, z_dim=2)).eval()
    for t in (1.0, 0.5, 0.0):
        s = model.sample(5, temperature=t)
        assert s.shape == (5, *spec.shape) and s.dtype == dtype
        if spec.levels is not None:
            assert s.min() >= 0 and s.max() < spec.levels
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0))
    z0 = model.sample_prior(4, temperature=0)
    assert z0.shape == (4, 2) and torch.allclose(z0, z0[:1].expand(4, 2))
    x = model.sample(6)
    assert model.encode(x).shape == (6, 2)
    assert torch.equal(model.encode(x), model.encode(x))  # a deterministic code
    assert model.reconstruct(x).shape == x.shape
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, *spec.shape)
    with pytest.raises(ConfigError, match="not class-conditional"):
        model.sample(2, y=torch.zeros(2, dtype=torch.long))


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name,opts,match", [
    ("vae-flow-prior", {"prior_layers": 0}, "prior_layers=0"),
    ("vae-flow-prior", {"prior_hidden": -4}, "prior_hidden=-4"),
    ("vae-flow-prior", {"prior_layers": 1.5}, "integers >= 1"),
    ("vae-flow-prior", {"prior_layers": True}, "integers >= 1"),
    ("vae-iaf", {"iaf_steps": 0}, "iaf_steps=0"),
    ("vae-iaf", {"iaf_hidden": 0}, "iaf_hidden=0"),
    ("vae-iaf", {"context": 0}, "context=0"),
    ("vae-iaf", {"decoder": "gaussian"}, "continuous data"),  # the VAE's own checks still run
    ("vae-flow-prior", {"k": 3, "free_bits": 1.0}, "use k = 1"),
    ("vae-iaf", {"no_such_option": 1}, "no option"),
])
def test_bad_options_raise(name, opts, match):
    with pytest.raises(ConfigError, match=match):
        small(name, **opts)


def test_presets_and_flags():
    prior = config_for("vae-flow-prior", "paper")
    iaf = config_for("vae-iaf", "paper")
    assert (prior.prior_layers, prior.z_dim, iaf.iaf_steps, iaf.z_dim) == (5, 50, 2, 32)
    assert unsup.create("vae-iaf", SMALL_IMAGE, preset="paper").z_dim == 32  # the conv arch builds
    for name in MODELS:
        model = small(name)
        assert not model.analytic_kl and not model.exact_likelihood
    assert unsup.create("vae-flow-prior", BINARY_VEC).config.prior_layers == 2
    assert unsup.create("vae-iaf", BINARY_VEC).config.iaf_steps == 2


# ------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip_reproduces_log_prob(name):
    torch.manual_seed(16)
    model = randomise(small(name, z_dim=3, eval_samples=50)).eval()
    torch.manual_seed(17)
    clone = small(name, z_dim=3, eval_samples=50).eval()
    x = binary_patterns(10, seed=18)
    torch.manual_seed(19)
    before = model.log_prob(x)
    clone.load_state_dict(model.state_dict())
    torch.manual_seed(19)
    assert torch.equal(clone.log_prob(x), before)
    torch.manual_seed(19)
    assert not torch.equal(small(name, z_dim=3, eval_samples=50).eval().log_prob(x), before)
