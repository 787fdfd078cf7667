"""Run directories written by an earlier unsup still load: eval, sample, probe and --resume.

The directories under ``tests/fixtures/`` were written before the model modules moved into family
packages (see ``tests/fixtures/README.md``); checkpoints name models by their public name and
configs as JSON, never by module path, so a reorganisation of the code must not strand them.
"""

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import run

from unsup.train import LAST, load_state

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def old(tmp_path):
    """A writable copy of an old run directory."""
    def copy(name):
        shutil.copytree(FIXTURES / name, tmp_path / name)
        return tmp_path / name
    return copy


@pytest.mark.parametrize("name", ["made-v0.1", "vae-v0.1"])
def test_an_old_run_evaluates_to_the_figure_it_reported(old, capsys, name):
    run_dir = old(name)
    code, out, err = run(capsys, "eval", str(run_dir), "--json")
    assert code == 0, err
    result = json.loads(out)
    reported = json.loads((run_dir / "test.json").read_text())
    assert result["n"] == reported["n"] and result["step"] == reported["step"]
    if reported["exact"]:  # the exact likelihood is deterministic
        assert result["bpd"] == pytest.approx(reported["bpd"], rel=1e-6)
    else:  # an importance-sampled estimate: within a few of its standard errors
        assert abs(result["nll_nats"] - reported["nll_nats"]) < 10 * reported["nll_se"] + 1e-3


@pytest.mark.parametrize("name", ["made-v0.1", "vae-v0.1"])
def test_an_old_run_samples(old, capsys, tmp_path, name):
    code, _, err = run(capsys, "sample", str(old(name)), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert code == 0, err
    assert (tmp_path / "s.png").stat().st_size > 0


def test_an_old_representation_run_is_probed(old, capsys, tmp_path):
    code, out, err = run(capsys, "probe", str(old("autoencoder-v0.1")), "--labels", "10%", "--probes",
                         "linear", "--no-baselines", "--no-tsne", "--json", "--out", str(tmp_path / "p"))
    assert code == 0, err
    assert 0 <= json.loads(out)["features"]["run"]["linear"]["accuracy"] <= 1


@pytest.mark.parametrize("name", ["made-v0.1", "autoencoder-v0.1", "vae-v0.1"])
def test_an_old_run_resumes(old, capsys, name):
    run_dir = old(name)
    model = load_state(run_dir / LAST)["meta"]["model"]
    code, _, err = run(capsys, "train", model, "--out", str(run_dir), "--resume", "--steps", "9",
                       "--no-progress", "--samples", "0", "--no-test")
    assert code == 0, err
    assert "ignored" not in err
    assert load_state(run_dir / LAST)["step"] == 9
