"""`unsup train|eval|sample` with a flow: a bits/dim bound marked as such, samples, interpolation."""

import json

from cli_helpers import run

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
