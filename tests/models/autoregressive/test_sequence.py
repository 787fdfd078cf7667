"""The shared sequence-model machinery: ancestral samples follow the model, completion keeps the
known elements, and the start-token shift."""

import itertools

import pytest
import torch
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.autoregressive.sequence import ShiftedEmbedding


@pytest.mark.parametrize("name,options", [("lstm", {"hidden": 8}),
                                          ("transformer", {"num_layers": 1, "d_model": 8})])
def test_samples_follow_the_model_distribution(name, options):
    torch.manual_seed(0)
    spec = DataSpec((2,), 3, None, "sequence")
    model = unsup.create(name, spec, **options).eval()
    with torch.no_grad():  # sharpen the untrained model so the test has power
        model.head.weight.mul_(30)
        model.head.bias.normal_()
    grid = torch.tensor(list(itertools.product(range(3), repeat=2)))  # index = 3 x0 + x1
    probs = model.log_prob(grid).exp().detach().double()
    n = 3000
    for fast in (True, False):
        x = model.sample(n, fast=fast)
        counts = torch.bincount(x[:, 0] * 3 + x[:, 1], minlength=9).numpy()
        assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


@pytest.mark.parametrize("name", ["lstm", "transformer", "bytenet", "nade"])
def test_completion_keeps_known_elements_and_fast_equals_naive(name):
    torch.manual_seed(0)
    spec = DataSpec((1, 3, 3), 4)
    model = unsup.create(name, spec).double().eval()
    x = torch.randint(4, (3, 1, 3, 3))
    known = torch.zeros(3, 1, 3, 3, dtype=torch.bool)
    known[:, :, 0] = True  # the top row
    known[0, 0, 2, 2] = True  # and, in one image, the last pixel
    torch.manual_seed(1)
    fast = model.complete(x, known)
    torch.manual_seed(1)
    naive = model.complete(x, known, fast=False)
    assert torch.equal(fast, naive)
    assert torch.equal(fast[known], x[known])
    with pytest.raises(ConfigError, match="broadcast"):
        model.complete(x, torch.ones(2, 1, 1, 1, dtype=torch.bool))


def test_shifted_embedding_starts_with_the_start_token():
    emb = ShiftedEmbedding(5, 3)
    x = torch.tensor([[4, 1, 2]])
    e = emb(x)
    assert e.shape == (1, 3, 3)
    assert torch.equal(e[0, 0], emb.start) and torch.equal(e[0, 1:], emb.tokens(x[0, :2]))
    assert torch.equal(emb.step(None, 2, None), emb.start.expand(2, 3))
    cond = ShiftedEmbedding(5, 3, num_classes=2)
    assert torch.equal(cond(x, torch.tensor([1]))[0, 0], cond.classes.weight[1])
