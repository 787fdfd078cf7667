"""WaveNet: causality and receptive field by gradient, normalisation, fast == naive sampling."""

import itertools
import math

import pytest
import torch
from scipy import stats

import unsup
from unsup.data.base import DataSpec
from unsup.data.speech import mu_law_encode
from unsup.errors import ConfigError
from unsup.models import config_for
from unsup.nn.layers import level_log_probs

TINY = {"residual_channels": 8, "gate_channels": 8, "skip_channels": 8, "num_stacks": 2,
        "layers_per_stack": 3}


def _wavenet(length=16, levels=5, classes=None, **options):
    spec = DataSpec((length,), levels, classes, "sequence")
    return unsup.create("wavenet", spec, **{**TINY, **options})


@pytest.mark.parametrize("options", [
    {},
    {"kernel_size": 3, "input_kernel_size": 1, "num_stacks": 1},
    {"input_kernel_size": 4, "layers_per_stack": 2, "num_stacks": 3},
])
def test_each_output_sees_exactly_its_receptive_field(options):
    torch.manual_seed(0)
    model = _wavenet(**options)
    c = model.config
    r = c.input_kernel_size + (c.kernel_size - 1) * c.num_stacks * (2**c.layers_per_stack - 1)
    assert model.receptive_field == r
    t_len = r + 6
    e = model.input_embedding(torch.randint(model.levels, (1, t_len))).detach()  # (1, T, k0 C)
    proj = torch.randn(model.levels)

    def f(inp):
        return (model.head_logits(model.features(inp)) * proj).sum(-1)[0]  # (T,)

    jac = torch.autograd.functional.jacobian(f, e)[:, 0].abs().sum(-1)  # (T out, T in)
    for t in range(t_len):
        seen = (jac[t] != 0).nonzero().flatten().tolist()
        assert seen == list(range(max(0, t - r), t)), (t, seen)  # all of x_{t-R}..x_{t-1}, no more


def test_gradient_of_log_prob_is_causal():
    """Through the real path: d log p(x_t | x_<t) / d input embedding at s is 0 for s >= t."""
    torch.manual_seed(0)
    model = _wavenet(length=12)
    x = torch.randint(5, (1, 12))
    e = model.input_embedding(x).detach().requires_grad_(True)
    logp = torch.log_softmax(model.head_logits(model.features(e)), -1)  # (1, T, L)
    for t in range(12):
        (g,) = torch.autograd.grad(logp[0, t, x[0, t]], e, retain_graph=True)
        assert torch.all(g[0, t:] == 0) and (t == 0 or g[0, t - 1].abs().sum() > 0)


@pytest.mark.parametrize("options", [{}, {"kernel_size": 3, "input_kernel_size": 3}])
def test_probabilities_of_all_sequences_sum_to_one(options):
    torch.manual_seed(0)
    model = _wavenet(length=3, levels=3, classes=2, conditional=True, **options).eval()
    x = torch.tensor(list(itertools.product(range(3), repeat=3)))
    for label in range(2):
        lp = model.log_prob(x, torch.full((len(x),), label))
        assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("options, sample_options", [
    ({}, {}),
    ({"kernel_size": 3, "input_kernel_size": 3}, {"temperature": 0.7}),
    ({"conditional": True}, {"prime": torch.tensor([1, 2, 3, 4, 0])}),
    ({}, {"temperature": 0}),
])
def test_fast_and_naive_sampling_give_the_same_samples(options, sample_options):
    torch.manual_seed(0)
    model = _wavenet(length=40, classes=3 if options.get("conditional") else None, **options).eval()
    assert model.receptive_field < 40  # the naive window is cut: tests its bookkeeping
    torch.manual_seed(1)
    fast = model.sample(3, fast=True, **sample_options)
    torch.manual_seed(1)
    naive = model.sample(3, fast=False, **sample_options)
    assert fast.shape == (3, 40) and fast.dtype == torch.long
    assert torch.equal(fast, naive)
    if "prime" in sample_options:
        assert torch.equal(fast[:, :5], sample_options["prime"].expand(3, 5))


