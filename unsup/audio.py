"""Sound a user listens to: sequence samples of audio data as 16-bit PCM WAV files.

Only datasets listed in :data:`AUDIO` are audio; their samples are mu-law codes, decoded here to
amplitudes and written with the standard library's :mod:`wave`. ``n`` samples go into *one* file,
one after the other with half a second of silence between them (the sound counterpart of a sample
grid: ``unsup sample RUN --n 8 --out s.wav`` writes exactly ``s.wav``).

:func:`mfcc_features` is the classic hand-made description of a clip, the baseline a learnt audio
representation must beat (``unsup probe`` on audio data): mel-frequency cepstral coefficients from
librosa, the audio-analysis library of the field.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch

from unsup.data.base import DataSpec
from unsup.data.speech import LEVELS, SAMPLE_RATE, mu_law_decode
from unsup.errors import ConfigError

# Dataset name -> (sample rate in Hz, mu-law levels of its native representation).
AUDIO: dict[str, tuple[int, int]] = {"speech": (SAMPLE_RATE, LEVELS)}
GAP_SECONDS = 0.5
MFCC_COEFFICIENTS = 13
MFCC_MELS = 40


def audio_format(spec: DataSpec, data_name: str | None) -> tuple[int, int]:
    """``(sample_rate, mu_law_levels)`` of a model's data, checked to be audio.

    Raises:
        ConfigError: the data is not a sequence of an audio dataset.
    """
    if spec.kind != "sequence" or data_name not in AUDIO or spec.levels is None:
        raise ConfigError(f"WAV output needs a model of audio sequences ({', '.join(AUDIO)}); "
                          f"this one models {spec.kind} data {spec.shape} from {data_name!r}"
                          + ("; write text samples as FILE.txt" if spec.kind == "sequence" else
                             "; write pictures as FILE.png"))
    return AUDIO[data_name]


def to_amplitudes(x: torch.Tensor, levels: int, mu_law_levels: int = LEVELS) -> torch.Tensor:
    """Codes ``0 .. levels-1`` -> amplitudes in [-1, 1]. Codes requantised to ``levels`` fewer
    than ``mu_law_levels`` (``--represent levels:K``) are decoded at the centre of their bin."""
    q = x.detach().cpu().double()
    if levels != mu_law_levels:
        q = (q + 0.5) * mu_law_levels / levels - 0.5
    return mu_law_decode(q, mu_law_levels)


def pcm16(amplitudes: torch.Tensor | np.ndarray) -> np.ndarray:
    """Amplitudes in [-1, 1] (clipped) as the 16-bit samples :func:`write_wav` writes, ``<i2``."""
    a = np.clip(np.asarray(amplitudes, dtype=np.float64).reshape(-1), -1.0, 1.0)
    return np.round(a * 32767).astype("<i2")


def write_wav(path: str | Path, amplitudes: torch.Tensor | np.ndarray, rate: int) -> None:
    """Write mono amplitudes in [-1, 1] (clipped) as a 16-bit PCM WAV file."""
    pcm = pcm16(amplitudes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def save_audio_samples(x: torch.Tensor, spec: DataSpec, data_name: str | None,
                       path: str | Path) -> None:
    """Write samples ``(n, T)`` of an audio model into one WAV file, separated by silence.

    Raises:
        ConfigError: the data is not audio (see :func:`audio_format`).
    """
    rate, mu_law_levels = audio_format(spec, data_name)
    assert spec.levels is not None
    clips = to_amplitudes(x.reshape(len(x), -1), spec.levels, mu_law_levels)  # (n, T)
    gap = torch.zeros(len(clips), round(GAP_SECONDS * rate), dtype=clips.dtype)
    joined = torch.cat([clips, gap], 1).reshape(-1)[:-gap.shape[1] or None]  # no trailing gap
    write_wav(path, joined.numpy(), rate)


def mfcc_features(x: torch.Tensor, levels: int | None, rate: int) -> np.ndarray:
    """One vector per clip: the mean and standard deviation over time of 13 MFCCs and their deltas
    (25 ms windows every 10 ms, 40 mel bands), ``(N, 52)``; the usual utterance-level features
    of speaker recognition before learnt embeddings.

    Args:
        x: clips ``(N, T)``: mu-law codes ``0 .. levels-1``, or amplitudes (``levels`` None).
        levels: the codes' levels, or ``None`` for amplitudes.
        rate: sample rate in Hz.
    """
    import librosa

    a = (to_amplitudes(x, levels) if levels is not None else x.double()).numpy().astype(np.float32)
    window, hop = round(0.025 * rate), round(0.010 * rate)
    m = librosa.feature.mfcc(y=a, sr=rate, n_mfcc=MFCC_COEFFICIENTS, n_fft=window, hop_length=hop,
                             n_mels=MFCC_MELS)  # (N, 13, frames)
    f = np.concatenate([m, librosa.feature.delta(m, mode="nearest")], axis=1)
    return np.concatenate([f.mean(-1), f.std(-1)], axis=1).astype(np.float64)
