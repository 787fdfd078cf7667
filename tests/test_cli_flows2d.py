"""`unsup train` of low-dimensional flows writes its pictures: samples, density, latent space."""

import json

import pytest
import torch
from cli_helpers import run
from PIL import Image

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.plots import save_density_continuous, save_latents

QUICK = ["--steps", "15", "--batch-size", "64", "--eval-every", "0", "--samples", "200",
         "--no-progress", "--no-tensorboard"]


def _png(path):
    img = Image.open(path)
    img.verify()
    return Image.open(path).size


@pytest.mark.parametrize("model, options", [
    ("realnvp", ["--hidden", "16", "--num-couplings", "2"]),
    ("ar-flow", ["--hidden", "16", "--num-components", "3"]),
])
def test_a_2d_flow_on_two_moons_writes_samples_density_and_latents(model, options, tmp_path, capsys):
    out = tmp_path / model
    code, stdout, err = run(capsys, "train", model, "--data", "two-moons", *QUICK, *options,
                            "--out", str(out))
    assert code == 0, err
    assert json.loads((out / "test.json").read_text())["exact"] is True  # continuous: exact density
    for name in ("samples.png", "density.png", "latents.png"):
        assert f"wrote {out / name}" in err
        w, h = _png(out / name)
        assert w >= 400 and h >= 300, name


def test_cdf_flow_on_discrete_1d_data_has_an_exact_likelihood_and_a_density_plot(tmp_path, capsys):
    out = tmp_path / "cdf"
    code, stdout, err = run(capsys, "train", "cdf-flow", "--data", "toy-1d-bimodal", *QUICK,
                            "--lr", "0.03", "--out", str(out))
    assert code == 0, err
    report = json.loads((out / "test.json").read_text())
    assert report["exact"] is True and "exact" in stdout  # no dequantisation bound
    assert report["bpd"] < 7.0  # below the uniform distribution's log2(100) = 6.64 + slack
    for name in ("samples.png", "density.png"):
        _png(out / name)
    assert not (out / "latents.png").exists()  # discrete data: the probability bars only


def test_plots_refuse_what_they_cannot_draw(tmp_path):
    discrete = unsup.create("cdf-flow", DataSpec((1,), 10, None, "vector"))
    with pytest.raises(ConfigError, match="save_density for discrete"):
        save_density_continuous(discrete, torch.zeros(3, 1, dtype=torch.long), tmp_path / "d.png")
    histogram = unsup.create("histogram", DataSpec((1,), 10, None, "vector"))
    with pytest.raises(ConfigError, match="no encode"):
        save_latents(histogram, torch.zeros(3, 1, dtype=torch.long), tmp_path / "l.png")
    made = unsup.create("made", DataSpec((2,), 4, None, "vector"), hidden=[8])
    with pytest.raises(ConfigError, match="not a latent space"):  # MADE.encode is its input features
        save_latents(made, torch.zeros(3, 2, dtype=torch.long), tmp_path / "l.png")
