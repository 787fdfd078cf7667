"""`unsup sample` of an autoregressive image model: cached against naive sampling, completion."""

import pytest
from cli_helpers import run
from PIL import Image

from unsup.cli import main


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gated")
    code = main(["train", "gated-pixelcnn", "--data", "digits", "--represent", "binary",
                 "--steps", "3", "--out", str(out), "--no-progress", "--samples", "0",
                 "--hidden", "8", "--num-layers", "2", "--conditional"])
    assert code == 0
    return out


def test_naive_sampling_draws_the_same_picture(gated_run, tmp_path, capsys):
    fast, naive = tmp_path / "fast.png", tmp_path / "naive.png"
    assert run(capsys, "sample", str(gated_run), "--n", "4", "--out", str(fast))[0] == 0
    code, out, _ = run(capsys, "sample", str(gated_run), "--n", "4", "--out", str(naive),
                       "--naive")
    assert code == 0 and "wrote 4 samples" in out
    assert fast.read_bytes() == naive.read_bytes()


def test_completion_writes_rows_of_original_occluded_completion(gated_run, tmp_path, capsys):
    path = tmp_path / "completions.png"
    code, out, _ = run(capsys, "sample", str(gated_run), "--complete", "2", "--out", str(path),
                       "--temperature", "0.8")
    assert code == 0 and "2 completions" in out
    img = Image.open(path)  # 2 rows of 3 8x8 digits, 1-pixel gaps, scaled up
    assert img.width * (2 * 9 + 1) == img.height * (3 * 9 + 1)
    code, _, _ = run(capsys, "sample", str(gated_run), "--complete", "3", "--label", "4",
                     "--out", str(tmp_path / "fours.png"))
    assert code == 0 and (tmp_path / "fours.png").exists()


def test_completion_needs_an_image_model_that_completes(tmp_path, capsys):
    run_dir = tmp_path / "made"
    assert main(["train", "made", "--data", "digits", "--represent", "binary", "--steps", "2",
                 "--out", str(run_dir), "--no-progress", "--samples", "0",
                 "--hidden", "16"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "sample", str(run_dir), "--complete", "2",
                       "--out", str(tmp_path / "x.png"))
    assert code == 2 and "cannot complete images" in err
    code, _, _ = run(capsys, "sample", str(run_dir), "--n", "2", "--naive",
                     "--out", str(tmp_path / "y.png"))
    assert code == 0  # no cache to turn off: --naive changes nothing
