"""Uniform-base flows (cdf-flow, ar-flow) and RealNVP on vectors: normalisation, exact discrete
probabilities, sampling by bisection, triangular Jacobians and log-determinants."""

import numpy as np
import pytest
import torch
from model_checks import all_images, assert_training_reduces_loss
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.flows.cdf_flow import invert_mixture_cdf, mixture_cdf, mixture_log_mass
from unsup.models.flows.layers import BatchNormFlow, Coupling

CONT1 = DataSpec((1,), None, None, "vector")
CONT2 = DataSpec((2,), None, None, "vector")


def randomised(name, spec, **options):
    """A model far from its initialisation (mixtures spread over and beyond [0, 1], different
    widths; ar-flow: an MLP whose output depends on x1), seeded."""
    torch.manual_seed(0)
    model = unsup.create(name, spec, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        params = [model.params] if name == "cdf-flow" else [model.params1]
        for p in params:  # (..., 3, K): weights, means, log sigmas
            p[..., 1, :] = torch.rand_like(p[..., 1, :]) * 1.4 - 0.2
            p[..., 2, :] = torch.empty_like(p[..., 2, :]).uniform_(-3.0, -1.2)
    return model.eval()


def _trapezoid_1d(model, lo=-3.0, hi=4.0, n=20001):
    g = torch.linspace(lo, hi, n, dtype=torch.float64)
    with torch.no_grad():
        p = model.log_prob(g.float()[:, None]).double().exp()
    return g, p


# -------------------------------------------------------------------------- normalisation

def test_cdf_flow_density_integrates_to_one_and_is_the_derivative_of_its_cdf():
    model = randomised("cdf-flow", CONT1, num_components=4)
    g, p = _trapezoid_1d(model)
    assert torch.trapezoid(p, g).item() == pytest.approx(1.0, abs=1e-4)
    # log p(x) = log |dz/dx|: the change of variables with a uniform base, checked by autograd
    x = torch.linspace(-0.3, 1.3, 9, requires_grad=True)
    (dz,) = torch.autograd.grad(mixture_cdf(x[:, None], model.mixture())[:, 0].sum(), x)
    assert torch.allclose(dz.log(), model.log_prob(x.detach()[:, None]), atol=1e-4)
    z = model.encode(x.detach()[:, None])
    assert z.min() > 0 and z.max() < 1


@pytest.mark.parametrize("name", ["ar-flow", "cdf-flow"])
def test_2d_density_integrates_to_one(name):
    """On a 500 x 500 grid; for ar-flow also each conditional p(x2 | x1) integrates to one, so
    integrating x2 out gives the marginal F1'(x1)."""
    model = randomised(name, CONT2, hidden=[16], num_components=3) if name == "ar-flow" else \
        randomised(name, CONT2, num_components=3)
    g = torch.linspace(-2.5, 3.5, 500, dtype=torch.float64)
    a, b = torch.meshgrid(g, g, indexing="ij")
    xy = torch.stack([a.reshape(-1), b.reshape(-1)], 1).float()
    with torch.no_grad():
        p = model.log_prob(xy).double().exp().view(500, 500)  # [i, j] = p(g_i, g_j)
    marginal = torch.trapezoid(p, g, dim=1)  # integral over x2 at each x1
    assert torch.trapezoid(marginal, g).item() == pytest.approx(1.0, abs=1e-3)
    if name == "ar-flow":
        with torch.no_grad():
            p1 = torch.exp(model.coordinate_log_likelihood(g.float(), model.mixture1())).double()
        assert torch.allclose(marginal, p1, atol=2e-3)


def test_discrete_probabilities_are_exact_cdf_differences_and_sum_to_one():
    spec = DataSpec((1,), 100, None, "vector")
    model = randomised("cdf-flow", spec, num_components=5)  # some mass outside [0, 1]: the tails
    x = torch.arange(100)[:, None]
    with torch.no_grad():
        logp = model.log_prob(x).double()
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    # interior bins: F((x+1)/L) - F(x/L), computed directly in float64
    mix = tuple(t.double() for t in model.mixture())
    edges = torch.arange(101, dtype=torch.float64) / 100
    cdf = mixture_cdf(edges[:, None], mix)[:, 0]  # (101,)
    direct = cdf[1:] - cdf[:-1]
    direct[0], direct[-1] = cdf[1], 1 - cdf[-2]  # the end bins take the tails
    assert torch.allclose(logp.exp(), direct, atol=1e-6, rtol=1e-4)


def test_ar_flow_discrete_probabilities_sum_to_one_over_all_pairs():
    spec = DataSpec((2,), 7, None, "vector")
    model = randomised("ar-flow", spec, hidden=[16], num_components=3)
    with torch.no_grad():
        p = model.log_prob(all_images((2,), 7)).double().exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_far_tail_bins_stay_finite_instead_of_underflowing():
    """45 sigma from the only component, Phi(-45) ~ 1e-443 underflows even in float64; the
    log-space mass stays finite, ~ log Phi(-45), and so does its gradient."""
    mu = torch.tensor([0.5], requires_grad=True)
    mix = (torch.zeros(1), mu, torch.tensor([0.01]).log())
    lo, hi = torch.tensor([0.95]), torch.tensor([0.96])
    no = torch.tensor([False])
    logp = mixture_log_mass(lo, hi, mix, no, no)
    assert torch.isfinite(logp).all()
    assert logp.item() == pytest.approx(torch.special.log_ndtr(torch.tensor(-45.0)).item(), rel=1e-3)
    logp.sum().backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.item() > 0  # pulled towards the data
    left = mixture_log_mass(torch.tensor([0.04]), torch.tensor([0.05]), mix, no, no)
    assert left.item() == pytest.approx(logp.item(), rel=1e-3)  # the mirror image, left tail


# ------------------------------------------------------------------------------- sampling

def test_bisection_inverts_the_mixture_cdf_to_1e6():
    model = randomised("cdf-flow", DataSpec((3,), None, None, "vector"), num_components=5)
    mix = tuple(t.double() for t in model.mixture())
    u = torch.rand(2000, 3, dtype=torch.float64)
    v = invert_mixture_cdf(u, mix)
    assert torch.allclose(mixture_cdf(v, mix), u, atol=1e-5)
    # the root is bracketed to 1e-6: F at v -/+ 1e-6 lies on either side of u
    assert torch.all(mixture_cdf(v - 1e-6, mix) <= u) and torch.all(mixture_cdf(v + 1e-6, mix) >= u)
    x = model.decode(u)
    assert x.dtype == torch.float32 and torch.allclose(model.encode(x).double(), u, atol=1e-5)


def test_continuous_samples_follow_the_density_ks_test():
    """KS test of 5000 samples against the CDF obtained by integrating exp(log_prob) numerically
    (not the model's own CDF code)."""
    model = randomised("cdf-flow", CONT1, num_components=4)
    g, p = _trapezoid_1d(model)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64),
                     torch.cumsum(0.5 * (p[1:] + p[:-1]) * (g[1:] - g[:-1]), 0)])
    torch.manual_seed(1)
    s = model.sample(5000)[:, 0].double().numpy()
    ks = stats.kstest(s, lambda t: np.interp(t, g.numpy(), cdf.numpy()))
    assert ks.pvalue > 0.01


