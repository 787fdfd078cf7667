"""MAF and IAF: inversion, log-determinants, the autoregressive property, the equivalence of a
one-layer MAF with a Gaussian autoregressive model, and normalisation."""

import copy
import math

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data import load
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for
from unsup.models.flows.layers import Sequential
from unsup.models.flows.maf import GaussianMADE, IAFLayer, MAFLayer, ordering

D = 5
LAYERS = {"maf": MAFLayer, "iaf": IAFLayer}


def randomise(module: torch.nn.Module, std: float = 0.3, seed: int = 123) -> torch.nn.Module:
    """Perturb every parameter (the MADEs' zero-initialised output layers included)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module


def layer(kind: str, reverse: bool = False, hidden_layers: int = 2, dims: int = D, seed: int = 0):
    made = GaussianMADE(dims, 16, hidden_layers, ordering(dims, reverse), seed=seed)
    return randomise(LAYERS[kind](made), seed=seed + 1).double()


def jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """``df/dx`` of a map of one vector ``(D,) -> (D,)`` applied as a batch of one."""
    return torch.autograd.functional.jacobian(lambda v: f(v[None])[0], x)


def log_normal(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


def continuous(name: str, dims: int = D, **options):
    options.setdefault("hidden", 16)
    return unsup.create(name, DataSpec((dims,), None, None, "vector"), **options)


FLOW_CASES = [(kind, reverse, hl) for kind in LAYERS for reverse in (False, True) for hl in (0, 1, 2)]


@pytest.mark.parametrize("kind, reverse, hidden_layers", FLOW_CASES)
def test_layer_inverts_and_its_logdet_matches_autograd(kind, reverse, hidden_layers):
    f = layer(kind, reverse, hidden_layers)
    torch.manual_seed(0)
    x = torch.randn(4, D, dtype=torch.double)
    z, logdet = f(x)
    assert logdet.shape == (4,)
    assert (z - x).abs().max() > 1e-2  # not the identity
    assert torch.allclose(f.inverse(z), x, atol=1e-8, rtol=0)
    assert torch.allclose(f(f.inverse(x))[0], x, atol=1e-8, rtol=0)
    brute = torch.stack([torch.linalg.slogdet(jacobian(lambda v: f(v)[0], xi))[1] for xi in x])
    assert torch.allclose(logdet, brute, atol=1e-8, rtol=0)


@pytest.mark.parametrize("kind, reverse, hidden_layers", FLOW_CASES)
def test_jacobian_is_triangular_in_the_ordering(kind, reverse, hidden_layers):
    """dz_d/dx_j = 0 for every j after d in the ordering, the diagonal is exp(-alpha_d), and the
    MADE's outputs for d see only the dimensions before d (in the direction it reads)."""
    f = layer(kind, reverse, hidden_layers)
    torch.manual_seed(1)
    x = torch.randn(D, dtype=torch.double)
    pos = ordering(D, reverse) - 1  # 0-based position of each dimension
    later = pos[None, :] > pos[:, None]  # [d, j]: j comes after d
    earlier = pos[None, :] < pos[:, None]
    jac = jacobian(lambda v: f(v)[0], x)  # (D_out, D_in): dz_d / dx_j
    assert torch.all(jac[later] == 0)
    assert jac[earlier].abs().sum() > 0  # not vacuous: z depends on earlier dimensions
    # The MADE reads x for MAF and z for IAF; either way its alpha gives the diagonal.
    side = x if kind == "maf" else f(x[None])[0][0]
    mu_alpha = jacobian(lambda v: torch.cat(f.made(v), 1), side)  # (2D, D)
    for part in mu_alpha.view(2, D, D):
        assert torch.all(part[~earlier] == 0)  # neither d itself nor anything after it
        assert part[earlier].abs().sum() > 0
    alpha = f.made(side[None])[1][0]
    assert torch.allclose(torch.diagonal(jac), torch.exp(-alpha), atol=1e-12)


def test_mask_product_connects_each_output_to_exactly_the_earlier_inputs():
    made = GaussianMADE(D, 12, 2, ordering(D, True), seed=3)
    paths = None
    for lin in made.layers:
        paths = lin.mask if paths is None else lin.mask @ paths  # (out, in) path counts
    pos = ordering(D, True) - 1
    earlier = pos[None, :] < pos[:, None]
    for part in paths.view(2, D, D):  # mu, alpha
        assert torch.all(part[~earlier] == 0) and torch.all(part[earlier] > 0)


