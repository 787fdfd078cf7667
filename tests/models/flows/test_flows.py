"""Flows: every layer and every model inverts, and every log-determinant equals autograd's."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.flows.layers import (
    ActNorm,
    BatchNormFlow,
    Coupling,
    InvertibleConv1x1,
    MLPCoupling,
    MultiScale,
    ResNetCoupling,
    Sequential,
    Squeeze,
    coupling_mask,
)
from unsup.models.flows.nice import Flatten


def randomise(module: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Replace zero initialisations so that every layer is far from the identity."""
    torch.manual_seed(123)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module


def brute_force_logdet(flow, x: torch.Tensor) -> torch.Tensor:
    """log |det J| of ``flow`` at each example of ``x``, from the full Jacobian (float64)."""
    out = []
    for xi in x:
        def f(v, xi=xi):
            return flow(v.view(1, *xi.shape))[0].flatten()
        jac = torch.autograd.functional.jacobian(f, xi.flatten().clone())
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def image_coupling(kind, shape, parity, additive=False):
    mask = coupling_mask(kind, shape, parity, seed=3)
    net = ResNetCoupling(Coupling.net_channels(shape[0], mask), 2 * shape[0], 8, 1)
    return Coupling(mask, net, additive=additive)


LAYERS = {
    "checkerboard": lambda: image_coupling("checkerboard", (2, 4, 4), 0),
    "checkerboard-odd": lambda: image_coupling("checkerboard", (2, 4, 4), 1),
    "channel": lambda: image_coupling("channel", (2, 4, 4), 1),
    "random": lambda: image_coupling("random", (2, 4, 4), 0),
    "additive": lambda: image_coupling("checkerboard", (2, 4, 4), 0, additive=True),
    "vector-coupling": lambda: Coupling(coupling_mask("checkerboard", (6,), 1), MLPCoupling(6, 8, 2)),
    "actnorm": lambda: ActNorm(2),
    "invconv": lambda: InvertibleConv1x1(2, seed=1),
    "batchnorm": lambda: BatchNormFlow(2),
    "squeeze": lambda: Squeeze(),
    "multiscale": lambda: MultiScale(Sequential(image_coupling("channel", (8, 2, 2), 0)),
                                     Sequential(image_coupling("checkerboard", (4, 2, 2), 1))),
    "flatten": lambda: Flatten((2, 4, 4)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_inverts_and_its_logdet_matches_autograd(name):
    torch.manual_seed(0)
    layer = randomise(LAYERS[name]()).double()
    x = torch.randn(3, *((6,) if name == "vector-coupling" else (2, 4, 4)), dtype=torch.double)
    if name in ("actnorm", "batchnorm"):
        layer.train()
        layer(torch.randn(16, 2, 4, 4, dtype=torch.double) * 3 + 1)  # data init / running stats
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.2)
    layer.eval()  # batch norm: a fixed affine map, the one that is inverted at sampling
    z, logdet = layer(x)
    assert logdet.shape == (3,)
    assert torch.allclose(layer.inverse(z), x, atol=1e-10)
    if name == "flatten":
        assert torch.equal(logdet, torch.zeros(3, dtype=torch.double))
        return
    assert torch.allclose(logdet, brute_force_logdet(layer, x), atol=1e-8)


def test_actnorm_initialises_from_the_first_batch():
    torch.manual_seed(0)
    layer = ActNorm(3)
    x = torch.randn(64, 3, 5, 5) * torch.tensor([1.0, 4.0, 0.5]).view(1, 3, 1, 1) + 2
    y, _ = layer(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    before = layer.bias.clone()
    layer(x * 10)  # later batches do not re-initialise
    assert torch.equal(layer.bias, before) and bool(layer.initialized)


@pytest.mark.parametrize("actnorm_init, zero_init", [(True, True), (False, True), (True, False)])
def test_glow_starts_standardised_with_identity_couplings_unless_ablated(actnorm_init, zero_init):
    """Glow's two initialisations (Kingma & Dhariwal 2018, Sec. 3.1 and 3.3), seen through the
    first training batch: every actnorm's output has zero mean and unit variance per channel and
    every affine coupling returns its input. ``actnorm_init=False`` leaves the actnorms the
    identity; ``zero_init=False`` makes the couplings move their input from the start."""
    torch.manual_seed(0)
    model = unsup.create("glow", DataSpec((1, 8, 8), 256), hidden=8, flow_steps=2,
                         actnorm_init=actnorm_init, zero_init=zero_init)
    seen = {}
    for m in model.modules():
        if isinstance(m, ActNorm | Coupling):
            m.register_forward_hook(lambda m, args, out: seen.update({m: (args[0], out[0])}))
    model.train()
    model.log_prob(torch.randint(256, (64, 1, 8, 8)))
    actnorms = [v for m, v in seen.items() if isinstance(m, ActNorm)]
    couplings = [v for m, v in seen.items() if isinstance(m, Coupling)]
    assert len(actnorms) == len(couplings) == 4  # 2 levels x 2 steps
    for x, y in actnorms:
        if actnorm_init:
            assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(y.shape[1]), atol=1e-4)
            assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(y.shape[1]), atol=1e-3)
        else:
            assert torch.equal(y, x)
    for x, y in couplings:
        assert torch.allclose(y, x, atol=1e-6) == zero_init


