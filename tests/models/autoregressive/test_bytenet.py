"""ByteNet decoder: causality and the receptive field by Jacobian, normalisation, queue sampling
equal to naive sampling, conditioning, training, errors."""

import itertools

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for

TINY = {"hidden": 8, "num_sets": 1, "blocks_per_set": 3, "kernel_size": 2}
TEXT = torch.tensor(list(b"in the beginning god created the heaven and the earth. " * 3))


def _bytenet(spec, **options):
    return unsup.create("bytenet", spec, **{**TINY, **options})


@pytest.mark.parametrize("options", [{}, {"kernel_size": 3, "num_sets": 2, "blocks_per_set": 2}])
def test_output_t_sees_exactly_the_last_r_elements(options):
    torch.manual_seed(0)
    t_len = 24
    model = _bytenet(DataSpec((t_len,), 5, None, "sequence"), **options).double().eval()
    r = model.receptive_field
    assert r == 1 + (model.config.kernel_size - 1) * sum(model.dilations)
    assert r < t_len
    e = model.inputs(torch.randint(5, (1, t_len)), None).detach()
    proj = torch.randn(5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda e: (model.features(e) * proj).sum(-1), e)
    dep = jac[0, :, 0].abs().sum(-1)  # (T, T): output t vs input position s (e_s = E[x_{s-1}])
    t, s = torch.meshgrid(torch.arange(t_len), torch.arange(t_len), indexing="ij")
    window = (s <= t) & (s > t - r)  # e_{t-R+1} .. e_t, i.e. x_{t-R} .. x_{t-1}
    assert torch.all(dep[~window] == 0) and torch.all(dep[window] > 0)


@pytest.mark.parametrize("spec", [DataSpec((4,), 3, None, "sequence"), DataSpec((2, 1, 2), 2)])
def test_probabilities_of_all_examples_sum_to_one(spec):
    torch.manual_seed(0)
    model = _bytenet(spec).eval()
    x = torch.tensor(list(itertools.product(range(spec.levels), repeat=spec.dims)))
    lp = model.log_prob(x.view(-1, *spec.shape))
    assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("options", [{}, {"kernel_size": 3}, {"conditional": True}])
def test_queue_and_naive_sampling_give_the_same_samples(options):
    torch.manual_seed(0)
    model = _bytenet(DataSpec((20,), 6, 3, "sequence"), **options).double().eval()
    with torch.no_grad():
        model.head.weight.mul_(10)
    torch.manual_seed(2)
    fast = model.sample(4)
    torch.manual_seed(2)
    naive = model.sample(4, fast=False)
    assert fast.shape == (4, 20) and torch.equal(fast, naive)


def test_conditional_model_uses_labels():
    torch.manual_seed(0)
    model = _bytenet(DataSpec((3,), 2, 2, "sequence"), conditional=True).eval()
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
    model = _bytenet(spec, hidden=16)
    assert_training_reduces_loss(model, batch, lr=1e-2, steps=5)


def test_presets_and_errors():
    paper = config_for("bytenet", "paper")
    model = unsup.create("bytenet", DataSpec((16,), 4, None, "sequence"), preset="paper")
    assert len(model.dilations) == 30 and model.dilations[:6] == [1, 2, 4, 8, 16, 1]
    assert paper.hidden == 512 and paper.kernel_size == 3 and model.receptive_field == 373
    seq = DataSpec((8,), 4, None, "sequence")
    with pytest.raises(ConfigError, match="kernel_size"):
        _bytenet(seq, kernel_size=1)
    with pytest.raises(ConfigError, match="hidden"):
        _bytenet(seq, hidden=0)
    with pytest.raises(ConfigError, match="labelled"):
        _bytenet(seq, conditional=True)
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("bytenet", DataSpec((8,), None, None, "sequence"))