def test_one_layer_maf_is_the_gaussian_autoregressive_model():
    """The issue's key test: a one-layer MAF's log-likelihood (change of variables through the
    flow, N(0, I) prior) equals that of the autoregressive model prod_d N(x_d; mu_d, exp(alpha_d)^2)
    whose conditionals the same MADE outputs. Each conditional is computed on its own, from an input
    in which every dimension not before d is replaced by noise, so it is a genuine p(x_d | x_<d).
    Sampling agrees too: the MAF's inverse is the model's ancestral sampling with the same noise."""
    torch.manual_seed(0)
    model = randomise(continuous("maf", num_layers=1, hidden_layers=2), 0.5).double().eval()
    made = model.flow.layers[1].made
    x = torch.randn(64, D, dtype=torch.double) * 2
    z, logdet = model.flow(x)
    flow_ll = model.log_prior(z) + logdet  # = log_prob for continuous data (identity preprocessing)

    pos = made.order - 1
    ar_ll = torch.zeros(64, dtype=torch.double)
    for d in range(D):
        seen = pos < pos[d]  # x_<d
        probe = torch.where(seen, x, torch.randn_like(x) * 10)
        mu, alpha = made(probe)
        ar_ll += log_normal(x[:, d], mu[:, d], alpha[:, d])
    assert torch.allclose(flow_ll, ar_ll, atol=1e-6, rtol=0)
    assert (flow_ll - ar_ll).abs().max() < 1e-10
    # The public float32 path agrees to float32 precision.
    model32 = copy.deepcopy(model).float()
    assert torch.allclose(model32.log_prob(x.float()).double(), ar_ll, atol=1e-3, rtol=1e-5)

    # Ancestral sampling, dimension by dimension in the ordering, with the flow's noise z.
    x_anc = torch.zeros_like(z)
    for d in torch.argsort(pos).tolist():
        mu, alpha = made(x_anc)
        x_anc[:, d] = mu[:, d] + torch.exp(alpha[:, d]) * z[:, d]
    assert torch.allclose(model.flow.inverse(z), x_anc, atol=1e-10, rtol=0)
    assert torch.allclose(x_anc, x, atol=1e-8, rtol=0)


@pytest.mark.parametrize("kind, sign", [("maf", -1.0), ("iaf", 1.0)])
def test_the_sequential_pass_survives_values_that_only_garbage_would_overflow(kind, sign):
    """The D-pass direction (MAF's sampling, IAF's density) must not feed not-yet-valid values to
    the MADE: here the third dimension's scale is exp(50 * second value), exp(50 * 3 e^-10) at the
    true value but exp(150) at the first pass's placeholder 3 (it overflows float32). A plain fixed-point
    iteration turns the inf into NaN everywhere (inf * 0 at the masked input); ancestral order
    gives the exact answer."""
    made = GaussianMADE(3, 4, 0, ordering(3, False))
    with torch.no_grad():
        w = torch.zeros(6, 3)
        w[4, 0] = 10.0 * sign   # alpha_2 from dimension 1: the second value is 3 e^-10 (a 1 there)
        w[5, 1] = -50.0 * sign  # alpha_3 from dimension 2: exp(150) when 3 is put there instead
        made.layers[0].weight.copy_(w)
    layer = LAYERS[kind](made)
    given = torch.tensor([[1.0, 3.0, 1.0]])
    out = layer.inverse(given) if kind == "maf" else layer(given)[0]
    second = 3.0 * math.exp(-10.0)
    expected = torch.tensor([[1.0, second, math.exp(50.0 * second)]])
    assert torch.isfinite(out).all()
    assert torch.allclose(out, expected, rtol=1e-6, atol=0)


