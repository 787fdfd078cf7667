"""The command line end to end, in-process, on the embedded digits."""

import json

import pytest
from cli_helpers import run

import unsup.models
from unsup.cli import main
from unsup.cli.options import parse_duration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "made", "--data", "digits", "--represent", "binary", "--steps", "30",
                 "--eval-every", "10", "--out", str(out), "--no-progress", "--samples", "16",
                 "--hidden", "64"])
    assert code == 0
    return out


def test_train_writes_the_run_and_reports_test_bits_per_dim(trained, capsys):
    for name in ("last.safetensors", "best.safetensors", "metrics.csv", "samples.png",
                 "train.json", "test.json"):
        assert (trained / name).exists(), name
    assert any((trained / "tb").iterdir())
    test = json.loads((trained / "test.json").read_text())
    assert test["split"] == "test" and test["n"] == 359 and test["exact"] is True
    assert 0 < test["bpd"] < 1.0  # binary data: an untrained model is at 1 bit/dim


def test_eval_json_matches_the_report_written_at_train_time(trained, capsys):
    code, out, _ = run(capsys, "eval", str(trained), "--json")
    assert code == 0
    r = json.loads(out)
    assert r["bpd"] == pytest.approx(json.loads((trained / "test.json").read_text())["bpd"])
    assert r["nll_nats"] == pytest.approx(r["bpd"] * 64 * 0.6931471805599453)
    code, out, _ = run(capsys, "eval", str(trained))
    assert "bits/dim" in out and "359 examples" in out and "exact" in out


def test_sample_writes_a_png(trained, tmp_path, capsys):
    from PIL import Image

    code, out, _ = run(capsys, "sample", str(trained), "--n", "9", "--out",
                       str(tmp_path / "s.png"), "--temperature", "0.5")
    assert code == 0
    img = Image.open(tmp_path / "s.png")
    assert img.width >= 3 * 8 and img.height >= 3 * 8


def test_resume_continues_and_a_second_train_into_the_same_dir_is_refused(trained, capsys):
    code, _, err = run(capsys, "train", "made", "--data", "digits", "--represent", "binary",
                       "--steps", "40", "--out", str(trained), "--no-progress")
    assert code == 2 and "--resume" in err
    code, _, err = run(capsys, "train", "made", "--data", "digits", "--represent", "binary",
                       "--steps", "40", "--eval-every", "10", "--out", str(trained),
                       "--no-progress", "--resume", "--hidden", "64", "--samples", "0")
    assert code == 0
    assert json.loads((trained / "train.json").read_text())["steps"] == 40


def test_list_names_models_and_datasets(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("histogram", "logistic-mixture", "made", "pixelcnn", "digits",
                 "fashion-mnist", "binary-dynamic"):
        assert name in out


def test_no_test_still_draws_the_samples(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "made", "--data", "digits", "--represent", "binary", "--steps", "5",
                       "--hidden", "16", "--samples", "8", "--no-test", "--no-progress", "--out", str(out))
    assert code == 0, err
    assert (out / "samples.png").exists() and not (out / "test.json").exists()
    assert "test" not in json.loads((out / "train.json").read_text())["seconds"]


def test_python_dash_m_unsup_is_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "unsup", "list"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pixelcnn" in done.stdout and "fashion-mnist" in done.stdout


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "pixelcnn", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "examples:" in out and "pixelcnn options" in out and "--preset" in out
    for cmd in ("eval", "sample"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "example" in capsys.readouterr().out


@pytest.mark.parametrize("model", unsup.models.names())
def test_every_model_has_working_help(model, capsys):
    """Each model's options must merge with the trainer's flags without a name clash."""
    with pytest.raises(SystemExit) as e:
        main(["train", model, "--help"])
    assert e.value.code == 0
    assert "usage: unsup train" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuchmodel", "--out", "x", "--steps", "1"], "unknown model 'nosuchmodel'"),
    (["train", "made", "--data", "nosuchdata", "--out", "x", "--steps", "1"], "unknown dataset"),
    (["train", "made", "--out", "x"], "no training budget"),
    (["train", "made", "--represent", "levels:1", "--out", "x", "--steps", "1"], "levels:K"),
    (["eval", "/nonexistent/run"], "not a directory"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.startswith("unsup: error:") and err.count("\n") == 1


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("10m") == 600
    assert parse_duration("1.5h") == 5400


def test_class_conditional_sampling_by_label(trained, tmp_path, capsys):
    out = tmp_path / "cond"
    code, _, _ = run(capsys, "train", "pixelcnn", "--data", "digits", "--represent", "binary",
                     "--steps", "3", "--out", str(out), "--no-progress", "--conditional",
                     "--hidden", "8", "--num-layers", "1", "--samples", "10")
    assert code == 0
    code, _, _ = run(capsys, "sample", str(out), "--n", "4", "--label", "3",
                     "--out", str(tmp_path / "three.png"))
    assert code == 0 and (tmp_path / "three.png").exists()
    code, _, err = run(capsys, "sample", str(out), "--n", "4", "--label", "12",
                       "--out", str(tmp_path / "x.png"))
    assert code == 2 and "labels in [0, 9]" in err
    code, _, err = run(capsys, "sample", str(trained), "--n", "4", "--label", "3",
                       "--out", str(tmp_path / "y.png"))
    assert code == 2 and "not class-conditional" in err
