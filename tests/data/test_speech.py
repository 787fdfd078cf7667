"""mu-law coding, and a tiny espeak-ng speech set (2 voices x 3 sentences) in a temporary cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unsup.data import load, speech
from unsup.data.speech import mu_law_decode, mu_law_encode, sentence_splits, voice_names
from unsup.errors import ConfigError, DataError

needs_espeak = pytest.mark.usefixtures("espeak_ng")  # skipped without it, failed under CI
TINY = {"voices": 2, "sentences": 3, "length": 4000}


def test_mu_law_round_trip() -> None:
    q = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(q)), q)  # codes survive exactly
    x = torch.linspace(-1, 1, 10001)
    y = mu_law_decode(mu_law_encode(x))
    # companding: the error is half a step, which grows with |x| (to ~0.043 / 2 at full scale)
    assert float((y - x).abs().max()) < 0.022
    small = x.abs() < 0.01
    assert float((y - x)[small].abs().max()) < 3e-4  # steps ~1.7e-4 near 0 (8-bit: 1/128)
    assert mu_law_encode(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    assert bool((mu_law_encode(x).diff() >= 0).all())  # monotone
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        mu_law_encode(torch.tensor([1.5]))


def test_voices_and_sentence_splits() -> None:
    assert voice_names(2) == ["en-us", "en-gb"]
    assert voice_names(10)[8:] == ["en-us+m1", "en-gb+m1"]
    with pytest.raises(ConfigError):
        voice_names(0)
    s = sentence_splits(50, 0.1, seed=0)
    assert s["test"] == list(range(40, 50)) and len(s["val"]) == 4 and len(s["train"]) == 36
    assert not set(s["train"]) & set(s["val"])
    assert sentence_splits(50, 0.1, seed=1)["test"] == s["test"]
    assert sentence_splits(50, 0.1, seed=1)["val"] != s["val"]
    with pytest.raises(ConfigError, match="too few"):
        sentence_splits(2, 0.1, 0)


@needs_espeak
def test_tiny_speech_set(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load("speech", "train", **TINY)
    assert ds.spec.shape == (4000,) and ds.spec.levels == 256 and ds.spec.kind == "sequence"
    assert ds.spec.num_classes == 2 and ds.class_names == ["en-us", "en-gb"]
    assert ds.x.dtype == torch.long and 0 <= int(ds.x.min()) and int(ds.x.max()) <= 255
    assert set(ds.y.tolist()) == {0, 1} and len(ds) >= 2
    assert int(ds.x.max()) - int(ds.x.min()) > 100  # speech, not silence
    (cached,) = (isolated_cache / "speech").iterdir()
    manifest = json.loads((cached / "manifest.json").read_text())
    assert len(manifest["utterances"]) == 6 and len(manifest["sentences"]) == 3
    assert np.load(cached / "audio.npy", allow_pickle=False).dtype == np.uint8

    def no_espeak(*args: object) -> np.ndarray:
        raise AssertionError("generated although cached")

    monkeypatch.setattr(speech, "speak", no_espeak)
    assert torch.equal(load("speech", "train", **TINY).x, ds.x)
    test = load("speech", "test", **TINY)
    val = load("speech", "val", **TINY)
    assert len(test) and len(val)
    with pytest.raises(DataError, match="lower the option length"):
        load("speech", "test", voices=2, sentences=3, length=10**6)


def test_missing_espeak_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataError, match=r"apt-get install -y espeak-ng"):
        load("speech", "train", **TINY)
