"""PixelSNAIL: strict raster-order dependence with no blind spot, normalisation, sampling,
conditioning, training, errors."""

import itertools

import pytest
import torch

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for

TINY = {"hidden": 8, "num_blocks": 2, "res_per_block": 1, "first_kernel_size": 3,
        "key_dim": 4, "value_dim": 8}


def _pixelsnail(shape=(1, 4, 4), levels=2, classes=None, **options):
    return unsup.create("pixelsnail", DataSpec(shape, levels, classes), **{**TINY, **options})


@pytest.mark.parametrize("shape,options", [((1, 5, 5), {}), ((2, 4, 4), {"num_heads": 2})])
def test_logits_depend_on_all_earlier_pixels_and_nothing_else(shape, options):
    torch.manual_seed(0)
    model = _pixelsnail(shape, 3, **options).double().eval()
    c_n, h_n, w_n = shape
    inputs = model.scale(torch.randint(3, (1, *shape)))
    proj = torch.randn(3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda x: (model.logits(x) * proj).sum(-1), inputs)
    jac = jac[0, :, :, :, 0].abs().sum(3)  # (C, H, W, H, W): logit (c, i, j) vs input pixel
    for c, i, j in itertools.product(range(c_n), range(h_n), range(w_n)):
        for p, q in itertools.product(range(h_n), range(w_n)):
            if (p, q) < (i, j):
                # attention reaches every earlier pixel: no blind spot (up-right of (i, j))
                assert jac[c, i, j, p, q] > 0, (c, i, j, p, q)
            else:
                assert jac[c, i, j, p, q] == 0, (c, i, j, p, q)


@pytest.mark.parametrize("shape,levels", [((1, 2, 2), 2), ((2, 1, 2), 3)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    torch.manual_seed(0)
    model = _pixelsnail(shape, levels).eval()
    x = torch.tensor(list(itertools.product(range(levels), repeat=4))).view(-1, *shape)
    assert torch.logsumexp(model.log_prob(x), 0).exp().item() == pytest.approx(1.0, abs=1e-5)


def test_sampling_is_naive_and_reproducible():
    torch.manual_seed(0)
    model = _pixelsnail((1, 3, 3), 4).eval()
    assert not model.supports_fast_sampling
    torch.manual_seed(1)
    a = model.sample(3)
    torch.manual_seed(1)
    b = model.sample(3, fast=False)
    assert a.shape == (3, 1, 3, 3) and torch.equal(a, b) and a.max() < 4
    greedy = torch.zeros(1, 1, 3, 3, dtype=torch.long)
    for i, j in itertools.product(range(3), range(3)):
        greedy[0, 0, i, j] = model.logits(model.scale(greedy))[0, 0, i, j].argmax()
    assert torch.equal(model.sample(2, temperature=0), greedy.expand(2, 1, 3, 3))


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _pixelsnail((1, 2, 2), 2, classes=3, conditional=True).eval()
    x = torch.tensor(list(itertools.product(range(2), repeat=4))).view(-1, 1, 2, 2)
    for c in range(3):
        lp = model.log_prob(x, torch.full((16,), c))
        assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(model.log_prob(x, torch.zeros(16, dtype=torch.long)),
                              model.log_prob(x, torch.ones(16, dtype=torch.long)))
    assert model.sample(3, y=torch.tensor([2, 0, 1])).shape == (3, 1, 2, 2)


def test_training_steps_reduce_loss():
    torch.manual_seed(0)
    x = torch.zeros(16, 1, 6, 6, dtype=torch.long)
    x[:, :, ::2] = 1  # stripes
    x[::2, :, :, 0] = 1 - x[::2, :, :, 0]
    model = _pixelsnail((1, 6, 6), 2, dropout=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss({"x": x})["loss"].item()
    for _ in range(5):
        opt.zero_grad()
        model.loss({"x": x})["loss"].backward()
        opt.step()
    assert model.loss({"x": x})["loss"].item() < first


def test_presets_vectors_and_errors():
    paper = config_for("pixelsnail", "paper")
    assert (paper.num_blocks, paper.res_per_block, paper.hidden, paper.key_dim,
            paper.value_dim) == (12, 5, 256, 16, 128)
    vec = unsup.create("pixelsnail", DataSpec((2,), 5, None, "vector"), **TINY)
    grid = torch.tensor(list(itertools.product(range(5), repeat=2)))
    assert torch.logsumexp(vec.log_prob(grid), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("pixelsnail", DataSpec((1, 4, 4), None))
    with pytest.raises(ConfigError, match="image"):
        unsup.create("pixelsnail", DataSpec((16,), 2, None, "sequence"))
    with pytest.raises(ConfigError, match="odd"):
        _pixelsnail(kernel_size=2)
    with pytest.raises(ConfigError, match="num_blocks"):
        _pixelsnail(num_blocks=0)
    with pytest.raises(ConfigError, match="divisible"):
        _pixelsnail(num_heads=3)
    with pytest.raises(ConfigError, match="labelled"):
        _pixelsnail(conditional=True)
