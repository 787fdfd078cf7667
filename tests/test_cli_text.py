"""`unsup sample --out FILE.txt`: a tiny transformer trained on a tiny text file, read as text."""

import pytest
from cli_helpers import run

from unsup.cli import main

TEXT = "the quick brown fox jumps over the lazy dog; " * 80  # 3,600 bytes, 28 distinct chars
DASHES = "\n" + "-" * 72 + "\n"
TINY = ["--num-layers", "1", "--d-model", "16", "--num-heads", "2"]




@pytest.fixture(scope="module", params=["char", "bytes"])
def text_run(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "fox.txt"
    path.write_text(TEXT)
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "transformer", "--data", f"text:{path}", "--data-opt", "length=24",
                 "--data-opt", f"mode={request.param}", "--steps", "2", "--batch-size", "8",
                 "--eval-every", "0", "--eval-batches", "1", "--samples", "0", "--no-progress",
                 "--no-tensorboard", *TINY, "--out", str(out)])
    assert code == 0
    return out, request.param


def test_sample_writes_decoded_text_one_sample_per_paragraph(text_run, tmp_path, capsys):
    run_dir, mode = text_run
    code, out, _ = run(capsys, "sample", str(run_dir), "--n", "3", "--temperature", "0.7",
                       "--out", str(tmp_path / "s.txt"))
    assert code == 0 and "wrote 3 samples" in out
    written = (tmp_path / "s.txt").read_text(encoding="utf-8")
    assert written.endswith("\n")
    samples = written[:-1].split(DASHES)
    assert len(samples) == 3
    if mode == "char":  # 24 symbols of the file's own alphabet
        assert all(len(s) == 24 and set(s) <= set(TEXT) for s in samples)
    else:  # 24 arbitrary bytes: invalid UTF-8 is replaced (U+FFFD), never an error
        assert all(0 < len(s) <= 24 for s in samples)


def test_text_runs_refuse_pictures_and_image_runs_refuse_text(text_run, tmp_path, capsys):
    run_dir, _ = text_run
    code, _, err = run(capsys, "sample", str(run_dir), "--n", "1", "--out", str(tmp_path / "s.png"))
    assert code == 2 and ".txt" in err and not (tmp_path / "s.png").exists()
    code, _, err = run(capsys, "sample", str(run_dir), "--n", "1", "--out", str(tmp_path / "s.wav"))
    assert code == 2 and ".txt" in err


def test_text_from_an_image_model_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "digits"
    code, _, _ = run(capsys, "train", "lstm", "--data", "digits", "--represent", "binary",
                     "--steps", "1", "--eval-every", "0", "--samples", "0", "--no-progress",
                     "--no-tensorboard", "--hidden", "8", "--num-layers", "1", "--out", str(run_dir))
    assert code == 0
    code, _, err = run(capsys, "sample", str(run_dir), "--n", "1", "--out", str(tmp_path / "x.txt"))
    assert code == 2 and "text" in err and "FILE.png" in err and not (tmp_path / "x.txt").exists()
