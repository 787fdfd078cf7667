"""Synthetic speech: bible sentences read by several ``espeak-ng`` voices, as mu-law audio clips.

``speech`` renders ``sentences`` sentences (default 50) with each of ``voices`` voices (default 8:
en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029, en-us-nyc; more
than 8 reuse them with the variants ``+m1 .. +m7, +f1 .. +f5``). The sentences are a fixed
pseudo-random choice among the bible's sentences of 40-120 plain characters, the same for
everyone. Each utterance (22,050 Hz, 16 bit) has its leading and trailing silence trimmed, is
resampled to 16 kHz and mu-law quantised to 8 bits (256 levels, as in WaveNet), then cut into
non-overlapping clips of ``length`` samples (default 16,000 = 1 s; the remainder is dropped).
The label of a clip is its voice (speaker identification, as in CPC's audio experiments). The
sentences come from the bible packaged with unsup (:func:`unsup.data.text.bible_bytes`), so only
``espeak-ng`` is needed (``apt-get install -y espeak-ng``; ``install.sh`` installs it).

Splits are by sentence, so no sentence is heard in two splits: the last 20 % of the sentences are
``test`` (fixed), ``val_fraction`` of the others, chosen with the run's seed, are ``val``.

Generated audio is cached under ``cache_dir()/speech/<key>/`` as ``audio.npy`` (one uint8 stream
of every utterance) and ``manifest.json`` (voices, sentences, where each utterance lies), so
later loads need neither ``espeak-ng`` nor the bible. The default set takes about 20 s to make.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request, cache_dir
from unsup.data.text import BIBLE_SHA256, bible_bytes
from unsup.errors import ConfigError, DataError
from unsup.progress import progress_over

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
          "en-029", "en-us-nyc"]
VARIANTS = [f"m{i}" for i in range(1, 8)] + [f"f{i}" for i in range(1, 6)]
ESPEAK_RATE = 22050
SAMPLE_RATE = 16000
LEVELS = 256
TEST_FRACTION = 0.2
_SILENCE = 64 / 32768  # |amplitude| below this at either end counts as silence
_SENTENCE_SEED = 0  # fixed: the sentence choice is part of the dataset's definition
_FORMAT = 1  # bump when the generation changes, so that old caches are not reused


def mu_law_encode(x: torch.Tensor | np.ndarray, levels: int = LEVELS) -> torch.Tensor:
    """Amplitudes in [-1, 1] -> integers ``0 .. levels-1`` (mu-law companding, mu = levels-1).

    Raises:
        ValueError: an amplitude lies outside [-1, 1].
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.numel() and x.abs().max() > 1:
        raise ValueError(f"mu_law_encode expects amplitudes in [-1, 1], got max |x| = "
                         f"{x.abs().max():.4g}")
    mu = levels - 1
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # in [-1, 1]
    return torch.floor((y + 1) / 2 * mu + 0.5).long()


def mu_law_decode(q: torch.Tensor | np.ndarray, levels: int = LEVELS) -> torch.Tensor:
    """Integers ``0 .. levels-1`` -> amplitudes in [-1, 1]; inverse of :func:`mu_law_encode`."""
    mu = levels - 1
    y = 2 * torch.as_tensor(q, dtype=torch.float64) / mu - 1
    return (torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu).float()


