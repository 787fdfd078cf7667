"""Nothing lost: a killed run resumes exactly, damaged checkpoints are refused by name, recent
checkpoints are kept on request, and a diverged run can roll back instead of stopping."""

import csv
import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import unsup
from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import CheckpointError, ConfigError, TrainingDiverged
from unsup.models.base import LikelihoodModel
from unsup.train import BEST, LAST, TrainConfig, Trainer, load_state, save_state

# --- a run killed with SIGKILL --------------------------------------------------------------

# MADE on generated binary shapes (no scikit-learn import: each process starts in seconds), with
# dynamic binarisation, warm-up + cosine and EMA, so data RNG, scheduler and EMA must all resume.
TRAIN = [sys.executable, "-m", "unsup.cli", "train", "made", "--data", "shapes",
         "--data-opt", "n=1000", "--data-opt", "n_test=100", "--represent", "binary-dynamic",
         "--hidden", "32", "--steps", "200", "--eval-every", "40", "--log-every", "10",
         "--warmup", "20", "--schedule", "cosine", "--ema", "0.9", "--seed", "5",
         "--no-progress", "--no-tensorboard", "--samples", "0", "--no-test"]


def _logged_steps(path):
    """Steps of the training rows in a metrics.csv being written (a torn last line is skipped)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [int(r["step"]) for r in csv.DictReader(lines[:-1]) if r.get("split") == "train"]


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    procs = []

    def start(out, name):
        with open(tmp_path / f"{name}.err", "w") as err:
            procs.append(subprocess.Popen(TRAIN + ["--out", str(out)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=err))
        return procs[-1]

    try:
        victim = start(killed_dir, "victim")
        # Kill once a checkpoint exists and training has gone past it (a train row after step
        # 40): the kill lands between checkpoints, mid-epoch (14 steps an epoch), whatever the speed.
        deadline, past_checkpoint = time.monotonic() + 120, False
        while victim.poll() is None and time.monotonic() < deadline and not past_checkpoint:
            time.sleep(0.005)
            past_checkpoint = (killed_dir / LAST).exists() and any(
                s > 40 for s in _logged_steps(killed_dir / "metrics.csv"))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert past_checkpoint, (tmp_path / "victim.err").read_text()
        assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        at_kill = load_state(killed_dir / LAST)["step"]  # 40, unless the run raced on to 80, 120..
        assert at_kill % 40 == 0 and 40 <= at_kill < 200

        full = start(full_dir, "full")  # the uninterrupted reference, alongside the resumed run
        resumed = subprocess.run(TRAIN + ["--out", str(killed_dir), "--resume"], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert full.wait(timeout=300) == 0, (tmp_path / "full.err").read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    a, b = load_state(full_dir / LAST), load_state(killed_dir / LAST)
    assert a["step"] == b["step"] == 200
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"
    for p, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer"]["state"][p]["exp_avg_sq"])
    with open(killed_dir / "metrics.csv", newline="") as f:
        rows = [(r["step"], r["split"], r["metric"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows))  # the redone steps replaced the killed run's rows
    assert json.loads((killed_dir / "train.json").read_text())["steps"] == 200


# --- a tiny model with NaNs on demand ----------------------------------------------------------

@dataclasses.dataclass
class FlakyConfig:
    nan_at: tuple[int, ...] = ()  # training calls (1-based) whose loss is NaN
    nan_from: int = 0  # every training call from this one on is NaN (0: never)


class Flaky(LikelihoodModel):
    """Independent categoricals (one logit table) whose loss is NaN at chosen training calls."""

    Config = FlakyConfig

    def __init__(self, spec, config):
        super().__init__(spec, config)
        self.logits = nn.Parameter(0.1 * torch.randn(spec.dims, spec.levels))
        self.calls = 0

    def log_prob(self, x, y=None):
        self.check_input(x)
        lp = torch.log_softmax(self.logits, -1).gather(1, x.reshape(len(x), -1).T).sum(0)  # (B,)
        if self.training:
            self.calls += 1
            c = self.config
            if self.calls in c.nan_at or (c.nan_from and self.calls >= c.nan_from):
                lp = lp * float("nan")
        return lp


SPEC = DataSpec((1, 3, 3), 2)


def data(split="train"):
    g = torch.Generator().manual_seed(1 if split == "train" else 2)
    return TensorDataset((torch.rand(160, 1, 3, 3, generator=g) > 0.3).long(), SPEC, name="toy",
                         split=split)


def flaky(**kw):
    torch.manual_seed(0)
    return Flaky(SPEC, FlakyConfig(**kw))


def cfg(**kw):
    return TrainConfig(**{**dict(steps=40, batch_size=16, lr=0.05, eval_every=10, log_every=5,
                                 progress=False, tensorboard=False, seed=3), **kw})


# --- damaged checkpoints -------------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path):
    """A real checkpoint of a short run, and its bytes."""
    t = Trainer(flaky(), data(), data("val"), cfg(steps=10), out=tmp_path / "run",
                meta={"model": "flaky"})
    t.fit()
    path = tmp_path / "run" / LAST
    return path, path.read_bytes()


def _header(raw):
    n = int.from_bytes(raw[:8], "little")
    return n, raw[8:8 + n]


def _write(tmp_path, raw, name="damaged.safetensors"):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def _refused(path, *words):
    with pytest.raises(CheckpointError) as e:
        load_state(path)
    message = str(e.value)
    assert str(path) in message, message
    for w in words:
        assert w in message, message
    return message


def test_the_metadata_says_who_wrote_the_checkpoint_and_what_it_holds(checkpoint):
    path, _ = checkpoint
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["unsup.version"] == unsup.__version__ and meta["torch.version"] == torch.__version__
    assert len(meta["unsup.sha256"]) == 64
    s = load_state(path)
    assert s["meta"]["model"] == "flaky" and s["step"] == 10
    assert s["metrics"]["loss"] == pytest.approx(s["best_val"]) and "bpd" in s["metrics"]
    assert s["lr_scale"] == 1.0 and s["rollbacks"] == 0


def test_a_truncated_checkpoint_is_refused(checkpoint, tmp_path):
    _, raw = checkpoint
    n, _ = _header(raw)
    _refused(_write(tmp_path, raw[:-10]), "truncated", "missing at the end")
    _refused(_write(tmp_path, raw[:8 + n // 2]), "truncated", "header")
    _refused(_write(tmp_path, raw[:5]), "truncated")
    _refused(_write(tmp_path, b""), "empty")


def test_altered_tensor_bytes_fail_the_checksum(checkpoint, tmp_path):
    _, raw = checkpoint
    n, _ = _header(raw)
    for at in (8 + n, len(raw) // 2 + n // 2, len(raw) - 1):  # first, middle, last data byte
        damaged = bytearray(raw)
        damaged[at] ^= 0x01  # one flipped bit: safetensors alone would load it
        _refused(_write(tmp_path, bytes(damaged)), "checksum", "altered")


def test_an_altered_or_garbled_header_is_refused(checkpoint, tmp_path):
    _, raw = checkpoint
    n, header = _header(raw)
    # still valid JSON, still the same size: only the checksum can tell
    step = header.replace(b'[\\"step\\", 10]', b'[\\"step\\", 90]')
    dtype = header.replace(b'"F32"', b'"I32"', 1)
    for edited in (step, dtype):
        assert edited != header and len(edited) == n
        _refused(_write(tmp_path, raw[:8] + edited + raw[8 + n:]), "checksum")
    garbled = b"[" + header[1:]
    _refused(_write(tmp_path, raw[:8] + garbled + raw[8 + n:]), "garbled")
    _refused(_write(tmp_path, (10**12).to_bytes(8, "little") + raw[8:]), "not a safetensors file")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch UNPICKLED",))


def test_pickles_are_refused_and_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.ones(1), "x": _Exploit()}, tmp_path / "model.pt")
    _refused(tmp_path / "model.pt", "torch.save pickle", "never loaded")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_Exploit()))
    _refused(tmp_path / "raw.pkl", "Python pickle", "never loaded")
    assert not (tmp_path / "UNPICKLED").exists()


def test_a_checkpoint_without_checksum_loads_with_a_warning(checkpoint, tmp_path):
    path, _ = checkpoint
    with safe_open(str(path), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k == "unsup"}  # as older unsup wrote
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=meta)
    with pytest.warns(UserWarning, match="no checksum"):
        s = load_state(tmp_path / "old.safetensors")
    assert s["step"] == 10
    # ...and a run resumes from it
    t = Trainer(flaky(), data(), None, cfg(steps=20), out=tmp_path / "old-run")
    (tmp_path / "old-run").mkdir()
    (tmp_path / "old.safetensors").rename(tmp_path / "old-run" / LAST)
    with pytest.warns(UserWarning, match="no checksum"):
        assert t.fit()["steps"] == 20


def test_resuming_from_a_damaged_checkpoint_is_a_clear_error(checkpoint):
    path, raw = checkpoint
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    t = Trainer(flaky(), data(), None, cfg(steps=20), out=path.parent)
    with pytest.raises(CheckpointError, match="last.safetensors is not a readable unsup checkpoint"):
        t.fit()


# --- --keep-last ----------------------------------------------------------------------------------

def test_keep_last_keeps_the_n_most_recent_checkpoints(tmp_path):
    out = tmp_path / "run"
    Trainer(flaky(), data(), data("val"), cfg(steps=50, keep_last=3), out=out).fit()
    kept = sorted(p.name for p in out.glob("step-*.safetensors"))
    assert kept == ["step-000030.safetensors", "step-000040.safetensors", "step-000050.safetensors"]
    for name in kept:
        assert load_state(out / name)["step"] == int(name[5:11])
    assert not list(out.glob(".*tmp"))  # no temporaries left behind
    # a resumed run goes on numbering and pruning
    Trainer(flaky(), data(), data("val"), cfg(steps=70, keep_last=3), out=out).fit()
    assert sorted(p.name for p in out.glob("step-*")) == [
        "step-000050.safetensors", "step-000060.safetensors", "step-000070.safetensors"]
    assert (out / LAST).exists() and (out / BEST).exists()
    # the default keeps only last and best
    Trainer(flaky(), data(), data("val"), cfg(steps=30), out=tmp_path / "plain").fit()
    assert sorted(p.name for p in (tmp_path / "plain").glob("*.safetensors")) == [BEST, LAST]


def test_keep_last_copies_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "run"
    Trainer(flaky(), data(), None, cfg(steps=30, keep_last=2), out=out).fit()
    assert sorted(p.name for p in out.glob("step-*")) == ["step-000020.safetensors",
                                                         "step-000030.safetensors"]
    assert (out / "step-000030.safetensors").read_bytes() == (out / LAST).read_bytes()
    assert load_state(out / "step-000020.safetensors")["step"] == 20


def test_the_command_line_passes_the_options_on(tmp_path, capsys):
    from unsup.cli import main

    out = tmp_path / "run"
    code = main(["train", "histogram", "--data", "toy-1d", "--steps", "6", "--eval-every", "2",
                 "--out", str(out), "--keep-last", "2", "--on-divergence", "rollback",
                 "--rollback-lr-factor", "0.25", "--max-rollbacks", "1", "--no-progress",
                 "--no-tensorboard", "--samples", "0", "--no-test"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.glob("step-*")) == ["step-000004.safetensors",
                                                         "step-000006.safetensors"]
    c = load_state(out / LAST)["train_config"]
    assert (c["keep_last"], c["on_divergence"], c["rollback_lr_factor"], c["max_rollbacks"]) == (
        2, "rollback", 0.25, 1)


def test_resuming_removes_the_temporary_file_of_a_write_that_was_killed(tmp_path):
    out = tmp_path / "run"
    Trainer(flaky(), data(), None, cfg(steps=10), out=out).fit()
    stale = out / ".last.safetensors.k1ll3d.tmp"  # what SIGKILL during save_state leaves
    stale.write_bytes(b"half a checkpoint")
    Trainer(flaky(), data(), None, cfg(steps=20), out=out).fit()
    assert not stale.exists() and load_state(out / LAST)["step"] == 20


# --- divergence ----------------------------------------------------------------------------------

def test_rollback_reloads_the_last_checkpoint_with_a_lower_learning_rate(tmp_path):
    summaries = {}
    for out in (None, tmp_path / "run"):  # in memory, and from last.safetensors
        t = Trainer(flaky(nan_at=(25,)), data(), data("val"),
                    cfg(on_divergence="rollback"), out=out)
        with pytest.warns(RuntimeWarning, match=r"loss is nan at step 25: rolled back to step 20"):
            summary = t.fit()
        assert summary["steps"] == 40 and t.rollbacks == 1 and t.lr_scale == 0.5
        assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5)
        assert [r for r in t.history if r["split"] == "rollback"] == [
            {"step": 20, "split": "rollback", "diverged_at": 25.0, "lr_scale": 0.5}]
        summaries[out] = {k: v.clone() for k, v in t.model.state_dict().items()}
    a, b = summaries.values()
    assert all(torch.equal(a[k], b[k]) for k in a)  # both kinds of rollback point agree
    # without the NaN the learning rate stays and the weights differ
    t = Trainer(flaky(), data(), data("val"), cfg(on_divergence="rollback"))
    t.fit()
    assert t.rollbacks == 0 and not torch.equal(t.model.logits, a["logits"])
    # the event is in metrics.csv
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        events = [(r["step"], r["metric"], r["value"]) for r in csv.DictReader(f)
                  if r["split"] == "rollback"]
    assert events == [("20", "diverged_at", "25"), ("20", "lr_scale", "0.5")]


def test_the_lowered_learning_rate_survives_a_restart(tmp_path):
    out = tmp_path / "run"
    # the NaN comes before the first checkpoint: the rollback point is the initial state
    t = Trainer(flaky(nan_at=(4,)), data(), None, cfg(steps=30, on_divergence="rollback"), out=out)
    with pytest.warns(RuntimeWarning, match="rolled back to step 0"):
        t.fit()
    s = load_state(out / LAST)
    assert s["step"] == 30 and s["lr_scale"] == 0.5 and s["rollbacks"] == 1
    resumed = Trainer(flaky(), data(), None, cfg(steps=40, on_divergence="rollback"), out=out)
    resumed.fit()
    assert resumed.lr_scale == 0.5 and resumed.rollbacks == 1
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_after_max_rollbacks_the_run_stops_as_diverged():
    t = Trainer(flaky(nan_from=25), data(), None,
                cfg(on_divergence="rollback", max_rollbacks=2, rollback_lr_factor=0.1))
    with pytest.warns(RuntimeWarning, match="rolled back") as caught:
        with pytest.raises(TrainingDiverged, match=r"loss is nan .*\(after 2 rollback\(s\)"):
            t.fit()
    assert len([w for w in caught if "rolled back" in str(w.message)]) == 2
    assert t.lr_scale == pytest.approx(0.01)


def test_the_default_still_stops_at_the_first_nan():
    t = Trainer(flaky(nan_at=(3,)), data(), None, cfg())
    with pytest.raises(TrainingDiverged, match="loss is nan at step 3"):
        t.fit()


@pytest.mark.parametrize("option, message", [
    ({"keep_last": 0}, "--keep-last"), ({"on_divergence": "retry"}, "--on-divergence"),
    ({"rollback_lr_factor": 0.0}, "--rollback-lr-factor"),
    ({"rollback_lr_factor": 2.0}, "--rollback-lr-factor"), ({"max_rollbacks": -1}, "--max-rollbacks"),
])
def test_bad_nothing_lost_options_are_config_errors(option, message):
    with pytest.raises(ConfigError, match=message):
        cfg(**option).validate()


def test_save_state_then_load_state_round_trips_every_dtype(tmp_path):
    state = {"f": torch.randn(3, 2), "h": torch.ones(2, dtype=torch.bfloat16), "scalar": torch.tensor(3),
             "b": torch.tensor([True, False]), "empty": torch.empty(0, 4), "n": 1}
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    for k, v in state.items():
        assert torch.equal(back[k], v) if isinstance(v, torch.Tensor) else back[k] == v
