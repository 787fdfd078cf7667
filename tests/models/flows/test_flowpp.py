"""Flow++: the mixture-CDF coupling and the whole model invert with autograd-exact log-dets, the
variational dequantiser's log q is the density of its u, and its bound is a tighter lower bound."""

import math

import pytest
import torch
from test_flows import brute_force_logdet, randomise

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.flows.base import FlowModel
from unsup.models.flows.flowpp import (
    VariationalDequantizer,
    invert_mixture_logit_cdf,
    mixture_coupling,
    mixture_logit_cdf,
    mixture_logit_cdf_and_log_det,
    saturation,
)

LAYERS = {  # (mask, shape, parity, context channels)
    "channel": ("channel", (4, 3, 3), 0, 0),
    "channel-odd": ("channel", (4, 3, 3), 1, 0),
    "checkerboard": ("checkerboard", (2, 4, 4), 1, 0),
    "with-context": ("checkerboard", (1, 4, 4), 0, 3),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_mixture_coupling_inverts_and_its_logdet_matches_autograd(name):
    kind, shape, parity, ctx = LAYERS[name]
    torch.manual_seed(0)
    layer = randomise(mixture_coupling(kind, shape, parity, 8, 1, 3, context=ctx), 0.1).double()
    x = torch.randn(3, *shape, dtype=torch.double) * 4  # into the mixtures' tails too
    context = torch.randn(3, ctx, *shape[1:], dtype=torch.double) if ctx else None
    y, logdet = layer(x, context)
    moved = (1 - layer.mask).expand_as(x).bool()
    assert (y - x)[moved].abs().max() > 1  # not the identity
    assert torch.equal(y[~moved], x[~moved])  # the kept part passes unchanged
    assert (layer.inverse(y, context) - x).abs().max() < 1e-10
    if context is None:
        assert torch.allclose(logdet, brute_force_logdet(layer, x), atol=1e-8)
    else:
        for i in range(3):  # the Jacobian in x for a fixed context
            def f(v, i=i):
                return layer(v.view(1, *shape), context[i:i + 1])[0].flatten()
            jac = torch.autograd.functional.jacobian(f, x[i].flatten().clone())
            assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-8)


def test_a_new_coupling_is_near_the_identity_with_distinct_components():
    """Zero-initialised last layer but for the means: pi uniform, s = 1, a = b = 0 and the K means
    spread over [-1, 1], so y = logit(mean_k sigma(x - mu_k)): the identity for one component."""
    x = torch.randn(2, 4, 3, 3) * 5
    single = mixture_coupling("channel", (4, 3, 3), 0, 8, 1, 1)
    y, logdet = single(x)
    assert torch.allclose(y, x, atol=1e-5) and torch.allclose(logdet, torch.zeros(2), atol=1e-5)
    layer = mixture_coupling("channel", (4, 3, 3), 0, 8, 1, 4).double()
    x = x.double()
    _, _, (logits, mu, log_s) = layer._params(x * layer.mask, None)
    torch.testing.assert_close(mu[0, 0, 0, 0], torch.tensor([-1, -1 / 3, 1 / 3, 1.0], dtype=torch.double))
    assert not logits.any() and not log_s.any()
    y, _ = layer(x)
    moved = (1 - layer.mask).expand_as(x).bool()
    torch.testing.assert_close(y[moved], torch.logit(torch.sigmoid(x[moved, None] - mu[0, 0, 0, 0]).mean(-1)))


