"""Masked layers and output distributions: the pieces every likelihood model relies on."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from unsup.errors import ConfigError
from unsup.models.base import check_labels
from unsup.nn.layers import (
    CausalConv1d,
    MaskedConv2d,
    MaskedLinear,
    categorical_log_prob,
    conv_mask,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_table,
    log1mexp,
    sample_categorical,
)


def test_conv_mask_a_hides_centre_and_future_b_shows_centre():
    a = conv_mask(1, 1, 5, "A")[0, 0]
    b = conv_mask(1, 1, 5, "B")[0, 0]
    expected_a = torch.tensor([
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ], dtype=torch.float)
    assert torch.equal(a, expected_a)
    assert torch.equal(b - a, torch.zeros(5, 5).index_put_((torch.tensor(2), torch.tensor(2)),
                                                           torch.tensor(1.0)))


def test_conv_mask_channel_groups_at_centre():
    # 3 input colours, 6 output maps in 3 groups of 2: group g sees colours < g (A) / <= g (B).
    a = conv_mask(3, 6, 3, "A", channel_groups=3)[:, :, 1, 1]
    b = conv_mask(3, 6, 3, "B", channel_groups=3)[:, :, 1, 1]
    g_out = torch.tensor([0, 0, 1, 1, 2, 2])[:, None]
    g_in = torch.arange(3)[None, :]
    assert torch.equal(a, (g_out > g_in).float())
    assert torch.equal(b, (g_out >= g_in).float())
    # Off-centre taps of earlier pixels see every channel.
    assert conv_mask(3, 6, 3, "A", channel_groups=3)[:, :, 0, :].eq(1).all()


def test_conv_mask_rejects_bad_arguments():
    with pytest.raises(ValueError):
        conv_mask(1, 1, 4, "A")
    with pytest.raises(ValueError):
        conv_mask(1, 1, 3, "C")
    with pytest.raises(ConfigError):
        conv_mask(3, 2, 3, "B", channel_groups=3)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_depends_only_on_earlier_pixels(mask_type):
    torch.manual_seed(0)
    conv = MaskedConv2d(2, 3, 3, mask_type)
    x = torch.randn(1, 2, 5, 5)
    jac = torch.autograd.functional.jacobian(conv, x)[0, :, :, :, 0]  # (3, 5, 5, 2, 5, 5)
    dep = jac.abs().sum(dim=(0, 3))  # (5, 5, 5, 5): output pixel -> input pixel
    for i in range(5):
        for j in range(5):
            for p in range(5):
                for q in range(5):
                    before = (p, q) < (i, j) or (mask_type == "B" and (p, q) == (i, j))
                    near = abs(p - i) <= 1 and abs(q - j) <= 1
                    assert (dep[i, j, p, q] != 0) == (before and near), (i, j, p, q)


def test_masked_linear_applies_mask_and_override():
    torch.manual_seed(0)
    layer = MaskedLinear(3, 2)
    layer.set_mask(torch.tensor([[1, 0, 0], [1, 1, 0]]))
    x = torch.randn(4, 3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.all(x.grad[:, 2] == 0) and torch.all(layer.weight.grad[0, 1:] == 0)
    zero = torch.zeros(2, 3)
    assert torch.allclose(layer(x, zero), layer.bias.expand(4, 2))
    assert "mask" in layer.state_dict()
    with pytest.raises(ValueError):
        layer.set_mask(torch.ones(3, 2))


def test_categorical_log_prob_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(4, 2, 3, 5)
    x = torch.randint(5, (4, 2, 3))
    expected = -F.cross_entropy(logits.reshape(-1, 5), x.reshape(-1), reduction="none")
    assert torch.allclose(categorical_log_prob(logits, x), expected.view(4, 6).sum(1), atol=1e-6)


def test_sample_categorical_follows_softmax_of_logits_over_t():
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 1.0, -1.0, 2.0])
    for t in (1.0, 2.0):
        draws = sample_categorical(logits.expand(20000, -1), t)
        counts = torch.bincount(draws, minlength=4).numpy()
        expected = F.softmax(logits.double() / t, 0).numpy() * 20000
        assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_sample_categorical_draws_what_torch_multinomial_draws():
    logits = torch.randn(64, 17) * 3
    logits[:, 0] = -float("inf")
    torch.manual_seed(1)
    ours = sample_categorical(logits.view(8, 8, 17), 0.7)
    torch.manual_seed(1)
    theirs = torch.multinomial(F.softmax(logits / 0.7, -1), 1).view(8, 8)
    assert torch.equal(ours, theirs) and ours.shape == (8, 8)


def test_sample_categorical_temperature_limits():
    logits = torch.randn(50, 7)
    assert torch.equal(sample_categorical(logits, 0.0), logits.argmax(-1))
    assert torch.equal(sample_categorical(logits, 1e-4), logits.argmax(-1))
    with pytest.raises(ConfigError, match="temperature"):
        sample_categorical(logits, -1.0)


def test_log1mexp_matches_float64_reference():
    d = torch.tensor([1e-8, 1e-3, 0.5, math.log(2.0), 1.0, 10.0, 50.0], dtype=torch.float64)
    ref = torch.log(1 - torch.exp(-d))
    ref[0] = math.log(1e-8)  # 1 - exp(-1e-8) = 1e-8 to first order
    assert torch.allclose(log1mexp(d), ref, rtol=1e-6)


# ------------------------------------------------------------- discretized logistic mixture


def _reference_dlogistic(x, logit_pi, mu, log_s, levels):
    """Direct probability computation with sigmoids in float64 (no log-space tricks)."""
    x, logit_pi, mu, log_s = (t.double() for t in (x, logit_pi, mu, log_s))
    s = log_s.exp()
    v = (2 * x / (levels - 1) - 1)[..., None]
    h = 1 / (levels - 1)
    upper = torch.sigmoid((v + h - mu) / s)
    lower = torch.sigmoid((v - h - mu) / s)
    xe = x[..., None]
    upper = torch.where(xe == levels - 1, torch.ones_like(upper), upper)
    lower = torch.where(xe == 0, torch.zeros_like(lower), lower)
    return ((upper - lower) * torch.softmax(logit_pi, -1)).sum(-1)


@pytest.mark.parametrize("levels", [2, 3, 17, 256])
def test_discretized_logistic_mixture_sums_to_one(levels):
    torch.manual_seed(levels)
    k = 5
    logit_pi, mu, log_s = torch.randn(4, k), torch.randn(4, k), torch.randn(4, k) - 1
    table = discretized_logistic_mixture_table(logit_pi, mu, log_s, levels)  # (4, L)
    assert table.shape == (4, levels)
    assert torch.allclose(table.exp().sum(-1), torch.ones(4), atol=1e-5)


@pytest.mark.parametrize("levels", [2, 5, 256])
def test_discretized_logistic_mixture_matches_direct_sigmoids(levels):
    torch.manual_seed(1)
    n, k = 200, 3
    x = torch.randint(levels, (n,))
    x[:3] = torch.tensor([0, levels - 1, levels // 2])  # always include both edges
    logit_pi, mu, log_s = torch.randn(n, k), torch.randn(n, k) * 0.8, torch.randn(n, k) - 2
    got = discretized_logistic_mixture_log_prob(x, logit_pi, mu, log_s, levels)
    ref = _reference_dlogistic(x, logit_pi, mu, log_s, levels).log()
    assert torch.allclose(got.double(), ref, atol=1e-4)


def test_discretized_logistic_mixture_edges_take_tail_mass():
    # One component centred far below the range: nearly all mass at level 0; far above: at L-1.
    levels = 10
    args = (torch.zeros(1), torch.tensor([-5.0]), torch.tensor([-3.0]))
    assert discretized_logistic_mixture_table(*args, levels)[0].exp() > 0.999
    args = (torch.zeros(1), torch.tensor([5.0]), torch.tensor([-3.0]))
    assert discretized_logistic_mixture_table(*args, levels)[-1].exp() > 0.999


def test_discretized_logistic_mixture_is_stable_in_the_tails():
    # Sharp components far from the observed level: the naive difference of sigmoids is 0.
    x = torch.tensor([3, 0, 255, 128])
    mu = torch.tensor([[0.9], [0.9], [-0.9], [-0.99]], requires_grad=True)
    log_s = torch.full((4, 1), -7.0, requires_grad=True)
    lp = discretized_logistic_mixture_log_prob(x, torch.zeros(4, 1), mu, log_s, 256)
    assert torch.isfinite(lp).all() and (lp < -100).all()
    lp.sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(log_s.grad).all()


def test_check_labels():
    assert check_labels(torch.tensor([0, 2]), 3, 2, "m").dtype == torch.long
    for bad in (None, torch.tensor([0.0, 1.0]), torch.tensor([0, 3]), torch.tensor([0]),
                torch.zeros(2, 1, dtype=torch.long)):
        with pytest.raises(ConfigError):
            check_labels(bad, 3, 2, "m")


@pytest.mark.parametrize("kernel_size,dilation", [(1, 1), (2, 1), (3, 4)])
def test_causal_conv1d_sees_the_past_and_steps_like_the_full_pass(kernel_size, dilation):
    torch.manual_seed(0)
    conv = CausalConv1d(3, 2, kernel_size, dilation).double()
    x = torch.randn(1, 3, 20, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    assert y.shape == (1, 2, 20)
    for t in range(20):
        (g,) = torch.autograd.grad(y[0, :, t].sum(), x, retain_graph=True)
        seen = g[0].abs().sum(0) > 0  # (T,)
        taps = {t - i * dilation for i in range(kernel_size)} & set(range(20))
        assert set(torch.nonzero(seen).flatten().tolist()) == taps
    queue, steps = None, []
    for t in range(20):
        out, queue = conv.step(x[:, :, t].detach(), queue)
        steps.append(out)
    assert torch.allclose(torch.stack(steps, 2), y.detach(), atol=1e-12)
