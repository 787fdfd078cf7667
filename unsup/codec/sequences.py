"""Text and WAV files in and out of the codec, byte for byte.

A sequence model of ``T`` elements (trained on ``bible``, ``text:PATH`` or ``speech``) codes a file
as its symbols cut into consecutive windows of ``T``. The last window holds the ``r < T`` symbols
left over; it is padded with zeros that are never coded (``Header.lengths``): the encoder codes
its first ``r`` elements only and the decoder, which knows ``r`` from the header, fills the rest
with zeros without reading a bit. Both sides run the model's loop over the same tensor, so this
is exact for any order, and for a causal model the tail costs exactly ``-log2 p(x_1 .. x_r)``.

Text. A model trained with ``mode=bytes`` codes any file: each byte is its symbol. With
``mode=char`` the symbols index the training text's sorted distinct bytes (:mod:`unsup.data.text`),
kept in the stream's header (``vocab``; not for ``mode=bytes``, whose symbol is the byte); a byte
outside them is an error that names it.

Audio. The ``speech`` dataset holds 16 kHz mu-law codes, 256 levels (:mod:`unsup.data.speech`),
and ``unsup sample`` writes them as 16-bit PCM WAV files (:func:`unsup.audio.write_wav`): each
level becomes one of 256 sample values. Those files, mono 16-bit PCM at the model's rate with every
sample one of those values, are what a model codes exactly; the stream keeps the bytes around the
samples (the RIFF header and any other chunks), so ``decompress`` writes the original file byte for
byte. Other audio is refused with what to do: ``--quantise`` first maps a mono PCM or float WAV at
the model's rate to the nearest mu-law levels, as the dataset does (lossy), and codes the
16-bit WAV of those levels. G.711 mu-law WAVs (format 7) are another quantiser, not the model's.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsup.audio import AUDIO, pcm16, to_amplitudes
from unsup.codec.autoregressive import run_lengths
from unsup.codec.stream import Header
from unsup.data import DataArgs
from unsup.data.base import DataSpec
from unsup.data.speech import mu_law_encode
from unsup.errors import ConfigError, DataError

CONVERT = ("sox IN -r {rate} -c 1 -b 16 -e signed OUT.wav  (or ffmpeg -i IN -ar {rate} -ac 1 "
           "-c:a pcm_s16le OUT.wav)")


BYTES = bytes(range(256))  # the symbols of a mode=bytes model: each byte its own


@dataclass
class Packed:
    """Files as windows of a sequence model: what :func:`unsup.codec.compress` takes."""

    x: torch.Tensor  # (n, T) symbols, zeros past each window's length
    lengths: list[int]  # symbols of every window
    files: list[dict[str, Any]] = field(default_factory=list)  # one entry per file (Header.files)
    vocab: str | None = None  # hex: the byte of every text symbol (None: symbol = byte, mode=bytes)


def file_kind(spec: DataSpec, data: DataArgs) -> str | None:
    """``"text"`` or ``"audio"``: the files a model of ``spec`` trained on ``data`` codes;
    None for a model of other data (pictures, or sequences of another dataset)."""
    if spec.kind != "sequence" or len(spec.shape) != 1:
        return None
    if data.name == "bible" or data.name.startswith("text:"):
        return "text"
    return "audio" if data.name in AUDIO else None


def windows(streams: list[np.ndarray], length: int) -> tuple[torch.Tensor, list[int]]:
    """Symbol streams cut into windows ``(n, length)`` (the last of each stream zero-padded) and
    the number of symbols of every window."""
    rows, lengths = [], []
    for s in streams:
        k = math.ceil(len(s) / length)
        padded = np.zeros(k * length, dtype=np.int64)
        padded[:len(s)] = s
        rows.append(padded.reshape(k, length))
        lengths += [length] * (k - 1) + [len(s) - (k - 1) * length] * (k > 0)
    x = torch.from_numpy(np.concatenate(rows)) if rows else torch.zeros(0, length, dtype=torch.long)
    return x, lengths


def _entry(data: bytes, symbols: np.ndarray, length: int, **extra: Any) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "windows": math.ceil(len(symbols) / length), **extra}


# ------------------------------------------------------------------------------------ text

def text_vocab(spec: DataSpec, data: DataArgs) -> bytes:
    """The byte that each of the model's symbols stands for.

    Raises:
        ConfigError: the model's levels are not its text's symbols (``--represent levels:K``).
    """
    if data.options.get("mode", "bytes") == "char":
        vocab = data.load("train").vocab  # the distinct bytes of the whole training file
    else:
        vocab = BYTES
    if spec.levels != len(vocab) or data.representation != "native":
        raise ConfigError(f"this model codes {spec.levels} levels ({data.representation} "
                          f"representation), not the {len(vocab)} symbols of its text: compress text "
                          f"with a model trained on the native symbols")
    return vocab


def read_texts(paths: list[Path], spec: DataSpec, vocab: bytes) -> Packed:
    """Files as windows of ``spec.shape[0]`` symbols under ``vocab``.

    Raises:
        DataError: a byte that is not in ``vocab`` (a ``mode=char`` model).
    """
    lookup = np.full(256, -1, dtype=np.int64)
    lookup[np.frombuffer(vocab, dtype=np.uint8)] = np.arange(len(vocab))
    length = spec.shape[0]
    streams, entries = [], []
    for path in paths:
        data = path.read_bytes()
        symbols = lookup[np.frombuffer(data, dtype=np.uint8)]
        if (symbols < 0).any():
            pos = int(np.flatnonzero(symbols < 0)[0])
            char = data[pos:pos + 4].decode("utf-8", errors="ignore")[:1] or f"\\x{data[pos]:02x}"
            raise DataError(f"{path}: character {char!r} (byte 0x{data[pos]:02x}, at byte {pos}) is not "
                            f"in the model's vocabulary of {len(vocab)} characters (mode=char: those of "
                            f"its training text); compress with a model trained with mode=bytes")
        streams.append(symbols)
        entries.append(_entry(data, symbols, length))
    x, lengths = windows(streams, length)
    return Packed(x, lengths, entries, None if vocab == BYTES else vocab.hex())


# ----------------------------------------------------------------------------------- audio

def mu_law_samples(levels: int) -> np.ndarray:
    """The 16-bit sample that each mu-law level becomes in a WAV of :func:`unsup.audio.write_wav`,
    ``(levels,)`` (distinct for 256 levels)."""
    return pcm16(to_amplitudes(torch.arange(levels), levels, levels).numpy())


def audio_rate(spec: DataSpec, data: DataArgs) -> int:
    """The sample rate of a model of audio that codes WAV files.

    Raises:
        ConfigError: its levels are not the dataset's mu-law levels (``--represent levels:K``).
    """
    rate, mu_levels = AUDIO[data.name]
    if spec.levels != mu_levels:
        raise ConfigError(f"this model codes {spec.levels} levels, not the {mu_levels} mu-law levels of "
                          f"{data.name}: compress WAV files with a model trained on the native levels")
    return rate


def _chunks(path: Path, data: bytes) -> tuple[tuple[int, ...], int, int]:
    """The ``fmt `` fields (format, channels, rate, byte rate, block align, bits) of a RIFF/WAVE
    file and where its first ``data`` chunk's samples start and end."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt, span, pos = None, None, 12
    while pos + 8 <= len(data) and span is None:
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if pos + 8 + size > len(data):
            raise DataError(f"{path}: truncated WAV file (its {chunk!r} chunk runs past the end)")
        if chunk == b"fmt " and size >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
        elif chunk == b"data":
            span = (pos + 8, pos + 8 + size)
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or span is None:
        raise DataError(f"{path}: a WAV file without {'a fmt' if fmt is None else 'a data'} chunk")
    return fmt, span[0], span[1]


