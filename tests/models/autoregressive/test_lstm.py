"""LSTM language model: causality by Jacobian, normalisation, state-carrying sampling equal to
re-running the prefix, the cells, conditioning, training, errors."""

import itertools

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for

TINY = {"hidden": 12, "num_layers": 2}
TEXT = torch.tensor(list(b"in the beginning god created the heaven and the earth. " * 3))


def _lstm(spec, **options):
    return unsup.create("lstm", spec, **{**TINY, **options})


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_output_t_depends_on_every_earlier_element_and_nothing_later(cell):
    torch.manual_seed(0)
    model = _lstm(DataSpec((8,), 5, None, "sequence"), cell=cell).double().eval()
    e = model.embed(torch.randint(5, (1, 8))).detach()
    proj = torch.randn(5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda e: (model.features(e) * proj).sum(-1), e)
    dep = jac[0, :, 0].abs().sum(-1)  # (T, T): output t vs input position s (e_s = E[x_{s-1}])
    lower = torch.ones(8, 8, dtype=torch.bool).tril()
    assert torch.all(dep[~lower] == 0) and torch.all(dep[lower] > 0)


@pytest.mark.parametrize("spec", [DataSpec((4,), 3, None, "sequence"), DataSpec((1, 2, 2), 2),
                                  DataSpec((3,), 4, None, "vector")])
def test_probabilities_of_all_examples_sum_to_one(spec):
    torch.manual_seed(0)
    model = _lstm(spec).eval()
    x = torch.tensor(list(itertools.product(range(spec.levels), repeat=spec.dims)))
    lp = model.log_prob(x.view(-1, *spec.shape))
    assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("options", [{}, {"cell": "gru"}, {"conditional": True}])
def test_carried_state_and_rerun_prefix_give_the_same_samples(options):
    torch.manual_seed(0)
    model = _lstm(DataSpec((3, 4, 4), 4, 2), **options).double().eval()
    with torch.no_grad():
        model.head.weight.mul_(10)
    torch.manual_seed(3)
    fast = model.sample(4)
    torch.manual_seed(3)
    naive = model.sample(4, fast=False)
    assert fast.shape == (4, 3, 4, 4) and torch.equal(fast, naive)


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _lstm(DataSpec((3,), 2, 2, "sequence"), conditional=True).eval()
    x = torch.tensor(list(itertools.product(range(2), repeat=3)))
    for c in range(2):
        lp = model.log_prob(x, torch.full((8,), c))
        assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(model.log_prob(x, torch.zeros(8, dtype=torch.long)),
                              model.log_prob(x, torch.ones(8, dtype=torch.long)))


def test_training_steps_reduce_loss_on_text():
    torch.manual_seed(0)
    spec = DataSpec((32,), 256, None, "sequence")
    batch = {"x": torch.stack([TEXT[i:i + 32] for i in range(0, 96, 6)])}
    model = _lstm(spec, hidden=32, num_layers=1, dropout=0.0)
    assert_training_reduces_loss(model, batch, lr=1e-2, steps=5)


def test_presets_and_errors():
    paper = config_for("lstm", "paper")
    assert (paper.hidden, paper.num_layers, paper.cell) == (700, 7, "lstm")
    seq = DataSpec((8,), 4, None, "sequence")
    assert unsup.create("lstm", seq, embedding_dim=5).embed.tokens.weight.shape == (4, 5)
    with pytest.raises(ConfigError, match="cell"):
        _lstm(seq, cell="transformer")
    with pytest.raises(ConfigError, match=">= 1"):
        _lstm(seq, hidden=0)
    with pytest.raises(ConfigError, match="dropout"):
        _lstm(seq, dropout=1.0)
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("lstm", DataSpec((8,), None, None, "vector"))
    with pytest.raises(ConfigError, match="labelled"):
        _lstm(seq, conditional=True)
    with pytest.raises(ConfigError, match="integer"):
        _lstm(seq).log_prob(torch.zeros(1, 8))