def test_masks_partition_and_alternate():
    for kind, shape in [("checkerboard", (1, 4, 6)), ("channel", (4, 3, 3)), ("random", (1, 6, 6)),
                        ("checkerboard", (7,)), ("channel", (7,)), ("random", (9,))]:
        m0, m1 = coupling_mask(kind, shape, 0, seed=1), coupling_mask(kind, shape, 1, seed=1)
        full = torch.broadcast_to(m0 + m1, shape if len(shape) == 1 else
                                  (shape[0] if kind == "channel" else 1, *shape[1:]))
        assert torch.all(full == 1), kind  # parities are complements: everything gets transformed
    checker = coupling_mask("checkerboard", (1, 4, 4), 0)[0]
    assert checker[0, 0] == 1 and checker[0, 1] == 0 and checker[1, 0] == 0
    rand = coupling_mask("random", (1, 28, 28), 0, seed=0)
    assert rand.sum() == 28 * 28 // 2
    assert not torch.equal(rand, coupling_mask("checkerboard", (1, 28, 28), 0))
    with pytest.raises(ConfigError, match="checkerboard, channel, random"):
        coupling_mask("diagonal", (1, 4, 4), 0)
    with pytest.raises(ConfigError, match="squeeze first"):
        coupling_mask("channel", (1, 4, 4), 0)


MODELS = [("realnvp", {"hidden": 8, "blocks": 1}),
          ("realnvp", {"hidden": 8, "blocks": 1, "mask": "random", "batch_norm": False}),
          ("glow", {"hidden": 8, "flow_steps": 2}),
          ("glow", {"hidden": 8, "flow_steps": 2, "additive": True, "num_levels": 1}),
          ("glow", {"hidden": 8, "flow_steps": 2, "actnorm_init": False, "zero_init": False}),
          ("nice", {"hidden": 8, "layers": 1})]
# Flow++'s own inversion and log-det tests are in test_flowpp.py; the shared behaviour is here.
FLOWPP = [("flow++", {"hidden": 8, "flow_steps": 2, "components": 3}),
          ("flow++", {"hidden": 8, "flow_steps": 2, "components": 3, "attention": True, "heads": 2}),
          ("flow++", {"hidden": 8, "flow_steps": 2, "num_levels": 1, "dequantization": "uniform"})]


def _trained_once(name, options, spec):
    torch.manual_seed(0)
    model = unsup.create(name, spec, **options)
    x = torch.randint(spec.levels, (32, *spec.shape))
    model.train()
    model.log_prob(x)  # actnorm's data-dependent initialisation, batch-norm running statistics
    return randomise(model, 0.05).eval()


@pytest.mark.parametrize("name, options", MODELS)
def test_every_model_inverts_to_1e4_in_float32(name, options):
    spec = DataSpec((1, 8, 8), 256, 10)
    model = _trained_once(name, options, spec)
    x = torch.randint(256, (8, 1, 8, 8))
    v, _ = model.preprocess(x)
    z, _ = model.flow(v)
    assert z.shape == v.shape and z.dtype == torch.float32
    assert (model.flow.inverse(z) - v).abs().max() < 1e-4
    assert torch.equal(model.decode(model.encode(x)), x)  # bin centres come back to the same levels


@pytest.mark.parametrize("name, options", MODELS)
def test_whole_model_logdet_matches_autograd(name, options):
    spec = DataSpec((1, 4, 4), 4)
    model = _trained_once(name, options, spec).double()
    v = torch.randn(2, 1, 4, 4, dtype=torch.double)
    _, logdet = model.flow(v)
    assert torch.allclose(logdet, brute_force_logdet(model.flow, v), atol=1e-7)


def test_dequantisation_and_logit_terms_are_all_counted():
    """log_prob = log N(f(v)) + log|det df/dv| + log|dv/dx|, with the last checked by autograd
    through the preprocessing of x + u: every constant included (the 1/L scaling, 1 - 2 alpha)."""
    torch.manual_seed(0)
    spec = DataSpec((1, 2, 2), 256)
    model = unsup.create("nice", spec, hidden=4, layers=1).double()
    x = torch.randint(256, (3, 1, 2, 2))
    u = torch.rand(3, 1, 2, 2, dtype=torch.double)
    v, logdet = model.preprocess(x, u)
    for i in range(3):
        def pre(xu, i=i):  # continuous input x + u -> v
            return model.preprocess(torch.zeros_like(x[i:i + 1]), xu.view(1, 1, 2, 2))[0].flatten()
        jac = torch.autograd.functional.jacobian(pre, (x[i].double() + u[i]).flatten())
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-9)
    # the constant part: D (log(1 - 2 alpha) - log 256) with alpha = 0.05, D = 4
    p = 0.05 + 0.9 * (x.double() + u) / 256
    by_hand = (-torch.log(p) - torch.log1p(-p)).flatten(1).sum(1) + 4 * (math.log(0.9) - math.log(256))
    assert torch.allclose(logdet, by_hand)
    assert not model.exact_likelihood  # a dequantisation bound
    assert unsup.create("nice", DataSpec((2,), None), hidden=4, layers=1).exact_likelihood


