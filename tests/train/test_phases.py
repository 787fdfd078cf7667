"""Models trained by alternating phases (a GAN's critic and generator) in the one training loop:
each step updates one phase's parameters, with that phase's learning rate and betas; resume, EMA,
--time, divergence handling and checkpoints work as for every other model."""

import math

import pytest
import torch
from torch import nn

import unsup
from unsup.data import load
from unsup.errors import TrainingDiverged
from unsup.models.base import Model, Phase
from unsup.train import LAST, TrainConfig, Trainer, load_state
from unsup.train.trainer import parameter_groups, phase_round


def cfg(**kw) -> TrainConfig:
    base = dict(steps=9, batch_size=32, lr=1e-3, eval_every=4, log_every=1, progress=False,
                tensorboard=False, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def data():
    return load("gaussian-grid", "train", n=256), load("gaussian-grid", "val", n=256)


def gan(**options):
    torch.manual_seed(0)
    options = {"hidden": 16, "latent": 4, "n_critic": 2, "instance_noise": 0.3, "noise_steps": 5,
               **options}
    return unsup.create("gan", data()[0], **options)


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, after: dict, prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before
               if k.startswith(prefix) and before[k].is_floating_point() and "running" not in k)


def test_each_step_updates_only_its_phase_in_the_round_critic_critic_generator():
    train, _ = data()
    t = Trainer(gan(), train, None, cfg(steps=1, eval_every=0))
    assert phase_round(t.model) == ["critic", "critic", "generator"]
    seen = []
    for steps in (1, 2, 3, 4):
        before = state(t.model)
        t.cfg.steps, t.total_steps = steps, steps
        t.fit()
        after = state(t.model)
        seen.append((changed(before, after, "discriminator."), changed(before, after, "generator.")))
    assert seen == [(True, False), (True, False), (False, True), (True, False)]
    # the frozen phase's parameters trained again afterwards: nothing is left frozen
    assert all(p.requires_grad for p in t.model.parameters())


def test_phases_get_their_learning_rate_and_adam_betas():
    model = gan(d_lr=4.0, beta1=0.0, beta2=0.9)
    groups = parameter_groups(model, cfg(lr=1e-4))
    assert [(g["phase"], g["lr"], g["betas"]) for g in groups] == [
        ("critic", 4e-4, (0.0, 0.9)), ("generator", 1e-4, (0.0, 0.9))]
    sgd = parameter_groups(model, cfg(optimizer="sgd"))
    assert all("betas" not in g for g in sgd)  # Adam's betas mean nothing to SGD


class Partial(Model):
    """Phases that forget a parameter, or name one twice."""

    Config = dict

    def __init__(self, twice: bool) -> None:
        super().__init__(None, None)
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)
        self.twice = twice

    def phases(self):
        return (Phase("one", tuple(self.a.parameters())),
                Phase("two", tuple(self.a.parameters()) if self.twice else ()))


@pytest.mark.parametrize("twice, match", [(False, "in no phase"), (True, "earlier phase")])
def test_phases_must_partition_the_trained_parameters(twice, match):
    with pytest.raises(ValueError, match=match):
        parameter_groups(Partial(twice), cfg())


def test_interrupted_and_resumed_equals_uninterrupted_with_ema(tmp_path):
    train, val = data()
    full = Trainer(gan(), train, val, cfg(steps=10, ema=0.9), out=tmp_path / "full")
    full.fit()
    part = Trainer(gan(), train, val, cfg(steps=5, ema=0.9), out=tmp_path / "part")
    part.fit()  # stops after a critic step in the middle of a round
    assert load_state(tmp_path / "part" / LAST)["step"] == 5
    torch.manual_seed(123)  # the checkpoint's RNG state wins
    rest = Trainer(gan(), train, val, cfg(steps=10, ema=0.9), out=tmp_path / "part")
    rest.fit()
    for a, b in ((full.model, rest.model), (full.ema.model, rest.ema.model)):
        sa, sb = state(a), state(b)
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)
    assert int(rest.model.d_steps) == 7  # critic steps 1, 2, 4, 5, 7, 8, 10


def test_logs_keep_each_phase_loss_under_its_name():
    train, val = data()
    t = Trainer(gan(), train, val, cfg(steps=6))
    t.fit()
    last = [r for r in t.history if r["split"] == "train"][-1]
    assert {"critic_loss", "generator_loss", "d_real", "d_fake", "lr"} <= set(last)
    assert "loss" not in last  # a bare "loss" would mix the two players' losses
    val_rows = [r for r in t.history if r["split"] == "val"]
    assert val_rows and all(math.isfinite(r["loss"]) for r in val_rows)  # MMD^2 of samples


def test_time_budget_stops_a_phased_run():
    train, _ = data()
    summary = Trainer(gan(), train, None, cfg(steps=None, time=0.5, eval_every=0)).fit()
    assert summary["steps"] > 3 and summary["train_seconds"] < 5


def test_divergence_stops_with_the_phase_named_or_rolls_back(tmp_path):
    train, val = data()
    model = gan()
    real_loss = model.loss

    def nan_generator_at_step_6(batch, phase=None):
        out = real_loss(batch, phase)
        if phase == "generator" and model.d_steps >= 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    model.loss = nan_generator_at_step_6
    with pytest.raises(TrainingDiverged, match="the generator loss is nan at step 6"):
        Trainer(model, train, val, cfg(steps=9), out=tmp_path / "stop").fit()
    assert load_state(tmp_path / "stop" / LAST)["step"] == 4  # the last good checkpoint is kept

    model = gan()
    calls = {"n": 0}
    real = model.loss

    def one_nan(batch, phase=None):
        out = real(batch, phase)
        calls["n"] += phase is not None
        if calls["n"] == 6:  # one bad step only: after the rollback training goes on
            out["loss"] = out["loss"] * float("nan")
        return out

    model.loss = one_nan
    with pytest.warns(RuntimeWarning, match="rolled back to step 4"):
        summary = Trainer(model, train, val, cfg(steps=9, on_divergence="rollback")).fit()
    assert summary["steps"] == 9
