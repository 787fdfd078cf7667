"""Transformer: causality by Jacobian (and the sparse patterns' exact dependence), normalisation,
KV-cache sampling equal to naive sampling, conditioning, training, errors."""

import itertools
import math

import pytest
import torch

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import config_for
from unsup.nn.attention import sparse_attention_mask

TINY = {"num_layers": 2, "d_model": 16, "num_heads": 2}


def _transformer(spec, **options):
    return unsup.create("transformer", spec, **{**TINY, **options})


def _dependence(model, seq, y=None):
    """dep[t, s] = |d logits_t / d e_s|: how output t depends on input position s (e_s is the
    embedding of x_{s-1}, e_0 the start token)."""
    e = model.embed(seq, y).detach()
    proj = torch.randn(model.levels, dtype=e.dtype)
    jac = torch.autograd.functional.jacobian(lambda e: (model.features(e) * proj).sum(-1), e)
    return jac[0, :, 0].abs().sum(-1)  # (T, T)


@pytest.mark.parametrize("attention", ["full", "strided", "fixed"])
def test_output_t_depends_on_every_earlier_element_and_nothing_later(attention):
    torch.manual_seed(0)
    model = _transformer(DataSpec((12,), 5, None, "sequence"), attention=attention, stride=3).eval()
    dep = _dependence(model, torch.randint(5, (1, 12)))
    assert torch.all(dep.triu(1) == 0)  # logits_t never sees x_t or later
    lower = torch.ones(12, 12, dtype=torch.bool).tril()
    assert torch.all(dep[lower] > 0)  # two layers: every earlier element (and the start token)


@pytest.mark.parametrize("attention,summary", [("strided", 1), ("fixed", 1), ("fixed", 2)])
def test_one_layer_sees_exactly_its_attention_pattern(attention, summary):
    torch.manual_seed(0)
    spec = DataSpec((16,), 3, None, "sequence")
    model = _transformer(spec, num_layers=1, attention=attention, stride=4, summary=summary).eval()
    dep = _dependence(model, torch.randint(3, (1, 16)))
    assert torch.equal(dep > 0, sparse_attention_mask(16, attention, 4, summary))


def test_images_are_flattened_in_raster_order_with_channels_innermost():
    model = _transformer(DataSpec((3, 2, 2), 4))
    x = torch.arange(12).view(1, 3, 2, 2) % 4
    seq = model.to_sequence(x)
    assert seq[0, :3].tolist() == x[0, :, 0, 0].tolist()  # R, G, B of the first pixel
    assert seq[0, 3:6].tolist() == x[0, :, 0, 1].tolist()
    assert torch.equal(model.from_sequence(seq), x)
    assert model.stride == 6  # the automatic stride of an image: one row of W * C elements


@pytest.mark.parametrize("spec,options", [
    (DataSpec((4,), 3, None, "sequence"), {}),
    (DataSpec((1, 2, 2), 2), {"attention": "strided", "stride": 2}),
    (DataSpec((2, 1, 2), 2), {"attention": "fixed", "stride": 2}),
])
def test_probabilities_of_all_examples_sum_to_one(spec, options):
    torch.manual_seed(0)
    model = _transformer(spec, **options).eval()
    x = torch.tensor(list(itertools.product(range(spec.levels), repeat=spec.dims)))
    x = x.view(-1, *spec.shape)
    assert torch.logsumexp(model.log_prob(x), 0).exp().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("options", [{}, {"attention": "strided"}, {"attention": "fixed"},
                                     {"conditional": True}])
def test_kv_cache_and_naive_sampling_give_the_same_samples(options):
    torch.manual_seed(0)
    model = _transformer(DataSpec((2, 4, 4), 4, 3), **options).double().eval()
    with torch.no_grad():  # a sharper model, so samples are not uniform noise
        model.head.weight.mul_(20)
    torch.manual_seed(1)
    fast = model.sample(5)
    torch.manual_seed(1)
    naive = model.sample(5, fast=False)
    assert fast.shape == (5, 2, 4, 4) and torch.equal(fast, naive)
    assert len({tuple(s.flatten().tolist()) for s in fast}) > 1


def test_temperature_zero_is_greedy_decoding():
    torch.manual_seed(0)
    model = _transformer(DataSpec((6,), 4, None, "sequence")).eval()
    greedy = torch.zeros(1, 6, dtype=torch.long)
    for t in range(6):
        greedy[0, t] = model.logits(greedy)[0, t].argmax()
    assert torch.equal(model.sample(2, temperature=0), greedy.expand(2, 6))
    assert torch.equal(model.sample(2, temperature=0, fast=False), greedy.expand(2, 6))


def test_conditional_model_uses_its_label_as_start_token():
    torch.manual_seed(0)
    spec = DataSpec((3,), 2, 3, "sequence")
    model = _transformer(spec, conditional=True).eval()
    x = torch.tensor(list(itertools.product(range(2), repeat=3)))
    for c in range(3):
        lp = model.log_prob(x, torch.full((8,), c))
        assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(model.log_prob(x, torch.zeros(8, dtype=torch.long)),
                              model.log_prob(x, torch.ones(8, dtype=torch.long)))
    assert model.sample(4, y=torch.tensor([2, 1, 0, 2])).shape == (4, 3)
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)


def test_training_steps_reduce_loss_on_digits():
    torch.manual_seed(0)
    train = unsup.data.load("digits", "train", "binary")
    batch = train.batch(torch.arange(16))
    model = unsup.create("transformer", train, num_layers=1, d_model=16, num_heads=2,
                         attention="strided")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(batch)
    assert first["bpd"].item() == pytest.approx(first["loss"].item() / math.log(2))
    for _ in range(3):
        opt.zero_grad()
        loss = model.loss(batch)["loss"]
        loss.backward()
        opt.step()
    assert model.loss(batch)["loss"].item() < first["loss"].item()


def test_presets():
    paper = config_for("transformer", "paper")
    assert (paper.num_layers, paper.d_model, paper.num_heads) == (24, 512, 8)
    gpt2 = config_for("transformer", "gpt2-small")
    assert (gpt2.num_layers, gpt2.d_model, gpt2.num_heads) == (12, 768, 12)
    default = config_for("transformer")
    assert (default.num_layers, default.d_model, default.num_heads) == (4, 128, 4)


def test_errors():
    seq = DataSpec((8,), 4, None, "sequence")
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("transformer", DataSpec((8,), None, None, "vector"))
    with pytest.raises(ConfigError, match="labelled"):
        _transformer(seq, conditional=True)
    with pytest.raises(ConfigError, match="divisible"):
        _transformer(seq, d_model=10, num_heads=4)
    with pytest.raises(ConfigError, match="attention must be"):
        _transformer(seq, attention="local")
    with pytest.raises(ConfigError, match="summary"):
        _transformer(seq, attention="fixed", stride=2, summary=3)
    with pytest.raises(ConfigError, match="stride"):
        _transformer(seq, stride=-1)
    with pytest.raises(ConfigError, match="num_layers"):
        _transformer(seq, num_layers=0)
    model = _transformer(seq)
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((1, 8), 4))
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(1, temperature=-1)