def _quantised(path: Path, rate: int, levels: int) -> bytes:
    """The 16-bit PCM WAV file of the mu-law levels nearest a mono PCM or float WAV file."""
    from scipy.io import wavfile

    try:
        file_rate, a = wavfile.read(path)
    except ValueError as e:  # scipy's message names the format it does not read
        raise DataError(f"{path}: cannot read it to quantise ({e}); convert it to PCM with "
                        f"{CONVERT.format(rate=rate)}") from None
    if a.ndim != 1 or file_rate != rate:
        raise DataError(f"{path}: {file_rate} Hz, {1 if a.ndim == 1 else a.shape[1]} channels; the model "
                        f"codes {rate} Hz mono: convert it with {CONVERT.format(rate=rate)}")
    if a.dtype == np.uint8:
        a = (a.astype(np.float64) - 128) / 128
    elif a.dtype.kind == "i":
        a = a.astype(np.float64) / 2.0 ** (8 * a.dtype.itemsize - 1)
    q = mu_law_encode(np.clip(a.astype(np.float64), -1, 1), levels)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(mu_law_samples(levels)[q.numpy()].tobytes())
    return out.getvalue()


def read_wavs(paths: list[Path], spec: DataSpec, rate: int, quantise: bool = False) -> Packed:
    """WAV files as windows of ``spec.shape[0]`` mu-law levels, exactly (module docstring).

    Args:
        quantise: map each file to its nearest levels first (lossy); the stream then holds that
            quantised file.

    Raises:
        DataError: not a mono 16-bit PCM WAV at ``rate``, or a sample off the levels' values
            (without ``quantise``); a message that says how to convert it.
    """
    levels = int(spec.levels or 0)
    table = mu_law_samples(levels)  # increasing: mu-law decoding is monotonic
    length = spec.shape[0]
    streams, entries = [], []
    for path in paths:
        data = _quantised(path, rate, levels) if quantise else path.read_bytes()
        (tag, channels, file_rate, _, _, bits), start, end = _chunks(path, data)
        if tag == 7:
            raise DataError(f"{path}: a G.711 mu-law WAV; its quantiser is not the model's {levels} "
                            f"mu-law levels: decode it to 16-bit PCM (sox {path} -e signed -b 16 "
                            f"OUT.wav) and compress that with --quantise")
        if (tag, channels, file_rate, bits) != (1, 1, rate, 16) or (end - start) % 2:
            raise DataError(f"{path}: format {tag}, {channels} channel(s), {file_rate} Hz, {bits} bit; the "
                            f"model codes PCM (format 1), mono, {rate} Hz, 16 bit: convert it with "
                            f"{CONVERT.format(rate=rate)} and compress that with --quantise")
        pcm = np.frombuffer(data[start:end], dtype="<i2")
        symbols = np.minimum(np.searchsorted(table, pcm), levels - 1).astype(np.int64)
        on_grid = table[symbols] == pcm
        if not on_grid.all():
            bad = int(np.flatnonzero(~on_grid)[0])
            raise DataError(f"{path}: {int((~on_grid).sum())} of its {len(pcm)} samples (the first: "
                            f"{int(pcm[bad])}, at sample {bad}) are not among the {levels} values of the "
                            f"model's mu-law levels (as `unsup sample` writes them): add --quantise to "
                            f"quantise it as the speech dataset does (lossy: decompress gives the "
                            f"quantised clip)")
        streams.append(symbols)
        entries.append(_entry(data, symbols, length, quantised=quantise,
                              head=base64.b64encode(data[:start]).decode(),
                              tail=base64.b64encode(data[end:]).decode()))
    x, lengths = windows(streams, length)
    return Packed(x, lengths, entries)


