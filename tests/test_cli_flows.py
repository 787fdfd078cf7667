"""`unsup train|eval|sample` with a flow: a bits/dim bound marked as such, samples, interpolation."""

import json

import torch
from cli_helpers import run
from PIL import Image

from unsup.plots import image_grid

TINY = ["--hidden", "8", "--blocks", "1"]


def test_realnvp_trains_reports_a_bound_and_samples(tmp_path, capsys):
    out = tmp_path / "rnvp"
    code, stdout, _ = run(capsys, "train", "realnvp", "--data", "digits", "--steps", "3",
                          "--batch-size", "16", "--eval-every", "0", "--samples", "4",
                          "--no-progress", "--no-tensorboard", *TINY, "--out", str(out))
    assert code == 0 and "upper bound" in stdout
    report = json.loads((out / "test.json").read_text())
    assert report["exact"] is False and report["bpd"] > 0
    assert (out / "samples.png").exists()
    code, stdout, _ = run(capsys, "eval", str(out), "--json")
    assert code == 0 and json.loads(stdout)["exact"] is False
    code, stdout, _ = run(capsys, "sample", str(out), "--n", "4", "--temperature", "0.7",
                          "--out", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").stat().st_size > 0
    # Latent interpolation: a grid of one row of 8 decodings per pair (that the row's ends are the
    # images themselves is tested on the model, tests/models/test_flows.py).
    code, stdout, _ = run(capsys, "sample", str(out), "--interpolate", "3",
                          "--out", str(tmp_path / "i.png"))
    assert code == 0 and "3 latent interpolations" in stdout
    expected = image_grid(torch.zeros(24, 1, 8, 8), 17, ncol=8).size
    assert Image.open(tmp_path / "i.png").size == expected


def test_interpolation_is_refused_where_it_has_no_meaning(tmp_path, capsys):
    out = tmp_path / "made"
    code, _, _ = run(capsys, "train", "made", "--data", "digits", "--steps", "1", "--eval-every", "0",
                     "--samples", "0", "--no-progress", "--no-tensorboard", "--out", str(out))
    assert code == 0
    code, _, err = run(capsys, "sample", str(out), "--interpolate", "2", "--out", str(tmp_path / "i.png"))
    assert code == 2 and "no latent space" in err