def test_the_components_learn_apart():
    """Equal components get equal gradients and never separate; spread ones do (after training on
    bimodal data every coupling's K scales differ)."""
    torch.manual_seed(0)
    layer = mixture_coupling("channel", (2, 1, 1), 0, 8, 1, 3)
    x = torch.cat([torch.randn(256, 2, 1, 1) * 0.3 - 2, torch.randn(256, 2, 1, 1) * 0.3 + 2])
    x[:, 0] = torch.randn(512, 1, 1)  # the kept half: noise the network reads
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(100):
        y, logdet = layer(x)
        loss = -(logdet - 0.5 * y.pow(2).flatten(1).sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, _, (logits, mu, log_s) = layer._params(x * layer.mask, None)
    for p in (logits, log_s):
        assert float(p[:, 1].std(-1).mean()) > 1e-2  # the transformed channel's components differ


def test_mixture_logit_is_stable_where_u_rounds_to_0_or_1():
    """u = F(x) is 0 or 1 in float32 beyond |x| ~ 17 (one component) but is never formed: the
    logit and its log-derivative stay finite and agree with float64, and inversion still works."""
    torch.manual_seed(0)
    x = torch.linspace(-60, 60, 241, dtype=torch.double)
    mix = (torch.randn(241, 3, dtype=torch.double), torch.randn(241, 3, dtype=torch.double),
           0.5 * torch.randn(241, 3, dtype=torch.double))
    t64, ld64 = mixture_logit_cdf_and_log_det(x, mix)
    t32, ld32 = mixture_logit_cdf_and_log_det(x.float(), tuple(p.float() for p in mix))
    assert torch.isfinite(t32).all() and torch.isfinite(ld32).all()
    assert torch.allclose(t32.double(), t64, rtol=1e-5, atol=1e-5)
    assert torch.allclose(ld32.double(), ld64, rtol=1e-4, atol=1e-4)
    assert (invert_mixture_logit_cdf(t64, mix) - x).abs().max() < 1e-9
    assert (invert_mixture_logit_cdf(t32, tuple(p.float() for p in mix)) - x.float()).abs().max() < 1e-4
    one = (torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1))  # F = sigma: logit F(x) = x
    assert torch.allclose(mixture_logit_cdf(torch.tensor([-80.0, 30.0, 80.0]), one),
                          torch.tensor([-80.0, 30.0, 80.0]))


def test_inverse_saturates_in_the_far_tail_instead_of_overflowing():
    """A trained Fashion-MNIST run sampled a coupling with log s = 432 and t = 2228, whose root
    x ~ 1e190 was inf in float32 (then NaN after a 1x1 convolution); log s > 709 overflowed the
    float64 bracket itself (inf * 0 = NaN at t = 0). The inverse is now the root clipped to
    [-X, X] (module docstring), exact below X, and a whole model decodes z of any norm."""
    bound = saturation(torch.float32)
    log_s = torch.tensor([432.0, 141.0, 800.0, -7.0, 0.0, 0.0]).unsqueeze(-1).expand(6, 3)
    mix = (torch.zeros(6, 3), torch.full((6, 3), 25.0), log_s)
    t = torch.tensor([2228.0, -215.0, 0.0, 1e30, 0.5 * bound, -3.0])
    x = invert_mixture_logit_cdf(t, mix)
    assert torch.equal(x[:4], torch.tensor([bound, -bound, 25.0, bound]))
    assert torch.allclose(x[4:], torch.tensor([0.5 * bound, 22.0]), rtol=1e-6)  # exact below X
    for options in MODELS[:2]:  # without and with attention (layer norm squares its input)
        model = _trained_once(DataSpec((1, 8, 8), 256), options)
        torch.manual_seed(0)
        for scale in (10.0, 1e4):
            v = model.flow.inverse(torch.randn(16, 1, 8, 8) * scale)
            assert torch.isfinite(v).all()
            s = model.postprocess(v)
            assert s.min() >= 0 and s.max() <= 255


def test_attention_lets_a_coupling_see_every_position():
    """Without attention the network's receptive field is two 3x3 convolutions (radius 2); with
    it, the parameters at one corner of an 8 x 8 map depend on the opposite corner."""
    for attention in (False, True):
        torch.manual_seed(0)
        layer = randomise(mixture_coupling("checkerboard", (1, 8, 8), 0, 8, 0, 2,
                                           attention=attention, heads=2), 0.1)
        x = torch.randn(1, 1, 8, 8, requires_grad=True)
        layer(x)[0][0, 0, 0, 1].backward()  # a transformed element (parity 0 keeps (0, 0))
        assert (x.grad[0, 0, 7, 7].abs() > 0) == attention


