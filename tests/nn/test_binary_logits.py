"""Binary data as one Bernoulli logit per dimension: the same likelihood as a two-way softmax.

Every categorical autoregressive model emits ``logit_width(2) = 1`` logit ``l`` per binary
dimension, read as the two-way logits ``(0, l)``. These tests prove the equivalence (log-likelihood,
probability tables, sampling), that every such model is still a normalised distribution over all
binary examples, and that weights and optimiser moments of older two-logit runs convert exactly.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from model_checks import all_images

from unsup.data.base import DataSpec
from unsup.models import MODELS, config_for
from unsup.nn.layers import categorical_log_prob, level_log_probs, logit_width, sample_categorical
from unsup.train.checkpoint import (
    merge_two_way_logits,
    merge_two_way_moments,
    two_way_binary_logits,
)


def test_widths():
    assert logit_width(2) == 1 and logit_width(3) == 3 and logit_width(256) == 256


def test_one_logit_is_exactly_the_two_way_softmax():
    torch.manual_seed(0)
    logit = torch.randn(5, 7, 1, dtype=torch.float64) * 4
    pair = torch.cat([torch.zeros_like(logit), logit], -1)
    x = torch.randint(2, (5, 7))
    assert torch.allclose(categorical_log_prob(logit, x), categorical_log_prob(pair, x), atol=1e-6)
    assert torch.allclose(level_log_probs(logit), F.log_softmax(pair, -1), atol=1e-12)
    # a table is normalised, and its level 1 is log sigmoid(l)
    assert torch.allclose(level_log_probs(logit).exp().sum(-1), torch.ones(5, 7, dtype=torch.float64))
    assert torch.allclose(level_log_probs(logit)[..., 1], F.logsigmoid(logit[..., 0]))


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_binary_draws_follow_sigmoid_of_logit_over_temperature(temperature):
    torch.manual_seed(1)
    logits = torch.tensor([-2.0, -0.3, 0.0, 1.5])
    n = 100_000
    draws = sample_categorical(logits[:, None, None].expand(-1, n, 1), temperature)  # (4, n)
    p = torch.sigmoid(logits / temperature)
    se = (p * (1 - p) / n).sqrt()
    assert ((draws.double().mean(1) - p).abs() < 5 * se + 1e-9).all(), (draws.double().mean(1), p)


def test_binary_draws_at_zero_temperature_are_the_argmax_of_the_pair():
    logits = torch.tensor([[-1.0], [0.0], [2.0]])
    pair = torch.cat([torch.zeros_like(logits), logits], -1)
    assert torch.equal(sample_categorical(logits, 0.0), pair.argmax(-1))


IMAGE = DataSpec(kind="image", shape=(1, 2, 3), levels=2)
MODELS_ON_BINARY = {
    "made": {"hidden": [16, 16]},
    "made-onehot-mixture": {"hidden": [16], "num_masks": 3, "ordering": "random"},
    "pixelcnn": {"hidden": 8, "num_layers": 2},
    "gated-pixelcnn": {},
    "pixelsnail": {},
    "transformer": {},
    "lstm": {},
    "bytenet": {},
    "nade": {},
    "wavenet": {},
}


def _model(name, options):
    family = "made" if name.startswith("made") else name
    torch.manual_seed(0)
    config = config_for(family, **options)  # (imports the model modules)
    model = MODELS.get(family)(IMAGE, config)
    return model.eval()


@pytest.mark.parametrize("name", list(MODELS_ON_BINARY))
def test_every_categorical_model_gives_binary_data_one_logit_and_a_distribution(name):
    model = _model(name, MODELS_ON_BINARY[name])
    assert model.num_logits == 1
    x = all_images(IMAGE.shape, 2)  # all 64 binary images
    with torch.no_grad():
        total = model.log_prob(x).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_the_pixelvae_decoder_gives_binary_pixels_one_logit():
    spec = DataSpec(kind="image", shape=(1, 4, 4), levels=2)
    config = config_for("pixelvae")
    model = MODELS.get("pixelvae")(spec, config)
    assert model.num_logits == 1 and model.output_conv.out_channels == 1


def test_older_two_logit_weights_become_their_difference():
    model = _model("made", MODELS_ON_BINARY["made"])
    new = model.state_dict()
    torch.manual_seed(3)
    old = {}
    for k, v in new.items():  # an older checkpoint: rows (a, b) with b - a = the new logit's row
        if k.startswith("layers.2."):
            a = torch.randn_like(v)
            old[k] = torch.stack([a, a + v], 1).reshape(2 * v.shape[0], *v.shape[1:])
        else:
            old[k] = v.clone()
    assert sorted(two_way_binary_logits(model, old)) == ["layers.2.bias", "layers.2.weight"]
    merged = merge_two_way_logits(model, old)
    assert all(torch.allclose(merged[k], new[k], atol=1e-6) for k in new)
    assert two_way_binary_logits(model, new) == []
    # a model with more than two levels never merges anything
    spec = DataSpec(kind="image", shape=(1, 2, 3), levels=3)
    other = MODELS.get("made")(spec, config_for("made", hidden=[8]))
    assert two_way_binary_logits(other, other.state_dict()) == []


def test_older_adam_moments_become_those_of_the_single_logit():
    p = torch.nn.Parameter(torch.zeros(3, 4))
    opt = torch.optim.Adam([p])
    m, v = torch.randn(3, 4), torch.rand(3, 4)
    # the old loss depended on b - a only: gradients -g and g, moments -m and m, v and v
    opt.state[p] = {"step": torch.tensor(5.0),
                    "exp_avg": torch.stack([-m, m], 1).reshape(6, 4),
                    "exp_avg_sq": torch.stack([v, v], 1).reshape(6, 4)}
    merge_two_way_moments(opt)
    assert torch.allclose(opt.state[p]["exp_avg"], m) and torch.allclose(opt.state[p]["exp_avg_sq"], v)
    assert opt.state[p]["step"].item() == 5.0
    assert math.isfinite(float(opt.state[p]["exp_avg"].sum()))
