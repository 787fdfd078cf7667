"""CycleGAN: its losses against direct computations, the two domains, translation."""

import pytest
import torch

import unsup
from unsup.data import load
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.implicit.base import levels_to_unit
from unsup.train import TrainConfig, Trainer

A = DataSpec((1, 8, 8), 17, 10, "image")


def cyclegan(**options):
    torch.manual_seed(0)
    options = {"target_shape": [3, 8, 8], "target_levels": 4, "hidden": 4, "res_blocks": 1,
               "d_hidden": 4, **options}
    return unsup.create("cyclegan", A, **options)


def batch(n=4):
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randint(0, 17, (n, 1, 8, 8), generator=g),
            "x_b": torch.randint(0, 4, (n, 3, 8, 8), generator=g)}


def test_the_translators_loss_is_adversarial_plus_weighted_cycle_terms():
    model = cyclegan(cycle_weight=7.0)
    b = batch()
    torch.manual_seed(1)
    out = model.loss(b, "generator")
    a, xb = levels_to_unit(b["x"], 17), levels_to_unit(b["x_b"], 4)
    cycle = ((model.g_ba(model.g_ab(a)) - a).abs().mean() + (model.g_ab(model.g_ba(xb)) - xb).abs().mean())
    adv = (model.d_b(model.g_ab(a)) - 1).pow(2).mean() + (model.d_a(model.g_ba(xb)) - 1).pow(2).mean()
    torch.testing.assert_close(out["cycle"], cycle.detach())
    torch.testing.assert_close(out["loss"], adv + 7.0 * cycle)
    model.eval()
    with torch.no_grad():
        val = model.loss(b)
    torch.testing.assert_close(val["loss"], (val["cycle_a"] + val["cycle_b"]) / 2)


def test_phases_split_discriminators_from_translators():
    model = cyclegan()
    critic, gen = model.phases()
    assert {id(p) for p in critic.params} == {id(p) for m in (model.d_a, model.d_b) for p in m.parameters()}
    assert {id(p) for p in gen.params} == {id(p) for m in (model.g_ab, model.g_ba) for p in m.parameters()}
    assert set(model.loss(batch(), "critic")) == {"loss"}


def test_translation_both_ways_gives_the_other_domain_levels():
    model = cyclegan()
    b = batch()
    to_b, to_a = model.translate(b["x"], "b"), model.translate(b["x_b"], "a")
    assert to_b.shape == (4, 3, 8, 8) and 0 <= int(to_b.min()) and int(to_b.max()) <= 3
    assert to_a.shape == (4, 1, 8, 8) and int(to_a.max()) <= 16
    rows = model.illustrations(b["x"])["translations"]
    assert [tuple(r.shape) for r in rows] == [(4, 3, 8, 8)] * 3


def test_two_domains_are_needed_and_identity_needs_one_shape():
    with pytest.raises(ConfigError, match="unpaired-A\\+B"):
        unsup.create("cyclegan", load("digits", "train"))
    with pytest.raises(ConfigError, match="unpaired"):
        cyclegan().loss({"x": batch()["x"]}, "critic")
    with pytest.raises(ConfigError, match="identity"):
        cyclegan(identity_weight=5.0)
    with pytest.raises(ConfigError, match="values in"):
        cyclegan().loss({**batch(), "x_b": torch.full((4, 3, 8, 8), 9)}, "critic")


def test_training_on_unpaired_digits_lowers_the_cycle_error():
    train = load("unpaired-digits+colored-digits", "train")
    torch.manual_seed(0)
    model = unsup.create("cyclegan", train, hidden=8, res_blocks=1, d_hidden=8)
    assert model.spec_b.shape == (3, 8, 8) and model.config.target_levels == 4
    test = load("unpaired-digits+colored-digits", "test").batch(torch.arange(64))
    model.eval()
    with torch.no_grad():
        before = float(model.loss(test)["loss"])
    Trainer(model, train, None, TrainConfig(steps=60, batch_size=32, lr=2e-3, progress=False,
                                            tensorboard=False, eval_every=0)).fit()
    model.eval()
    with torch.no_grad():
        after = float(model.loss(test)["loss"])
    assert after < 0.7 * before