MODELS = [{"hidden": 8, "flow_steps": 2, "components": 3},
          {"hidden": 8, "flow_steps": 2, "components": 3, "attention": True, "heads": 2},
          {"hidden": 8, "flow_steps": 2, "num_levels": 1, "dequantization": "uniform"}]


def _trained_once(spec, options):
    torch.manual_seed(0)
    model = unsup.create("flow++", spec, **options)
    model.train()
    model.log_prob(torch.randint(spec.levels, (32, *spec.shape)))  # actnorm's initialisation
    return randomise(model, 0.05).eval()


@pytest.mark.parametrize("options", MODELS)
def test_the_model_inverts_to_1e4_in_float32(options):
    model = _trained_once(DataSpec((1, 8, 8), 256), options)
    x = torch.randint(256, (8, 1, 8, 8))
    v, _ = model.preprocess(x)
    z, _ = model.flow(v)
    assert z.shape == v.shape and z.dtype == torch.float32 and (z - v).abs().max() > 0.5
    assert (model.flow.inverse(z) - v).abs().max() < 1e-4
    assert torch.equal(model.decode(model.encode(x)), x)


@pytest.mark.parametrize("spec", [DataSpec((1, 4, 4), 4), DataSpec((3,), 4, None, "vector")])
def test_the_model_logdet_matches_autograd(spec):
    model = _trained_once(spec, {"hidden": 4, "flow_steps": 1, "components": 2}).double()
    v = torch.randn(2, *spec.shape, dtype=torch.double)
    z, logdet = model.flow(v)
    assert torch.allclose(model.flow.inverse(z), v, atol=1e-10)
    assert torch.allclose(logdet, brute_force_logdet(model.flow, v), atol=1e-8)


@pytest.mark.parametrize("shape", [(1, 4, 4), (1, 3, 3), (3, 1, 1)])  # squeezed, checkerboard, channel
def test_dequantiser_log_q_is_the_density_of_its_u(shape):
    """log q(u | x) = log N(eps) - log |det du/deps| with the Jacobian of eps -> u from autograd
    (couplings, squeeze and sigmoid included); u lies in (0, 1) even for extreme eps."""
    torch.manual_seed(0)
    deq = randomise(VariationalDequantizer(shape, 4, 2, 8, 1, 3), 0.1).double()
    x = torch.randint(4, (3, *shape))
    eps = torch.randn(3, *shape, dtype=torch.double)
    u, log_q = deq(x, eps)
    for i in range(3):
        def f(e, i=i):
            return deq(x[i:i + 1], e.view(1, *shape))[0].flatten()
        jac = torch.autograd.functional.jacobian(f, eps[i].flatten().clone())
        log_n = -0.5 * (eps[i].pow(2).sum() + eps[i].numel() * math.log(2 * math.pi))
        assert log_q[i].item() == pytest.approx((log_n - torch.linalg.slogdet(jac)[1]).item(), abs=1e-8)
    u32, log_q32 = deq.float()(x, torch.randn(3, *shape) * 30)
    assert 0 < u32.min() and u32.max() < 1 and torch.isfinite(log_q32).all()


def test_log_prob_counts_every_term_and_subtracts_log_q():
    """log_prob = log N(f(v)) + log|det df/dv| + log|dv/dx| (flow.py's uniform terms at the same u)
    - log q(u | x); uniform dequantisation has no q."""
    torch.manual_seed(0)
    model = _trained_once(DataSpec((1, 4, 4), 256), {"hidden": 4, "flow_steps": 1, "components": 2})
    x = torch.randint(256, (3, 1, 4, 4))
    torch.manual_seed(1)
    lp = model.log_prob(x)
    torch.manual_seed(1)
    u, log_q = model.dequantizer(x)
    v, ld_pre = FlowModel.preprocess(model, x, u)
    z, ld = model.flow(v)
    assert torch.allclose(lp, model.log_prior(z) + ld + ld_pre - log_q, atol=1e-4)
    assert (log_q.abs() > 1).all() and not model.exact_likelihood
    uniform = unsup.create("flow++", DataSpec((1, 4, 4), 256), hidden=4, dequantization="uniform")
    assert uniform.dequantizer is None
    assert unsup.create("flow++", DataSpec((2,), None, None, "vector"), hidden=4).dequantizer is None


