"""A run loses nothing and surprises no one: one run per directory, Ctrl-C keeps the work, a NaN is
never saved, resumed runs say which options they ignore, and bad splits or a bad ``--out`` are found
before the first step."""

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from cli_helpers import run
from idx_files import write_mnist
from test_nothing_lost import TRAIN, _logged_steps, cfg, data, flaky

from unsup.errors import ConfigError, Interrupted, TrainingDiverged
from unsup.progress import StatusLine
from unsup.train import BEST, LAST, Trainer, load_state
from unsup.train.lock import run_lock

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
HOLD = textwrap.dedent("""
    import sys, time
    from unsup.train.lock import run_lock
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
""")


def _holder(out):
    """A process that holds the run lock of ``out`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


# --- one run per directory -------------------------------------------------------------------

def test_a_second_run_into_a_held_directory_is_refused_and_a_killed_holders_lock_is_taken_over(
        tmp_path, capsys):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        code, _, err = run(capsys, *TRAIN[3:], "--out", str(out))
        assert code == 2
        assert f"{out} is in use by another run (process {holder.pid} on " in err
        assert "Traceback" not in err and not (out / LAST).exists()
        with pytest.raises(ConfigError, match="in use by another run"):
            with run_lock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the killed holder's lock is gone with its process: the next run takes the directory
    code, _, err = run(capsys, *TRAIN[3:], "--steps", "20", "--out", str(out))
    assert code == 0, err
    assert load_state(out / LAST)["step"] == 20


def test_two_runs_started_together_leave_one_intact_run(tmp_path):
    out = tmp_path / "conc"
    cmd = TRAIN + ["--steps", "100", "--out", str(out)]
    procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    refused = next(r for r in results if r[2] == 2)
    assert "is in use by another run" in refused[1] or "already holds a run" in refused[1]
    rows = [r.split(",") for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    keys = [(int(r[0]), r[2]) for r in rows if r[1] == "train"]  # (step, metric)
    assert keys == sorted(keys, key=lambda k: k[0]) and len(keys) == len(set(keys))  # one writer
    assert load_state(out / LAST)["step"] == 100


def test_the_lock_is_reentrant_within_a_process_and_a_refused_new_directory_is_removed(tmp_path):
    out = tmp_path / "new"
    with run_lock(out):
        with run_lock(out):  # the CLI holds it, the trainer takes it again
            assert (out / ".lock").exists()
        assert (out / ".lock-owner").exists()  # still held by the outer block
    assert not out.exists()  # created by the lock and left empty: removed


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------

def _start(out, *extra):
    return subprocess.Popen(TRAIN + ["--eval-every", "1000", "--out", str(out), *extra], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training(proc, out, past=20):
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(s > past for s in _logged_steps(out / "metrics.csv")):
            return
        time.sleep(0.005)
    raise AssertionError(f"training did not get past step {past}: {proc.communicate()}")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_the_first_checkpoint_saves_one_that_resumes_exactly(tmp_path, sig, code):
    # --eval-every 1000 and --steps 200: without the signal checkpoint nothing would be on disk
    full = _start(tmp_path / "full")
    out = tmp_path / "stopped"
    victim = _start(out)
    try:
        _wait_for_training(victim, out)
        victim.send_signal(sig)
        _, err = victim.communicate(timeout=120)
        assert victim.returncode == code, err
        step = load_state(out / LAST)["step"]
        assert 20 < step < 200
        assert f"{signal.Signals(sig).name} at step {step}: {out / LAST} holds step {step}" in err
        assert "--resume" in err and "Traceback" not in err
        assert not (out / BEST).exists()  # no validation happened: best is not invented
        resumed = subprocess.run(TRAIN + ["--eval-every", "1000", "--out", str(out), "--resume"],
                                 env=ENV, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert full.wait(timeout=300) == 0
    finally:
        for p in (full, victim):
            if p.poll() is None:
                p.kill()
    a, b = (load_state(d / LAST) for d in (tmp_path / "full", out))
    assert a["step"] == b["step"] == 200
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


def test_a_second_ctrl_c_stops_at_once_and_leaves_no_damaged_file(tmp_path):
    out = tmp_path / "run"
    victim = _start(out)
    try:
        _wait_for_training(victim, out)
        victim.send_signal(signal.SIGINT)
        victim.send_signal(signal.SIGINT)
        _, err = victim.communicate(timeout=120)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 130, err
    if (out / LAST).exists():  # the first signal's checkpoint, whole, or none at all
        assert load_state(out / LAST)["step"] > 20


def test_the_trainer_raises_interrupted_after_saving_and_restores_the_handlers(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    t = Trainer(flaky(), data(), data("val"), cfg(steps=40, eval_every=100), out=tmp_path / "run")
    original = t._train_step

    def step_then_signal(batch):
        out = original(batch)
        if t.step == 6:  # the 7th step: the signal lands mid-step
            os.kill(os.getpid(), signal.SIGINT)
        return out

    t._train_step = step_then_signal
    with pytest.raises(Interrupted, match="SIGINT at step 7") as caught:
        t.fit()
    assert caught.value.exit_code == 130
    assert load_state(tmp_path / "run" / LAST)["step"] == 7
    assert signal.getsignal(signal.SIGINT) is before


# --- a NaN never reaches a checkpoint --------------------------------------------------------

class Poisoned(type(flaky())):
    """The flaky model whose weights become infinite after a chosen training call (its loss at
    that call is still finite: only validation or the weight check can see it)."""

    poison_at = 20

    def log_prob(self, x, y=None):
        lp = super().log_prob(x, y)
        if self.training and self.calls == self.poison_at:
            with torch.no_grad():
                self.logits.fill_(math.inf)
        return lp


def _poisoned():
    torch.manual_seed(0)
    return Poisoned(flaky().spec, flaky().config)


@pytest.mark.parametrize("with_val", [True, False])
def test_non_finite_weights_are_never_saved_and_the_error_names_the_last_good_checkpoint(
        tmp_path, with_val):
    out = tmp_path / "run"
    t = Trainer(_poisoned(), data(), data("val") if with_val else None, cfg(eval_every=10), out=out)
    what = "the validation loss is nan" if with_val else "weight logits is not finite"
    with pytest.raises(TrainingDiverged, match=f"{what} at step 20, so it was not saved; "
                       f"{out / LAST} still holds the last good state \\(step 10"):
        t.fit()
    for name in (LAST, BEST):
        s = load_state(out / name)
        assert s["step"] == 10 and torch.isfinite(s["model"]["logits"]).all()


def test_a_run_that_explodes_at_once_saves_nothing_and_says_so(tmp_path, capsys):
    # the reproduction: validation NaN at step 1
    out = tmp_path / "vae"
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--represent", "binary", "--lr",
                       "1e6", "--steps", "10", "--eval-every", "1", "--out", str(out),
                       "--no-progress", "--no-tensorboard", "--samples", "0")
    assert code == 2
    assert "so it was not saved; no checkpoint holds a good state yet; lower --lr" in err
    assert not (out / LAST).exists() and not (out / BEST).exists()


def test_rollback_also_catches_a_non_finite_validation(tmp_path):
    t = Trainer(_poisoned(), data(), data("val"), cfg(eval_every=10, on_divergence="rollback"),
                out=tmp_path / "run")
    with pytest.warns(RuntimeWarning, match="rolled back to step 10"):
        summary = t.fit()
    assert summary["steps"] == 40 and t.rollbacks == 1
    assert torch.isfinite(load_state(tmp_path / "run" / LAST)["model"]["logits"]).all()


# --- resuming says what it ignores -----------------------------------------------------------

def test_resume_keeps_the_runs_settings_and_names_the_options_it_ignored(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "made", "--data", "shapes", "--data-opt", "n=200", "--data-opt", "n_test=50",
            "--represent", "binary", "--hidden", "16", "--eval-every", "5", "--no-progress",
            "--no-tensorboard", "--samples", "0", "--no-test", "--out", str(out)]
    code, _, err = run(capsys, *base, "--steps", "5")
    assert code == 0, err
    # a new budget is taken; a new learning rate, width or batch size is not
    code, _, err = run(capsys, *base, "--resume", "--steps", "10", "--lr", "0.5", "--batch-size", "8")
    assert code == 0, err
    assert "ignored: --batch-size 8 (the run has 64); --lr 0.5 (the run has 0.001)" in err
    s = load_state(out / LAST)
    assert s["step"] == 10 and s["train_config"]["lr"] == 0.001 and s["train_config"]["batch_size"] == 64
    # the bare minimum resumes too: everything comes from the run
    code, _, err = run(capsys, "train", "made", "--out", str(out), "--resume", "--steps", "15",
                       "--no-progress", "--samples", "0", "--no-test")
    assert code == 0, err
    assert "ignored" not in err and load_state(out / LAST)["step"] == 15
    code, _, err = run(capsys, "train", "nade", "--out", str(out), "--resume", "--steps", "20")
    assert code == 2 and "holds a made run, not nade" in err


# --- found before the first step -------------------------------------------------------------

def test_a_corrupt_test_split_is_found_before_training(tmp_path, capsys):
    root = tmp_path / "mnist"
    write_mnist(root, n_train=60, gz=False)  # official IDX files, then a test image file that is not
    (root / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "made", "--data", "mnist", "--data-dir", str(root),
                       "--represent", "binary", "--steps", "5", "--out", str(out), "--no-progress")
    assert code == 2 and "t10k-images" in err and "Traceback" not in err
    assert not out.exists()  # refused before the first step: nothing was written


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_a_bad_out_is_a_one_line_error_before_the_data_is_read(tmp_path, capsys, kind):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker if kind == "file" else blocker / "run"
    # a dataset that would fail to load: the --out error must come first
    code, _, err = run(capsys, "train", "made", "--data", "mnist", "--data-dir", str(tmp_path / "none"),
                       "--steps", "5", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--out" in err and "mnist" not in err


def test_a_batch_larger_than_the_training_set_is_said(tmp_path, capsys):
    code, _, err = run(capsys, "train", "made", "--data", "shapes", "--data-opt", "n=100",
                       "--data-opt", "n_test=20", "--represent", "binary", "--hidden", "8",
                       "--batch-size", "500", "--steps", "2", "--out", str(tmp_path / "r"),
                       "--no-progress", "--samples", "0", "--no-test")
    assert code == 0, err
    assert "--batch-size 500 is larger than the training set (90 examples)" in err


# --- progress in a log -----------------------------------------------------------------------

def test_progress_to_a_file_is_plain_lines_not_redraws(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNSUP_PROGRESS_EVERY", "0")  # a line per update
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "made", "--data", "shapes", "--data-opt", "n=200",
                            "--data-opt", "n_test=50", "--represent", "binary", "--hidden", "8",
                            "--steps", "30", "--eval-every", "10", "--samples", "4", "--out", str(out))
    assert code == 0, err
    assert "\r" not in err
    lines = err.splitlines()
    assert "train: 1/30 steps (3%)" in err and any(line.startswith("train: 30/30 steps") for line in lines)
    assert any(line.startswith("validation: ") for line in lines)
    assert any(line.startswith("test: ") for line in lines)
    assert any(line.startswith("time: training ") and "test" in line for line in lines)
    timing = json.loads((out / "train.json").read_text())["seconds"]
    assert set(timing) == {"training", "validation", "test", "pictures", "total"}
    assert timing["total"] >= timing["training"] + timing["validation"] + timing["test"]
    assert "bits/dim" in stdout


def test_a_status_line_reports_count_rate_and_postfix():
    sink = io.StringIO()
    bar = StatusLine(total=10, desc="train", unit="step", every=0, file=sink)
    bar.update(3)
    bar.set_postfix({"loss": "0.5"})
    bar.update(2)
    first, second = sink.getvalue().splitlines()
    assert first.startswith("train: 3/10 steps (30%), 0:00:00 elapsed")
    assert second.startswith("train: 5/10 steps (50%)") and second.endswith("loss=0.5")


# --- an evaluation budget ------------------------------------------------------------------------

def test_a_time_limited_evaluation_scores_a_random_subset_and_says_so():
    from unsup.train import evaluate

    model, test = flaky().eval(), data("test")
    full = evaluate(model, test, batch_size=16)
    assert "partial" not in full and full["n"] == 160
    cut = evaluate(model, test, batch_size=16, time_limit=0.0)  # stops after the first batch
    p = cut["partial"]
    assert (p["n"], p["of"], cut["n"]) == (16, 160, 16) and p["nll_se"] > 0
    order = torch.randperm(160, generator=torch.Generator().manual_seed(0))[:16]
    with torch.no_grad():
        lp = model.log_prob(test.batch(order)["x"]).double()
    assert cut["nll"] == pytest.approx(float(-lp.mean()))  # the first batch of a fixed random order
    assert p["nll_se"] == pytest.approx(float(lp.std() / 4))
    roomy = evaluate(model, test, batch_size=16, time_limit=60.0)  # finished in time: the full figure
    assert "partial" not in roomy and roomy["nll"] == pytest.approx(full["nll"])


def test_the_eval_time_bounds_the_end_of_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "made", "--data", "shapes", "--data-opt", "n=2000",
                            "--data-opt", "n_test=2000", "--represent", "binary", "--hidden", "8",
                            "--steps", "3", "--batch-size", "16", "--eval-time", "0.0001",
                            "--samples", "32", "--no-progress", "--out", str(out))
    assert code == 0, err
    result = json.loads((out / "test.json").read_text())
    assert result["partial"]["n"] == 16 and result["partial"]["of"] == 2000 == result["n"] + 1984
    assert "(on 16 of 2000 test examples, a uniform random subset" in stdout
    assert "validation: 16 of 200 random examples" in err
    assert "sampled 8 in" in err and "ran out after 8 of 32" in err
