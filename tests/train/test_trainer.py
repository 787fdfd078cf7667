import csv
import dataclasses
import math

import pytest
import torch
from torch import nn

from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import CheckpointError, ConfigError, TrainingDiverged
from unsup.models.base import LikelihoodModel
from unsup.train import LAST, TrainConfig, Trainer, evaluate, load_state, save_state
from unsup.train import checkpoint as ckpt_mod


@dataclasses.dataclass
class TinyConfig:
    hidden: int = 16
    dropout: float = 0.3
    nan_after: int = -1


class Tiny(LikelihoodModel):
    """Independent categoricals whose logits come from a noisy (dropout) network."""

    Config = TinyConfig

    def __init__(self, spec, config):
        super().__init__(spec, config)
        self.net = nn.Sequential(nn.Linear(1, config.hidden), nn.Dropout(config.dropout),
                                 nn.Linear(config.hidden, spec.dims * spec.levels))
        self.calls = 0

    def log_prob(self, x, y=None):
        logits = self.net(torch.ones(1, 1, device=x.device)).view(self.spec.dims, self.spec.levels)
        lp = torch.log_softmax(logits, -1)
        out = lp.gather(1, x.reshape(len(x), -1).T).sum(0)
        self.calls += 1
        if self.config.nan_after >= 0 and self.calls > self.config.nan_after and self.training:
            out = out * float("nan")
        return out


def make_data(n=200, dynamic=True):
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(n, 1, 3, 3, generator=g)
    spec = DataSpec((1, 3, 3), 2)
    if not dynamic:
        return TensorDataset((probs > 0.5).long(), spec, name="toy")
    return TensorDataset(probs, spec, name="toy", binarize_on_draw=True)


def fixed(ds):
    x = (ds.x > 0.5).long() if ds.x.is_floating_point() else ds.x
    return TensorDataset(x, ds.spec, name="toy", split="val")