def test_variational_bound_is_below_the_discrete_likelihood_and_beats_uniform_after_training():
    """2-dim, 2-level data: P(x) = int p(x + u) du by the midpoint rule on each cell. Both bounds
    must lie below log P(x); training q alone (the flow fixed) for 100 steps must make the
    variational bound tighter than the uniform one, whose gap KL(U || p(u | x)) it cannot change."""
    torch.manual_seed(0)
    model = unsup.create("flow++", DataSpec((2,), 2, None, "vector"), flow_steps=2, hidden=8, blocks=0,
                         components=3, dequant_steps=2)
    randomise(model.flow, 0.2)  # a flow far from uniform within the cells
    model = model.double().eval()  # eval: actnorm keeps its (random) parameters
    n = 64
    g = (torch.arange(n, dtype=torch.double) + 0.5) / n
    u = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2).repeat(4, 1)
    xs = torch.tensor([(0, 0), (0, 1), (1, 0), (1, 1)])
    with torch.no_grad():
        v, ld_pre = model.preprocess(xs.repeat_interleave(n * n, 0), u)  # a given u: no q
        z, ld = model.flow(v)
        log_p = (model.log_prior(z) + ld + ld_pre).view(4, n * n)  # log p(x + u), 1/L^D included
    log_px = torch.logsumexp(log_p, 1) - math.log(n * n)
    uniform_bound = log_p.mean(1)
    assert 0.9 < log_px.exp().sum() < 1  # the logit box loses a little mass (flow.py)

    def variational_bound(draws=2048):
        with torch.no_grad():
            return model.log_prob(xs.repeat_interleave(draws, 0)).view(4, draws).mean(1)

    assert torch.all(uniform_bound < log_px) and torch.all(variational_bound() < log_px)
    opt = torch.optim.Adam(model.dequantizer.parameters(), lr=2e-2)
    batch = xs.repeat_interleave(32, 0)
    for _ in range(100):
        opt.zero_grad()
        (-model.log_prob(batch).mean()).backward()
        opt.step()
    trained = variational_bound()
    assert torch.all(trained < log_px)
    assert torch.all(trained > uniform_bound + 0.02)


def test_default_model_on_28x28_images():
    torch.manual_seed(0)
    model = unsup.create("flow++", DataSpec((1, 28, 28), 256))
    x = torch.randint(256, (2, 1, 28, 28))
    out = model.loss({"x": x})
    assert torch.isfinite(out["loss"]) and 4 < out["bpd"] < 12
    model.eval()
    v, _ = model.preprocess(x)
    assert (model.flow.inverse(model.flow(v)[0]) - v).abs().max() < 1e-4
    s = model.sample(2)
    assert s.shape == (2, 1, 28, 28) and s.min() >= 0 and s.max() <= 255


def test_errors_name_what_is_expected():
    spec = DataSpec((1, 8, 8), 256)
    with pytest.raises(ConfigError, match="fewer levels"):
        unsup.create("flow++", DataSpec((1, 28, 28), 256), num_levels=3)
    with pytest.raises(ConfigError, match="variational, uniform"):
        unsup.create("flow++", spec, dequantization="gaussian")
    with pytest.raises(ConfigError, match="divisible by heads"):
        unsup.create("flow++", spec, attention=True, hidden=6, heads=4)
    with pytest.raises(ConfigError, match="components"):
        unsup.create("flow++", spec, components=0)
    with pytest.raises(ConfigError, match=">= 2 dimensions"):
        unsup.create("flow++", DataSpec((1,), 100, None, "vector"))
    with pytest.raises(ConfigError, match="image or vector"):
        unsup.create("flow++", DataSpec((16,), 256, None, "sequence"))
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("flow++", spec, conditional=True)
    with pytest.raises(ConfigError, match="no option"):
        unsup.create("flow++", spec, dequant_stpes=2)