@pytest.mark.parametrize("name, levels", [("cdf-flow", 30), ("ar-flow", 5)])
def test_discrete_samples_follow_the_probabilities_chi_square(name, levels):
    d = 1 if name == "cdf-flow" else 2
    spec = DataSpec((d,), levels, None, "vector")
    options = {"hidden": [16]} if name == "ar-flow" else {}
    model = randomised(name, spec, num_components=3, **options)
    cells = all_images((d,), levels)
    with torch.no_grad():
        p = model.log_prob(cells).double().exp()
    torch.manual_seed(2)
    s = model.sample(20000)
    assert s.dtype == torch.long and s.min() >= 0 and s.max() < levels
    index = s[:, 0] * levels + s[:, 1] if d == 2 else s[:, 0]
    counts = torch.bincount(index, minlength=levels**d).double()
    expected = p * len(s)
    big = expected >= 5  # cells with few expected draws are lumped together
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    chi2 = stats.chisquare(obs[keep].numpy(), exp[keep].numpy() * obs.sum().item() / exp[keep].sum().item())
    assert chi2.pvalue > 0.001


def test_discrete_encode_decode_round_trip():
    model = randomised("ar-flow", DataSpec((2,), 20, None, "vector"), hidden=[16], num_components=3)
    x = all_images((2,), 20)
    z = model.encode(x)
    assert z.min() > 0 and z.max() < 1
    assert torch.equal(model.decode(z), x)  # the bin centre's code comes back to its bin


# ----------------------------------------------------------------------------- structure