def cfg(**kw):
    base = dict(steps=30, batch_size=16, lr=0.05, eval_every=10, progress=False,
                tensorboard=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def tiny(spec, **kw):
    torch.manual_seed(0)  # the caller seeds initialisation (the CLI does it before create)
    return Tiny(spec, TinyConfig(**kw))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    data = make_data()
    val = fixed(data)
    spec = data.spec
    # warm-up + cosine + EMA so that scheduler and EMA state are part of what must resume
    opts = dict(warmup=5, schedule="cosine", ema=0.9)
    full = Trainer(tiny(spec), data, val, cfg(**opts), out=tmp_path / "a")
    full.fit()
    part = Trainer(tiny(spec), data, val, cfg(**opts), out=tmp_path / "b")
    draw, calls = data.batch, []

    def interrupt_at_step_18(index, generator=None):
        calls.append(1)
        if len(calls) == 18:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during step 18
        return draw(index, generator)

    part.train_set = type("Interrupted", (), {"batch": staticmethod(interrupt_at_step_18)})()
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    assert load_state(tmp_path / "b" / LAST)["step"] == 10  # the last checkpoint
    # ...a fresh process (fresh model, other RNG state) continues from last.safetensors
    resumed = Trainer(tiny(spec), data, val, cfg(**opts), out=tmp_path / "b")
    torch.manual_seed(999)  # whatever RNG state the new process has, the checkpoint's wins
    resumed.fit(resume=True)
    assert resumed.step == 30
    a, b = weights(full.model), weights(resumed.model)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k, v in weights(full.ema.model).items():
        assert torch.equal(v, resumed.ema.model.state_dict()[k]), k
    # the CSV log of the resumed run has no duplicated steps
    with open(tmp_path / "b" / "metrics.csv") as f:
        rows = [(r["step"], r["split"], r["metric"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows))


def test_same_seed_same_weights_other_seed_other_weights():
    data = make_data()
    runs = []
    for seed in (3, 3, 4):
        t = Trainer(tiny(data.spec), data, None, cfg(seed=seed))
        t.fit()
        runs.append(weights(t.model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_training_reduces_the_loss_and_tracks_the_best_checkpoint(tmp_path):
    data = make_data(dynamic=False)
    val = fixed(data)
    model = tiny(data.spec, dropout=0.0)
    before = evaluate(model, val)["bpd"]
    t = Trainer(model, data, val, cfg(steps=60), out=tmp_path)
    t.fit()
    after = evaluate(t.model, val)["bpd"]
    assert after < before
    assert math.isclose(t.best_val, min(r["loss"] for r in t.history if r["split"] == "val"))
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / LAST).exists()
    assert (tmp_path / "metrics.csv").read_text().startswith("step,split,metric,value,time")


def test_nan_loss_stops_with_the_step_and_the_loss():
    data = make_data()
    t = Trainer(tiny(data.spec, nan_after=4), data, None, cfg())
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 5"):
        t.fit()


def test_budgets():
    data = make_data(n=100)
    t = Trainer(tiny(data.spec), data, None, cfg(steps=None, epochs=2.5))
    assert t.total_steps == math.ceil(2.5 * (100 // 16))
    t = Trainer(tiny(data.spec), data, None, cfg(steps=10, epochs=100))
    assert t.total_steps == 10
    t = Trainer(tiny(data.spec), data, None, cfg(steps=None, time=0.3))
    summary = t.fit()
    assert summary["steps"] > 0 and 0.3 <= summary["train_seconds"] < 5
    with pytest.raises(ConfigError, match="budget"):
        Trainer(tiny(data.spec), data, None, cfg(steps=None))
    with pytest.raises(ConfigError, match="cosine"):
        Trainer(tiny(data.spec), data, None,
                cfg(steps=None, time=1.0, schedule="cosine"))


def test_learning_rate_warmup_then_cosine():
    data = make_data(n=160)
    t = Trainer(tiny(data.spec), data, None,
                cfg(steps=100, warmup=10, schedule="cosine", lr=1.0))
    f = t._lr_factor
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0)


def test_every_epoch_visits_every_example_once():
    from unsup.train.trainer import BatchSchedule

    s = BatchSchedule(n=50, batch_size=10, seed=0)
    seen = torch.cat([s.index(i) for i in range(5)])
    assert sorted(seen.tolist()) == list(range(50))
    assert not torch.equal(torch.cat([s.index(i) for i in range(5, 10)]), seen)


def test_checkpoints_are_safetensors_and_never_unpickled(tmp_path):
    path = tmp_path / "c.safetensors"
    save_state(path, {"w": torch.arange(3.0), "step": 7, "t": (1, "a"), "none": None,
                      "nested": {0: {"m": torch.ones(2)}}})
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8:9] == b"{" and header_len < path.stat().st_size
    s = load_state(path)
    assert s["step"] == 7 and s["t"] == (1, "a") and s["none"] is None
    assert torch.equal(s["nested"][0]["m"], torch.ones(2))
    # a pickle (what torch.save writes) is refused, not executed
    torch.save({"w": torch.ones(1)}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="not a readable unsup checkpoint"):
        load_state(tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_state(tmp_path / "missing")


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_state(path, {"step": 1, "w": torch.ones(2)})

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "save_file", broken)
    with pytest.raises(OSError):
        save_state(path, {"step": 2, "w": torch.zeros(2)})
    assert load_state(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_bad_device_and_options_are_clear():
    data = make_data()
    with pytest.raises(ConfigError, match="device"):
        Trainer(tiny(data.spec), data, None, cfg(device="tpu"))
    with pytest.raises(ConfigError, match="--amp"):
        Trainer(tiny(data.spec), data, None, cfg(amp="fp8"))


def test_batch_feeder_gives_the_batch_of_the_step_asked_for_drawn_ahead_or_not():
    from unsup.train.feed import BatchFeeder

    drawn = []

    def draw(step):
        drawn.append(step)
        return {"x": torch.full((2,), step)}

    feeder = BatchFeeder(draw, prefetch=True)
    steps = [0, 1, 2, 3, 1, 2, 7]  # a rollback to step 1, then a jump
    got = [int(feeder(s)["x"][0]) for s in steps]
    feeder.close()
    assert got == steps
    assert drawn[:4] == [0, 1, 2, 3]  # 1, 2, 3 were drawn ahead, one call each
    plain = BatchFeeder(draw)
    drawn.clear()
    assert int(plain(5)["x"][0]) == 5 and drawn == [5]  # no prefetch: nothing drawn ahead


def test_prefetching_batches_changes_no_number_of_a_run(tmp_path):
    data = make_data()  # dynamic binarisation: each step's batch has randomness of its own
    runs = []
    for prefetch in ("off", "on"):
        t = Trainer(tiny(data.spec), data, fixed(data), cfg(prefetch=prefetch),
                    out=tmp_path / prefetch)
        t.fit()
        runs.append(weights(t.model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    with pytest.raises(ConfigError, match="--prefetch must be auto, on or off"):
        cfg(prefetch="yes").validate()


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_every_optimizer_trains_and_resumes_exactly(tmp_path, optimizer):
    data = make_data()
    opts = dict(optimizer=optimizer, lr=0.5 if optimizer == "sgd" else 5.0, momentum=0.9,
                weight_decay=1e-4, steps=20, log_every=1)
    full = Trainer(tiny(data.spec, dropout=0.0), data, None, cfg(**opts), out=tmp_path / "a")
    full.fit()
    assert type(full.optimizer).__name__ == {"sgd": "SGD", "lars": "LARS"}[optimizer]
    part = Trainer(tiny(data.spec, dropout=0.0), data, None, cfg(**{**opts, "steps": 10}),
                   out=tmp_path / "b")
    part.fit()
    resumed = Trainer(tiny(data.spec, dropout=0.0), data, None, cfg(**opts), out=tmp_path / "b")
    resumed.fit(resume=True)
    for k, v in weights(full.model).items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    first = [r["loss"] for r in full.history if r["split"] == "train"]
    assert first[-1] < first[0]


def test_lars_scales_each_weight_matrix_step_by_its_trust_ratio():
    # one step without momentum: w <- w - lr * eta * ||w|| / ||g|| * g for a matrix; plain SGD for
    # a bias (a vector)
    lin = nn.Linear(3, 2)
    data = make_data()
    t = Trainer(tiny(data.spec), data, None, cfg(optimizer="lars", lr=1.0, momentum=0.0))
    t.optimizer.__init__([lin.weight, lin.bias], lr=1.0, momentum=0.0, weight_decay=0.0)
    w, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    lin(torch.randn(5, 3)).pow(2).sum().backward()
    gw, gb = lin.weight.grad.clone(), lin.bias.grad.clone()
    t.optimizer.step()
    torch.testing.assert_close(lin.weight.detach(), w - 1e-3 * w.norm() / gw.norm() * gw)
    torch.testing.assert_close(lin.bias.detach(), b - gb)


def test_parameters_without_gradients_are_not_optimised_and_bad_optimizers_are_named():
    data = make_data()
    model = tiny(data.spec)
    model.net[0].requires_grad_(False)
    t = Trainer(model, data, None, cfg(optimizer="sgd"))
    given = {id(p) for group in t.optimizer.param_groups for p in group["params"]}
    assert given == {id(p) for p in model.net[2].parameters()}
    with pytest.raises(ConfigError, match="--optimizer must be one of adamw, sgd, lars"):
        Trainer(tiny(data.spec), data, None, cfg(optimizer="adam"))
    with pytest.raises(ConfigError, match="--momentum"):
        Trainer(tiny(data.spec), data, None, cfg(optimizer="sgd", momentum=1.5))