# ------------------------------------------------------------------------------ decoding

def write_files(x: torch.Tensor, header: Header, out_dir: Path) -> list[Path]:
    """Write the files that :func:`read_texts` (``header.kind`` ``"text"``) or :func:`read_wavs`
    (``"audio"``) packed into windows ``x``, byte for byte, into ``out_dir``.

    Raises:
        DataError: a file whose bytes differ from the original's SHA-256 (never, unless the
            stream's windows and header disagree).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = x.numpy()
    lengths = run_lengths(header.lengths, len(x), x.shape[1]) if header.lengths else [x.shape[1]] * len(x)
    if header.kind == "text":
        table = np.frombuffer(BYTES if header.vocab is None else bytes.fromhex(header.vocab), dtype=np.uint8)
    else:
        table = mu_law_samples(header.levels)
    written, at = [], 0
    for name, entry in zip(header.names or [], header.files or [], strict=True):
        k = entry["windows"]
        symbols = np.concatenate([rows[i, :lengths[i]] for i in range(at, at + k)] or [np.zeros(0, np.int64)])
        at += k
        data = table[symbols].tobytes()
        if header.kind == "audio":
            data = base64.b64decode(entry["head"]) + data + base64.b64decode(entry["tail"])
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DataError(f"{name}: the decoded bytes do not match the original's checksum")
        path = out_dir / Path(name).name
        path.write_bytes(data)
        written.append(path)
    return written
