"""The shipped classifiers are the pinned ones and classify; ``unsup eval --sample-quality`` scores
a run's samples beside the floor of real data."""

import hashlib
import json
import shutil

import pytest
import torch
from cli_helpers import run

import unsup.quality as quality
from unsup.data import DataArgs
from unsup.errors import ConfigError, DataError

# the bar each shipped classifier's recorded test accuracy must clear
BARS = {"digits": 0.90, "fashion-mnist": 0.85, "cifar10-jpeg": 0.50, "cifar10": 0.50}


@pytest.mark.parametrize("dataset", sorted(quality.CLASSIFIERS))
def test_each_shipped_classifier_is_the_pinned_file_and_classifies(dataset):
    path, sha = quality.classifier_for(dataset)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    clf, meta = quality.load_classifier(dataset)
    assert meta["test_accuracy"] >= BARS[dataset]
    if dataset in ("digits", "fashion-mnist"):  # the data are on every machine: check it anew
        test = DataArgs(dataset).load("test")
        x, y = test.x[:1000], test.y[:1000]
        with torch.no_grad():
            accuracy = float((clf.logits(x).argmax(1) == y).float().mean())
        assert accuracy == pytest.approx(meta["test_accuracy"], abs=0.03)


def test_a_damaged_or_missing_classifier_is_refused(tmp_path, monkeypatch):
    name, _ = quality.CLASSIFIERS["digits"]
    shutil.copy(quality.HERE / name, tmp_path / name)
    monkeypatch.setattr(quality, "HERE", tmp_path)
    raw = bytearray((tmp_path / name).read_bytes())
    raw[-1] ^= 1
    (tmp_path / name).write_bytes(bytes(raw))
    with pytest.raises(DataError, match="damaged; reinstall"):
        quality.load_classifier("digits")
    (tmp_path / name).unlink()
    with pytest.raises(DataError, match="is missing"):
        quality.load_classifier("digits")
    with pytest.raises(ConfigError, match="no classifier ships for 'two-moons'"):
        quality.load_classifier("two-moons")


def test_representations_map_to_the_classifiers_levels():
    spec = DataArgs("digits", representation="binary").load("test").spec
    x = torch.tensor([[[[0, 1]]]])
    assert quality.to_classifier_input(x, spec, 256).tolist() == [[[[0, 255]]]]


@pytest.fixture(scope="module")
def made_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "made"
    code = quality_run(["train", "made", "--data", "digits", "--represent", "binary", "--hidden", "64",
                        "--steps", "300", "--samples", "0", "--no-test", "--no-progress", "--out", str(out)])
    assert code == 0
    return out


def quality_run(argv):
    from unsup.cli import main

    return main(argv)


def test_eval_scores_samples_beside_the_floor(made_run, capsys):
    code, out, err = run(capsys, "eval", str(made_run), "--sample-quality", "300", "--json")
    assert code == 0, err
    q = json.loads(out)["sample_quality"]
    assert q["n"] == 300 and q["classifier"]["file"] == quality.CLASSIFIERS["digits"][0]
    assert "FD, not FID" in q["features"]
    for part in ("samples", "floor"):
        assert set(q[part]) >= {"fd", "kid", "kid_sd", "precision", "recall", "density", "coverage"}
        assert q[part]["kid_sd"] > 0  # subsets smaller than the sets: a real spread
    assert 0 <= q["floor"]["fd"] < q["samples"]["fd"]  # a 300-step MADE is worse than real data
    assert q["floor"]["recall"] > q["samples"]["recall"] - 0.5
    assert 0 < q["sampling_cpu_seconds"] and 0 < q["sampling_seconds"] and q["batch_size"] == 64
    kept = json.loads((made_run / "eval.json").read_text())  # the latest evaluation, beside the run
    assert kept["sample_quality"] == q and kept["options"]["sample_quality"] == 300
    code, text, _ = run(capsys, "eval", str(made_run), "--sample-quality", "100")
    assert code == 0 and "floor (train vs test)" in text
    assert json.loads((made_run / "eval.json").read_text())["sample_quality"]["n"] == 100


def test_sample_quality_needs_a_sampler_and_enough_examples(made_run, capsys, tmp_path):
    code, _, err = run(capsys, "eval", str(made_run), "--sample-quality", "5")
    assert code == 2 and "at least 10" in err
    ae = tmp_path / "ae"
    assert quality_run(["train", "autoencoder", "--data", "digits", "--arch", "mlp", "--hidden", "8",
                        "--code-dim", "2", "--steps", "2", "--samples", "0", "--no-test",
                        "--no-progress", "--out", str(ae)]) == 0
    code, _, err = run(capsys, "eval", str(ae), "--sample-quality", "50")
    assert code == 2 and "needs a model that samples" in err


def test_a_conditional_gan_is_scored_with_the_share_of_samples_in_their_class(tmp_path, capsys):
    out = tmp_path / "cgan"
    assert quality_run(["train", "gan", "--data", "digits", "--conditional", "--hidden", "8",
                        "--steps", "40", "--samples", "16", "--no-progress", "--out", str(out)]) == 0
    assert (out / "samples.png").exists()
    capsys.readouterr()  # the training run's report
    code, text, err = run(capsys, "eval", str(out), "--sample-quality", "50", "--json")
    assert code == 0, err
    samples = json.loads(text)["sample_quality"]["samples"]
    assert 0 <= samples["class_accuracy"] <= 1 and samples["kid"] > 0
    code, text, _ = run(capsys, "eval", str(out), "--sample-quality", "20")
    assert code == 0 and "in the class they were drawn for" in text


def test_samples_that_are_not_data_are_refused_naming_how_many():
    from types import SimpleNamespace

    from unsup.errors import SamplingError

    class Overflowing:  # a flow whose inverse sent one latent to NaN: floor(NaN).long() is -2**63
        spec, num_classes = SimpleNamespace(levels=256), None

        def sample(self, n):
            x = torch.randint(256, (n, 1, 4, 4))
            x[1, 0, 0, 0] = torch.iinfo(torch.int64).min
            return x

    with pytest.raises(SamplingError, match="1 of the 8 samples drawn from sample 0 on are not data"):
        quality.draw_samples(Overflowing(), 8, batch_size=8, progress_bars=False)
