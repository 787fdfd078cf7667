"""`unsup sample --out FILE.wav`: a tiny WaveNet trained on a tiny speech set, heard as a WAV file."""

import wave

import numpy as np
import pytest
import torch
from cli_helpers import run
from PIL import Image

from unsup.audio import GAP_SECONDS, save_audio_samples, to_amplitudes, write_wav
from unsup.cli import main
from unsup.data.base import DataSpec
from unsup.data.speech import mu_law_encode
from unsup.errors import ConfigError

needs_espeak = pytest.mark.usefixtures("espeak_ng")  # skipped without it, failed under CI
LENGTH = 800
WAVENET = ["--num-stacks", "1", "--layers-per-stack", "3", "--residual-channels", "8",
           "--gate-channels", "8", "--skip-channels", "8"]




def read_wav(path):
    with wave.open(str(path)) as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return params, pcm


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory, espeak_ng):
    """WaveNet trained 2 steps on 2 voices x 3 sentences, in a private cache."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNSUP_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("UNSUP_DATA", raising=False)
        code = main(["train", "wavenet", "--data", "speech", "--data-opt", "voices=2",
                     "--data-opt", "sentences=3", "--data-opt", f"length={LENGTH}",
                     "--steps", "2", "--batch-size", "4", "--eval-every", "0", "--eval-batches",
                     "1", "--samples", "0", "--no-progress", "--no-tensorboard", "--conditional",
                     *WAVENET, "--out", str(out)])
    assert code == 0
    return out


def test_wav_writer_round_trips_mu_law_codes(tmp_path):
    codes = mu_law_encode(0.8 * torch.sin(torch.linspace(0, 20, 300)))
    spec = DataSpec((150,), 256, None, "sequence")
    save_audio_samples(codes.view(2, 150), spec, "speech", tmp_path / "a.wav")
    (channels, width, rate), pcm = read_wav(tmp_path / "a.wav")
    assert (channels, width, rate) == (1, 2, 16000)
    gap = int(GAP_SECONDS * 16000)
    assert len(pcm) == 300 + gap and np.all(pcm[150:150 + gap] == 0)
    heard = np.concatenate([pcm[:150], pcm[150 + gap:]]) / 32767
    assert torch.equal(mu_law_encode(torch.from_numpy(heard).clamp(-1, 1)), codes)
    write_wav(tmp_path / "b.wav", np.array([2.0, -2.0]), 8000)  # clipped, not wrapped
    assert read_wav(tmp_path / "b.wav")[1].tolist() == [32767, -32767]
    coarse = to_amplitudes(torch.tensor([0, 3]), levels=4)  # levels:4 codes: mu-law bin centres
    assert coarse[0] < -0.2 and coarse[0].item() == pytest.approx(-coarse[1].item())
    with pytest.raises(ConfigError, match="FILE.png"):
        save_audio_samples(codes.view(1, 1, 300, 1), DataSpec((1, 300, 1), 256), "digits",
                           tmp_path / "c.wav")
    with pytest.raises(ConfigError, match="FILE.txt"):
        save_audio_samples(codes.view(2, 150), spec, "bible", tmp_path / "c.wav")


@needs_espeak
def test_sample_writes_speech_as_one_wav_file(speech_run, tmp_path, capsys):
    code, out, _ = run(capsys, "sample", str(speech_run), "--n", "2", "--label", "1",
                       "--out", str(tmp_path / "s.wav"))
    assert code == 0 and "wrote 2 samples" in out
    (channels, width, rate), pcm = read_wav(tmp_path / "s.wav")
    assert (channels, width, rate) == (1, 2, 16000)
    assert len(pcm) == 2 * LENGTH + int(GAP_SECONDS * 16000)
    assert np.abs(pcm).max() > 0


@needs_espeak
def test_sample_length_gives_longer_audio_than_the_training_clips(speech_run, tmp_path, capsys):
    code, _, _ = run(capsys, "sample", str(speech_run), "--n", "1", "--length", str(3 * LENGTH),
                     "--out", str(tmp_path / "long.wav"))
    assert code == 0 and len(read_wav(tmp_path / "long.wav")[1]) == 3 * LENGTH
    code, _, err = run(capsys, "sample", str(speech_run), "--n", "1", "--length", "9",
                       "--out", str(tmp_path / "long.png"))
    assert code == 2 and "--length applies to sequences" in err


@needs_espeak
def test_a_speaker_conditional_wavenet_does_not_compress_its_own_samples(speech_run, tmp_path, capsys):
    """Coding needs every clip's speaker: the --conditional run is refused (unconditional WaveNets
    code WAV files, tests/test_codec.py)."""
    code, _, _ = run(capsys, "sample", str(speech_run), "--n", "1", "--out", str(tmp_path / "s.wav"))
    assert code == 0
    code, _, err = run(capsys, "compress", str(speech_run), str(tmp_path / "s.wav"),
                       "-o", str(tmp_path / "s"))
    assert code == 2 and "class-conditional" in err and not (tmp_path / "s").exists()


@needs_espeak
def test_sequence_samples_as_a_picture_name_the_sound_and_text_files(speech_run, tmp_path, capsys):
    code, _, err = run(capsys, "sample", str(speech_run), "--n", "1", "--out",
                       str(tmp_path / "s.png"))
    assert code == 2 and ".wav" in err and ".txt" in err and err.count("\n") == 1
    assert not (tmp_path / "s.png").exists()


def test_wav_from_an_image_model_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "digits"
    code, _, _ = run(capsys, "train", "made", "--data", "digits", "--represent", "binary",
                     "--steps", "1", "--eval-every", "0", "--samples", "0", "--no-progress",
                     "--no-tensorboard", "--hidden", "8", "--out", str(run_dir))
    assert code == 0
    code, _, err = run(capsys, "sample", str(run_dir), "--n", "1", "--out",
                       str(tmp_path / "x.wav"))
    assert code == 2 and "audio" in err and not (tmp_path / "x.wav").exists()
    code, _, err = run(capsys, "sample", str(run_dir), "--n", "1", "--length", "9", "--out",
                       str(tmp_path / "x.txt"))
    assert code == 2 and "samples only its training length" in err


@needs_espeak
def test_cpc_audio_trains_charts_its_steps_and_is_probed_against_mfcc(tmp_path, capsys):
    """The whole CPC-on-speech path on 2 voices x 3 sentences: `unsup train cpc-audio` draws the
    accuracy per prediction step; `unsup probe` sets the features against MFCC statistics, the raw
    samples and the untrained network."""
    import json

    out = tmp_path / "cpc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNSUP_CACHE", str(tmp_path / "cache"))
        mp.delenv("UNSUP_DATA", raising=False)
        code, _, err = run(capsys, "train", "cpc-audio", "--data", "speech", "--data-opt", "voices=2",
                           "--data-opt", "sentences=3", "--data-opt", "length=4000", "--steps", "2",
                           "--batch-size", "4", "--eval-every", "0", "--eval-batches", "1",
                           "--no-progress", "--no-tensorboard", "--channels", "8", "--context", "8",
                           "--steps-ahead", "4", "--num-negatives", "7", "--negatives", "speaker",
                           "--out", str(out))
        assert code == 0 and "steps.png" in err
        test = json.loads((out / "test.json").read_text())
        assert {f"acc_{k}" for k in range(1, 5)} <= set(test) and 0 <= test["accuracy"] <= 1
        code, stdout, _ = run(capsys, "probe", str(out), "--probes", "linear", "--no-tsne", "--json")
    assert code == 0
    features = json.loads(stdout.strip().splitlines()[-1])["features"]
    assert set(features) == {"run", "random-encoder", "pca", "kmeans", "raw", "mfcc"}
    assert features["mfcc"]["dim"] == 52 and features["raw"]["dim"] == 4000
    assert features["run"]["dim"] == 8
    with Image.open(out / "steps.png") as im:
        assert im.size[0] > 300