def test_images_are_read_in_raster_order_with_positions():
    """On (C, H, W) images: causal in raster order (by gradient), normalised, fast == naive with
    the position embedding, samples shaped like the data."""
    torch.manual_seed(0)
    spec = DataSpec((1, 3, 4), 2)
    model = _image_wavenet(spec)
    assert model.receptive_field < 12  # the naive sampler's window is cut: positions must follow
    x = torch.randint(2, (1, 1, 3, 4))
    e = model.input_embedding(x.flatten(1)).detach().requires_grad_(True)
    logp = level_log_probs(model.head_logits(model.features(e)))[0]  # (12, 2)
    for t in range(12):
        (g,) = torch.autograd.grad(logp[t, x.flatten()[t]], e, retain_graph=True)
        assert torch.all(g[0, t:] == 0)
    small = _image_wavenet(DataSpec((1, 2, 3), 2))
    grid = torch.tensor(list(itertools.product(range(2), repeat=6))).view(-1, 1, 2, 3)
    assert torch.logsumexp(small.log_prob(grid), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    torch.manual_seed(1)
    fast = model.sample(4, fast=True)
    torch.manual_seed(1)
    naive = model.sample(4, fast=False)
    assert fast.shape == (4, 1, 3, 4) and torch.equal(fast, naive)
    assert model.log_prob(fast).shape == (4,)


def _image_wavenet(spec):
    model = unsup.create("wavenet", spec, residual_channels=8, gate_channels=8, skip_channels=8,
                         num_stacks=1, layers_per_stack=2, positions=True).eval()
    with torch.no_grad():  # positions matter: make them large enough to change the samples
        model.position.weight.normal_()
    return model


def test_samples_follow_the_model_distribution():
    torch.manual_seed(0)
    model = _wavenet(length=2, levels=3).eval()
    with torch.no_grad():  # sharpen the untrained model so the test has power
        model.output.weight.mul_(6)
        model.output.bias.normal_()
    n = 3000
    x = model.sample(n)
    index = x[:, 0] * 3 + x[:, 1]
    grid = torch.tensor(list(itertools.product(range(3), repeat=2)))
    probs = model.log_prob(grid).exp().detach().double()
    counts = torch.bincount(index, minlength=9).numpy()
    assert stats.chisquare(counts, (probs / probs.sum() * n).numpy()).pvalue > 1e-3


def test_sample_length_and_greedy_decoding():
    torch.manual_seed(0)
    model = _wavenet(length=10).eval()
    assert model.sample(2, length=25).shape == (2, 25)  # fully convolutional
    greedy = torch.zeros(1, 10, dtype=torch.long)
    for t in range(10):
        greedy[0, t] = model.logits(greedy)[0, t].argmax()
    assert torch.equal(model.sample(2, temperature=0), greedy.expand(2, 10))


def test_speaker_conditioning_changes_log_prob():
    torch.manual_seed(0)
    model = _wavenet(length=20, levels=256, classes=4, conditional=True)
    x = torch.randint(256, (3, 20))
    lp0 = model.log_prob(x, torch.zeros(3, dtype=torch.long))
    lp1 = model.log_prob(x, torch.ones(3, dtype=torch.long))
    assert torch.all((lp0 - lp1).abs() > 1e-4)
    assert model.sample(5).shape == (5, 20)  # default labels arange(n) % 4
    with pytest.raises(ConfigError, match="pass labels"):
        model.log_prob(x)
    with pytest.raises(ConfigError, match="not class-conditional"):
        _wavenet().sample(1, y=torch.tensor([0]))


@pytest.mark.parametrize("kind", ["speech", "text"])
def test_training_steps_reduce_loss(kind):
    torch.manual_seed(0)
    if kind == "speech":  # mu-law coded sine waves of two "speakers"
        t = torch.arange(64)
        x = torch.stack([mu_law_encode(0.5 * torch.sin(2 * math.pi * f * t / 16 + p))
                         for f, p in [(1, 0.0), (2, 1.0), (1, 2.0), (2, 3.0)]])
        spec, y, options = DataSpec((64,), 256, 2, "sequence"), torch.tensor([0, 1, 0, 1]), \
            {"conditional": True}
    else:  # bytes of text
        text = b"in the beginning god created the heaven and the earth. and the earth was "
        x = torch.tensor(list(text[:64])).view(1, 64).repeat(4, 1)
        spec, y, options = DataSpec((64,), 256, None, "sequence"), None, {}
    model = unsup.create("wavenet", spec, **{**TINY, **options})
    batch = {"x": x} if y is None else {"x": x, "y": y}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(batch)
    assert first["bpd"].item() == pytest.approx(first["loss"].item() / math.log(2))
    for _ in range(8):
        opt.zero_grad()
        loss = model.loss(batch)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert model.loss(batch)["loss"].item() < first["loss"].item()


def test_presets_and_defaults():
    spec = DataSpec((16000,), 256, 8, "sequence")
    model = unsup.create("wavenet", spec)
    assert model.receptive_field == 2 + 2 * 1023  # 128 ms at 16 kHz
    assert model.dilations == [2**i for i in range(10)] * 2
    paper = config_for("wavenet", "paper")
    assert (paper.num_stacks, paper.layers_per_stack, paper.skip_channels) == (3, 10, 256)
    big = unsup.create("wavenet", DataSpec((64,), 256, None, "sequence"), preset="paper")
    assert big.receptive_field == 2 + 3 * 1023 and max(big.dilations) == 512
    assert big.log_prob(torch.randint(256, (1, 64))).shape == (1,)


def test_errors():
    with pytest.raises(ConfigError, match="sample length"):
        unsup.create("wavenet", DataSpec((1, 4, 4), 2), positions=True).sample(1, length=17)
    with pytest.raises(ConfigError, match="continuous"):
        unsup.create("wavenet", DataSpec((16,), None, None, "sequence"))
    with pytest.raises(ConfigError, match="labelled"):
        _wavenet(conditional=True)
    with pytest.raises(ConfigError, match="kernel_size"):
        _wavenet(kernel_size=1)
    with pytest.raises(ConfigError, match="gate_channels"):
        _wavenet(gate_channels=0)
    model = _wavenet()
    with pytest.raises(ConfigError, match="values in"):
        model.log_prob(torch.full((1, 16), 5))
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(1, 15, dtype=torch.long))
    with pytest.raises(ConfigError, match="length"):
        model.sample(1, length=0)
    with pytest.raises(ConfigError, match="prime"):
        model.sample(2, prime=torch.tensor([[1, 2]]))  # one prime for two samples
    with pytest.raises(ConfigError, match="prime"):
        model.sample(1, prime=torch.tensor([7]))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(1, temperature=-1)