def test_uniform_dequantisation_bound_is_below_the_discrete_likelihood():
    """On 1-bit data with 2 dimensions, P(x) is computable by integrating the flow's density over
    each dequantisation cell; the bound E_u[log p] - D log L must not exceed log P(x). The P(x)
    sum to a little under 1: the prior's mass outside the logit transform's range
    (|v| > logit(1 - alpha)) belongs to no x, so reported likelihoods are conservative."""
    torch.manual_seed(0)
    model = randomise(unsup.create("nice", DataSpec((2,), 2), hidden=8, layers=2)).double().eval()
    g = (torch.arange(64, dtype=torch.double) + 0.5) / 64  # midpoint rule on [0, 1)^2
    u = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    probs, bounds = [], []
    for x in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        xs = torch.tensor(x).expand(len(u), 2)
        v, ld_pre = model.preprocess(xs, u)
        z, ld = model.flow(v)
        logp = model.log_prior(z) + ld + ld_pre  # log p(v) + log|dv/dx|: the density of x + u, / L^D
        probs.append(logp.exp().mean())
        bounds.append(logp.mean())
    probs = torch.stack(probs)
    assert 0.95 < probs.sum().item() < 1
    assert torch.all(torch.stack(bounds) <= probs.log() + 1e-9)


@pytest.mark.parametrize("name, options", MODELS + FLOWPP)
def test_samples_are_valid_levels_and_training_lowers_the_loss(name, options):
    spec = DataSpec((1, 8, 8), 4, 3)
    torch.manual_seed(0)
    model = unsup.create(name, spec, conditional=True, **options)
    x = torch.randint(4, (16, 1, 8, 8))
    x[:, :, :4] = 0  # structure to learn
    y = torch.arange(16) % 3
    assert_training_reduces_loss(model, {"x": x, "y": y}, lr=3e-3, steps=15)
    model.eval()
    s = model.sample(6, temperature=0.7)
    assert s.shape == (6, 1, 8, 8) and s.dtype == torch.long and s.min() >= 0 and s.max() <= 3
    assert model.sample(2, y=torch.tensor([2, 2])).shape == (2, 1, 8, 8)
    path = model.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 1, 8, 8) and torch.equal(path[0], x[0]) and torch.equal(path[-1], x[1])


def test_class_conditional_prior_changes_the_likelihood():
    torch.manual_seed(0)
    model = unsup.create("glow", DataSpec((1, 4, 4), 2, 2), hidden=4, flow_steps=1, num_levels=1,
                         conditional=True)
    with torch.no_grad():
        model.prior_mean.weight.normal_()
    x = torch.randint(2, (3, 1, 4, 4))
    torch.manual_seed(1)
    a = model.log_prob(x, torch.zeros(3, dtype=torch.long))
    torch.manual_seed(1)
    b = model.log_prob(x, torch.ones(3, dtype=torch.long))
    assert torch.all((a - b).abs() > 1e-3)
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)


def test_continuous_data_has_an_exact_density():
    """On continuous 2-D data NICE's density integrates to 1 over the plane (numerically)."""
    torch.manual_seed(0)
    model = randomise(unsup.create("nice", DataSpec((2,), None), hidden=8, layers=2), 0.2).eval()
    g = torch.linspace(-8, 8, 401)
    xy = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        mass = model.log_prob(xy).exp().sum() * (g[1] - g[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-2)


def test_errors_name_what_is_expected():
    with pytest.raises(ConfigError, match="fewer scales"):
        unsup.create("realnvp", DataSpec((1, 28, 28), 256), num_scales=4)
    with pytest.raises(ConfigError, match="fewer levels"):
        unsup.create("glow", DataSpec((1, 28, 28), 256), num_levels=3)
    with pytest.raises(ConfigError, match="checkerboard or random"):
        unsup.create("realnvp", DataSpec((1, 8, 8), 256), mask="channel")
    with pytest.raises(ConfigError, match="image"):
        unsup.create("glow", DataSpec((16,), 256, None, "vector"))
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("nice", DataSpec((1, 8, 8), 256), conditional=True)
    with pytest.raises(ConfigError, match="alpha"):
        unsup.create("nice", DataSpec((1, 8, 8), 256), alpha=0.5)
    model = unsup.create("realnvp", DataSpec((1, 8, 8), 256), hidden=4, blocks=0)
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(2, 1, 8, 9, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"\[0, 255\]"):
        model.log_prob(torch.full((2, 1, 8, 8), 256))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(1, temperature=-1)