def voice_names(n: int) -> list[str]:
    """The first ``n`` speakers: the 8 base voices, then each with variant m1, m2, ..."""
    most = len(VOICES) * (1 + len(VARIANTS))
    if not 1 <= n <= most:
        raise ConfigError(f"speech: option voices={n} must be in 1..{most}")
    variant = [""] + [f"+{v}" for v in VARIANTS]
    return [VOICES[i % len(VOICES)] + variant[i // len(VOICES)] for i in range(n)]


def pick_sentences(text: str, m: int) -> list[str]:
    """A fixed pseudo-random choice of ``m`` plain sentences of 40-120 characters."""
    candidates = re.split(r"(?<=[.?!])\s+", " ".join(text.split()))
    plain = [s for s in dict.fromkeys(candidates)  # dict: dedupe, keep order
             if 40 <= len(s) <= 120 and re.fullmatch(r"[A-Z][A-Za-z ,;:'.?!]+", s)]
    if m > len(plain):
        raise ConfigError(f"speech: option sentences={m}; the bible has only {len(plain)} usable")
    order = np.random.default_rng(_SENTENCE_SEED).permutation(len(plain))
    return [plain[i] for i in order[:m]]


def speak(voice: str, text: str, workdir: Path) -> np.ndarray:
    """One utterance from ``espeak-ng``: trimmed, resampled to 16 kHz, mu-law coded (uint8)."""
    from scipy.signal import resample_poly

    wav = workdir / "utterance.wav"
    try:
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True,
                       capture_output=True, timeout=60)
    except FileNotFoundError:
        raise DataError("speech: espeak-ng is not installed; install it with "
                        "`apt-get install -y espeak-ng`") from None
    except subprocess.CalledProcessError as e:
        raise DataError(f"speech: espeak-ng failed for voice {voice!r}: "
                        f"{e.stderr.decode(errors='replace').strip()}") from None
    with wave.open(str(wav)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (ESPEAK_RATE, 1, 2):
            raise DataError(
                f"speech: espeak-ng wrote {w.getframerate()} Hz, {w.getnchannels()} channel(s), "
                f"{8 * w.getsampwidth()} bit; expected 22050 Hz, mono, 16 bit"
            )
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    loud = np.flatnonzero(np.abs(x) > _SILENCE)
    x = x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]
    x = resample_poly(x, SAMPLE_RATE // 50, ESPEAK_RATE // 50)  # 320 / 441
    # The low-pass filter of resampling can overshoot full scale by a little on our own audio.
    return mu_law_encode(np.clip(x, -1, 1)).numpy().astype(np.uint8)


def generate(dest: Path, voices: list[str], sentences: list[str]) -> None:
    """Render every (voice, sentence) and write ``audio.npy`` + ``manifest.json`` into ``dest``."""
    if shutil.which("espeak-ng") is None:
        raise DataError("speech: espeak-ng is not installed; install it with "
                        "`apt-get install -y espeak-ng`")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        pieces, utterances, offset = [], [], 0
        pairs = [(v, s) for v in range(len(voices)) for s in range(len(sentences))]
        for v, s in progress_over(pairs, "speech: espeak-ng", "utt"):
            audio = speak(voices[v], sentences[s], tmp)
            pieces.append(audio)
            utterances.append([v, s, offset, len(audio)])
            offset += len(audio)
        np.save(tmp / "audio.npy", np.concatenate(pieces), allow_pickle=False)
        manifest = {"format": _FORMAT, "sample_rate": SAMPLE_RATE, "levels": LEVELS,
                    "espeak_version": version.strip(), "voices": voices, "sentences": sentences,
                    "utterances": utterances}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        (tmp / "utterance.wav").unlink(missing_ok=True)
        try:
            os.replace(tmp, dest)  # atomic: a half-written cache is never seen
        except OSError:  # another process finished first
            if not (dest / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cache(dest: Path) -> tuple[dict, np.ndarray]:
    """Read a generated set back, checking that the manifest and the audio agree."""
    manifest = json.loads((dest / "manifest.json").read_text())
    audio = np.load(dest / "audio.npy", allow_pickle=False)
    if manifest.get("format") != _FORMAT or sum(u[3] for u in manifest["utterances"]) != len(audio):
        raise DataError(f"{dest}: speech cache is inconsistent; delete the directory to regenerate")
    return manifest, audio


def sentence_splits(m: int, val_fraction: float, seed: int) -> dict[str, list[int]]:
    """Sentence indices of each split: fixed test tail, seeded val among the rest."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_test = max(1, round(m * TEST_FRACTION))
    rest = m - n_test
    n_val = max(1, round(rest * val_fraction))
    if rest - n_val < 1:
        raise ConfigError(f"speech: sentences={m} is too few for train, val and test; use >= 3")
    perm = torch.randperm(rest, generator=torch.Generator().manual_seed(seed)).tolist()
    return {"train": sorted(perm[n_val:]), "val": sorted(perm[:n_val]),
            "test": list(range(rest, m))}


@DATASETS.register(
    "speech",
    "espeak-ng voices reading bible sentences: 16 kHz mu-law clips, label = voice "
    "(options voices, sentences, length)",
)
def speech(req: Request) -> TensorDataset:
    n_voices = req.option("voices", len(VOICES))
    m = req.option("sentences", 50)
    length = req.option("length", SAMPLE_RATE)
    if m < 3 or length < 1:
        raise ConfigError(f"speech: need sentences >= 3 and length >= 1, got {m} and {length}")
    voices = voice_names(n_voices)
    key = hashlib.sha256(json.dumps([_FORMAT, BIBLE_SHA256, voices, m]).encode()).hexdigest()[:16]
    dest = cache_dir() / "speech" / key
    if not (dest / "manifest.json").is_file():
        generate(dest, voices, pick_sentences(bible_bytes().decode("ascii"), m))
    manifest, audio = load_cache(dest)

    wanted = set(sentence_splits(m, req.val_fraction, req.seed)[req.split])
    clips, labels = [], []
    for v, s, offset, n in manifest["utterances"]:
        if s in wanted and n >= length:
            k = n // length
            clips.append(audio[offset:offset + k * length].reshape(k, length))
            labels += [v] * k
    if not clips:
        raise DataError(f"speech ({req.split}): no utterance is {length} samples long; lower "
                        f"the option length")
    x = torch.from_numpy(np.concatenate(clips).astype(np.int64))  # (N, T)
    spec = DataSpec((length,), LEVELS, len(voices), "sequence")
    return TensorDataset(x, spec, y=torch.tensor(labels, dtype=torch.long), name="speech",
                         split=req.split, class_names=voices)