def test_ar_flow_jacobian_is_triangular_and_its_logdet_is_the_log_density():
    model = randomised("ar-flow", CONT2, hidden=[16], num_components=3)
    x = torch.rand(6, 2) * 1.2 - 0.1
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: model.forward_map(v[None])[0], xi)
        assert jac[0, 1].item() == 0.0  # z1 does not depend on x2
        assert abs(jac[1, 0].item()) > 1e-4  # z2 depends on x1
        logdet = torch.log(jac[0, 0]) + torch.log(jac[1, 1])
        assert logdet.item() == pytest.approx(model.log_prob(xi[None]).item(), abs=1e-4)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    x = torch.cat([torch.randint(20, 35, (64, 1)), torch.randint(70, 90, (64, 1))])
    model = unsup.create("cdf-flow", DataSpec((1,), 100, None, "vector"), num_components=3)
    assert_training_reduces_loss(model, {"x": x}, lr=3e-2, steps=20)
    t = torch.rand(128) * 3.14
    moons = torch.stack([0.5 + 0.3 * t.cos(), 0.5 + 0.3 * t.sin()], 1) + 0.02 * torch.randn(128, 2)
    model = unsup.create("ar-flow", DataSpec((2,), None, 2, "vector"), hidden=[16])
    y = torch.zeros(128, dtype=torch.long)  # labels of labelled data are ignored
    assert_training_reduces_loss(model, {"x": moons, "y": y}, lr=1e-2, steps=20)


# ------------------------------------------------------------------------ RealNVP, vectors

def _realnvp_2d(**options):
    torch.manual_seed(0)
    model = unsup.create("realnvp", CONT2, hidden=16, num_couplings=4, **options)
    model.train()
    model.log_prob(torch.randn(64, 2))  # batch-norm running statistics
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def test_realnvp_on_vectors_alternates_couplings_inverts_and_logdet_matches_autograd():
    model = _realnvp_2d().double()
    couplings = [m for m in model.flow.layers if isinstance(m, Coupling)]
    assert len(couplings) == 4 and sum(isinstance(m, BatchNormFlow) for m in model.flow.layers) == 4
    assert [c.mask.tolist() for c in couplings] == [[1, 0], [0, 1]] * 2  # x1 | x2, then x2 | x1
    assert len(_realnvp_2d(batch_norm=False).flow.layers) == 4
    v = torch.randn(5, 2, dtype=torch.double)
    z, logdet = model.flow(v)
    assert torch.allclose(model.flow.inverse(z), v, atol=1e-10)
    for vi, ld in zip(v, logdet, strict=True):
        jac = torch.autograd.functional.jacobian(lambda t: model.flow(t[None])[0][0], vi)
        assert ld.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-8)


def test_realnvp_2d_density_integrates_to_one_and_samples():
    model = _realnvp_2d()
    g = torch.linspace(-20, 20, 801)  # randomised: heavy tails (1.5% of samples beyond |9|)
    xy = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        mass = model.log_prob(xy).exp().sum() * (g[1] - g[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=2e-3)
    s = model.sample(7)
    assert s.shape == (7, 2) and s.dtype == torch.float32 and torch.isfinite(s).all()


# ---------------------------------------------------------------------------------- errors

def test_errors_name_what_is_expected():
    with pytest.raises(ConfigError, match="vector"):
        unsup.create("cdf-flow", DataSpec((1, 4, 4), 256))
    with pytest.raises(ConfigError, match="2-D data"):
        unsup.create("ar-flow", DataSpec((3,), None, None, "vector"))
    with pytest.raises(ConfigError, match="num_components >= 1"):
        unsup.create("cdf-flow", CONT1, num_components=0)
    with pytest.raises(ConfigError, match="positive layer widths"):
        unsup.create("ar-flow", CONT2, hidden=[0])
    with pytest.raises(ConfigError, match=">= 2 dimensions"):
        unsup.create("realnvp", CONT1)
    with pytest.raises(ConfigError, match="num_couplings >= 1"):
        unsup.create("realnvp", CONT2, num_couplings=0)
    model = unsup.create("cdf-flow", DataSpec((1,), 100, None, "vector"))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(3, temperature=0.5)
    with pytest.raises(ConfigError, match="not class-conditional"):
        model.sample(2, y=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"\[0, 99\]"):
        model.log_prob(torch.tensor([[100]]))
    with pytest.raises(ConfigError, match="shape"):
        unsup.create("ar-flow", CONT2).log_prob(torch.zeros(4, 3))