def test_iaf_density_of_its_own_samples_is_one_pass():
    """x = IAF(z) in one pass; log p(x) from the D-pass density equals log N(z) - logdet with the
    logdet of the sampling pass, and the density pass recovers z."""
    torch.manual_seed(0)
    model = randomise(continuous("iaf", num_layers=3), 0.2).double().eval()
    z = torch.randn(32, D, dtype=torch.double)
    h, ld_sample = z, torch.zeros(32, dtype=torch.double)
    for f in reversed(model.flow.layers[1:-1]):  # sampling direction: last layer first
        _, alpha = f.made(h)
        ld_sample += alpha.sum(1)  # log |dx/dz| of this one-pass step
        h = f.inverse(h)
    x = h
    assert torch.allclose(model.flow.inverse(z), x)
    z_back, ld = model.flow(x)
    assert torch.allclose(z_back, z, atol=1e-8, rtol=0)
    assert torch.allclose(ld, -ld_sample, atol=1e-8, rtol=0)
    log_p = model.log_prior(z_back) + ld
    assert torch.allclose(log_p, model.log_prior(z) - ld_sample, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", ["maf", "iaf"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_stacked_model_inverts_with_reversed_orderings_and_autograd_logdet(name, batch_norm):
    torch.manual_seed(0)
    model = continuous(name, num_layers=3, hidden=8, batch_norm=batch_norm)
    model.train()
    model.log_prob(torch.randn(64, D) * 2 + 1)  # batch-norm running statistics
    model = randomise(model, 0.2).double().eval()
    arl = [f for f in model.flow.layers if hasattr(f, "made")]
    assert [f.made.order.tolist() for f in arl] == [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 2, 3, 4, 5]]
    assert isinstance(model.flow, Sequential) and len(model.flow.layers) == 2 + 3 * (1 + batch_norm)
    x = torch.randn(3, D, dtype=torch.double)
    z, logdet = model.flow(x)
    assert torch.allclose(model.flow.inverse(z), x, atol=1e-8, rtol=0)
    brute = torch.stack([torch.linalg.slogdet(jacobian(lambda v: model.flow(v)[0], xi))[1] for xi in x])
    assert torch.allclose(logdet, brute, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", ["maf", "iaf"])
def test_continuous_2d_density_integrates_to_one(name):
    torch.manual_seed(0)
    model = randomise(continuous(name, dims=2, num_layers=2, hidden=8), 0.3).eval()
    g = torch.linspace(-8, 8, 401)
    xy = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        p = model.log_prob(xy).exp()
    standard = torch.exp(-0.5 * (xy ** 2).sum(1)) / (2 * math.pi)
    assert (p - standard).abs().max() > 0.05  # not the prior: the layers transform it
    mass = p.sum() * (g[1] - g[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("name", ["maf", "iaf"])
def test_images_are_flattened_dequantised_and_decoded(name):
    torch.manual_seed(0)
    spec = DataSpec((1, 3, 3), 16)
    model = randomise(unsup.create(name, spec, num_layers=2, hidden=8), 0.05).eval()
    x = torch.randint(16, (6, 1, 3, 3))
    z = model.encode(x)
    assert z.shape == (6, 1, 3, 3)
    assert torch.equal(model.decode(z), x)  # bin centres come back to the same levels
    s = model.sample(4, temperature=0.8)
    assert s.shape == (4, 1, 3, 3) and s.dtype == torch.long and s.min() >= 0 and s.max() <= 15
    assert torch.isfinite(model.log_prob(x)).all() and not model.exact_likelihood


@pytest.mark.parametrize("name", ["maf", "iaf"])
@pytest.mark.parametrize("conditional", [False, True])
def test_training_on_two_moons_lowers_the_loss(name, conditional):
    data = load("two-moons", "train", seed=0)
    batch = {"x": data.x[:256].float()}
    if conditional:
        batch["y"] = data.y[:256]
    torch.manual_seed(0)
    model = unsup.create(name, data.spec, num_layers=3, hidden=32, conditional=conditional)
    assert model.exact_likelihood
    assert_training_reduces_loss(model, batch, lr=3e-3, steps=15)
    model.eval()
    s = model.sample(8, y=torch.zeros(8, dtype=torch.long) if conditional else None)
    assert s.shape == (8, 2) and torch.isfinite(s).all()


def test_checkpoint_round_trip_restores_the_same_density():
    torch.manual_seed(0)
    a = randomise(continuous("maf", num_layers=2, batch_norm=True)).eval()
    b = continuous("maf", num_layers=2, batch_norm=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, D)
    assert torch.equal(a.log_prob(x), b.log_prob(x))


def test_presets():
    paper = config_for("maf", "paper")
    assert (paper.num_layers, paper.hidden, paper.hidden_layers) == (5, 1024, 2)
    assert config_for("iaf", "maf-paper") == paper
    default = config_for("maf")
    assert (default.num_layers, default.hidden, default.hidden_layers) == (5, 256, 2)


def test_errors_name_what_is_expected():
    with pytest.raises(ConfigError, match="num_layers >= 1"):
        continuous("maf", num_layers=0)
    with pytest.raises(ConfigError, match="hidden >= 1"):
        continuous("iaf", hidden=0)
    with pytest.raises(ConfigError, match="hidden_layers >= 0"):
        continuous("maf", hidden_layers=-1)
    with pytest.raises(ConfigError, match=r"integer sizes, got hidden=\[256, 256\]"):
        continuous("maf", hidden=[256, 256])
    with pytest.raises(ConfigError, match="labelled"):
        continuous("maf", conditional=True)
    with pytest.raises(ConfigError, match="alpha"):
        unsup.create("iaf", DataSpec((1, 4, 4), 256), alpha=0.5)
    with pytest.raises(ConfigError, match="image or vector"):
        unsup.create("maf", DataSpec((16,), 256, None, "sequence"))
    with pytest.raises(ConfigError, match="no option"):
        continuous("maf", layers=3)
    model = continuous("maf")
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(2, D + 1))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(1, temperature=-1)
