"""Stacked denoising autoencoders: greedy phases by a step counter, frozen lower layers."""

import pytest
import torch
from model_checks import assert_training_reduces_loss

import unsup.models as models
from unsup.data.base import DataSpec
from unsup.errors import ConfigError

SPEC = DataSpec((1, 4, 4), 256, 10)
TINY = {"layers": [12, 8, 4], "steps_per_layer": 3}


def _batch(n: int = 16) -> dict[str, torch.Tensor]:
    return {"x": torch.randint(0, 256, (n, 1, 4, 4))}


def _layer_params(model, k: int) -> list[torch.Tensor]:
    return [p.detach().clone() for p in [*model.stage(k).parameters(), *model.decoders[k].parameters()]]


def _adam_steps(model, opt, batch, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)  # what the trainer does: frozen layers get no gradient
        model.loss(batch)["loss"].backward()
        opt.step()


def test_counter_advances_in_training_only_and_switches_layers():
    model = models.create("stacked-dae", SPEC, **TINY)
    phases = []
    for _ in range(12):
        phases.append(model.phase)
        model.loss(_batch())
    assert phases == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]  # then the top layer keeps training
    model.eval()
    model.loss(_batch())
    assert int(model.step) == 12
    tuned = models.create("stacked-dae", SPEC, **TINY, finetune=True)
    tuned.step.fill_(9)
    assert tuned.phase == 3


def test_frozen_lower_layers_do_not_change_while_a_higher_layer_trains():
    model = models.create("stacked-dae", SPEC, **TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = _batch()
    _adam_steps(model, opt, batch, 3)  # layer 0 (Adam now has moments for it)
    before = [_layer_params(model, k) for k in range(3)]
    _adam_steps(model, opt, batch, 3)  # layer 1
    after = [_layer_params(model, k) for k in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0], strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before[1], after[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before[2], after[2], strict=True))


def test_finetuning_trains_every_layer():
    model = models.create("stacked-dae", SPEC, **TINY, finetune=True)
    model.step.fill_(9)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [_layer_params(model, k) for k in range(3)]
    _adam_steps(model, opt, _batch(), 2)
    for k in range(3):
        assert all(not torch.equal(a, b) for a, b in zip(before[k], _layer_params(model, k), strict=True))


def test_upper_layer_objective_is_its_denoising_loss_on_clean_codes():
    model = models.create("stacked-dae", SPEC, **TINY, corrupted_weight=0.8)
    model.step.fill_(3)  # layer 1
    x = _batch(5)["x"]
    torch.manual_seed(7)
    loss = model.loss({"x": x})["loss"]
    torch.manual_seed(7)
    h = model.stage(0)(x.float().flatten(1) / 255)  # (5, 12) clean codes of layer 0
    chosen = torch.rand_like(h) < 0.25
    out = model.decoders[1](model.stage(1)(h.masked_fill(chosen, 0)))
    err = torch.nn.functional.binary_cross_entropy_with_logits(out, h, reduction="none")
    assert loss.item() == pytest.approx((torch.where(chosen, 1.6, 0.4) * err).mean().item(), rel=1e-5)


def test_validation_loss_is_the_whole_stack_reconstruction():
    model = models.create("stacked-dae", SPEC, **TINY, recon="mse").eval()
    x = _batch(4)["x"]
    images = x.float() / 255
    out = model.loss({"x": x})
    z = model.encode(x)  # (4, 4) top code
    assert z.shape == (4, 4) and model.feature_dim == 4
    recon = model.decoders[0](model.decoders[1](model.decoders[2](z)))
    assert out["loss"].item() == pytest.approx((recon - images.flatten(1)).pow(2).mean().item(), rel=1e-5)
    assert model.reconstruct(x).shape == x.shape and not model.reconstruct(x).is_floating_point()


def test_state_dict_round_trip_restores_the_phase():
    model = models.create("stacked-dae", SPEC, **TINY)
    for _ in range(4):
        model.loss(_batch())
    copy = models.create("stacked-dae", SPEC, **TINY)
    copy.load_state_dict(model.state_dict())
    assert int(copy.step) == 4 and copy.phase == model.phase == 1
    x = _batch(3)["x"]
    assert torch.equal(copy.encode(x), model.encode(x))


def test_one_step_and_few_adam_steps_reduce_the_loss():
    model = models.create("stacked-dae", SPEC, layers=[12, 8], steps_per_layer=100)
    out = model.loss(_batch())
    assert set(out) == {"loss", "layer"} and torch.isfinite(out["loss"])
    assert_training_reduces_loss(model, _batch(), lr=1e-2, steps=5)


def test_paper_preset_builds():
    model = models.create("stacked-dae", SPEC, preset="paper")
    assert model.feature_dim == 1000 and model.config.noise == "masking"


@pytest.mark.parametrize("options,match", [
    ({"layers": []}, "layers"),
    ({"layers": [8, 0]}, "layers"),
    ({"steps_per_layer": 0}, "steps_per_layer"),
    ({"activation": "relu"}, "sigmoid"),
    ({"noise": "blur"}, "noise"),
])
def test_bad_options_raise(options, match):
    with pytest.raises(ConfigError, match=match):
        models.create("stacked-dae", SPEC, **{**TINY, **options})
