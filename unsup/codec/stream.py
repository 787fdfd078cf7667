"""The file format of ``unsup compress``: a header that says what was coded and with which
model, the coder's words, and a checksum over both.

Layout (integers little-endian)::

    b"UNSUPZ" | format version (1 byte)
    header length (u32) | header (UTF-8 JSON)
    payload length in 32-bit words (u64) | payload (u32 words)
    SHA-256 of every byte above (32 bytes)

The header records the model (name and :func:`model_fingerprint`, a SHA-256 of its
configuration and weights), the data (kind, shape, levels, count, file names), how the
probabilities were computed (chunk size, device type, threads, torch version: the decoder must
compute them bit for bit as the encoder did) and a SHA-256 of the original data, checked after
decoding. :func:`read_stream` rejects anything that is not a complete, unmodified stream of this
format before any decoding starts; decoding with another model is refused by the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsup.errors import DataError

MAGIC = b"UNSUPZ"
VERSION = 1
DIGEST = 32  # bytes of the SHA-256 trailer
MAX_HEADER = 1 << 24  # a header longer than this is corruption, not a header


@dataclass
class Header:
    """What a stream holds and how it was coded (module docstring)."""

    model: str  # registry name
    fingerprint: str  # model_fingerprint() of the encoding model
    kind: str  # "images" (PNGs or a dataset split), "examples" (a split), "text" or "audio" (files)
    shape: list[int]  # one example's shape
    levels: int
    count: int
    chunk: int  # examples coded together: the decoder batches them the same way
    device: str  # device type that computed the probabilities ("cpu", "cuda")
    threads: int  # torch intra-op threads when encoding
    torch: str  # torch version
    data_sha256: str  # of the examples as little-endian int16, in order
    names: list[str] | None = None  # the files' names, for "images" read from files
    coder: str = "range"  # "range" (autoregressive models) or "bits-back" (latent-variable models)
    coder_params: dict[str, Any] = field(default_factory=dict)  # bits-back: grid, initial words
    source: dict[str, Any] = field(default_factory=dict)  # informative: run path, dataset, split
    # runs [[k, n], ..]: n examples that code their first k elements (flattened), the rest zeros
    lengths: list[list[int]] | None = None
    # "text" and "audio" files, in order: bytes, sha256, windows; a WAV's bytes around its samples
    files: list[dict[str, Any]] | None = None
    vocab: str | None = None  # "text": hex of the bytes that symbols 0, 1, .. stand for

    @classmethod
    def from_json(cls, text: bytes) -> Header:
        try:
            d = json.loads(text.decode("utf-8"))
            return cls(**d)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
            raise DataError(f"the stream's header is not valid ({e}); the file is corrupt") from e


def model_fingerprint(name: str, config: dict[str, Any], model: torch.nn.Module) -> str:
    """SHA-256 of a model's name, configuration and every tensor of its state (names, dtypes,
    shapes, bytes): two models code alike only if they compute alike."""
    h = hashlib.sha256()
    h.update(json.dumps({"model": name, "config": config}, sort_keys=True, default=str).encode())
    for key, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_digest(x: torch.Tensor) -> str:
    """SHA-256 of discrete examples as little-endian int16 (levels up to 32,768)."""
    return hashlib.sha256(x.detach().cpu().to(torch.int16).numpy().astype("<i2").tobytes()).hexdigest()


def write_stream(path: str | Path, header: Header, words: np.ndarray) -> int:
    """Write a stream atomically (a temporary file renamed into place); returns its size."""
    head = json.dumps(asdict(header), separators=(",", ":")).encode("utf-8")
    body = (MAGIC + bytes([VERSION]) + struct.pack("<I", len(head)) + head
            + struct.pack("<Q", len(words)) + np.asarray(words, dtype="<u4").tobytes())
    data = body + hashlib.sha256(body).digest()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def read_stream(path: str | Path) -> tuple[Header, np.ndarray]:
    """Parse and verify a stream: the header and the coder's words.

    Raises:
        DataError: not a stream of this format, another version, truncated, or corrupt (the
            checksum does not match).
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise DataError(f"{path}: not an unsup compressed stream (it does not start with {MAGIC!r}); "
                        f"give a file written by `unsup compress`")
    if len(data) < len(MAGIC) + 1 + 4 + 8 + DIGEST:
        raise DataError(f"{path}: truncated ({len(data)} bytes): shorter than an empty stream")
    if data[len(MAGIC)] != VERSION:
        raise DataError(f"{path}: stream format version {data[len(MAGIC)]}, this unsup reads "
                        f"version {VERSION}")
    body, digest = data[:-DIGEST], data[-DIGEST:]
    pos = len(MAGIC) + 1
    (n_head,) = struct.unpack_from("<I", body, pos)
    pos += 4
    if n_head > MAX_HEADER or pos + n_head + 8 > len(body):
        raise DataError(f"{path}: truncated or corrupt: its header length ({n_head} bytes) runs past "
                        f"the end of the file")
    head = body[pos:pos + n_head]
    pos += n_head
    (n_words,) = struct.unpack_from("<Q", body, pos)
    pos += 8
    if pos + 4 * n_words != len(body):
        raise DataError(f"{path}: truncated or corrupt: {len(body) - pos} payload bytes, the header "
                        f"announces {4 * n_words}")
    if hashlib.sha256(body).digest() != digest:
        raise DataError(f"{path}: corrupt: its SHA-256 checksum does not match its contents")
    words = np.frombuffer(body, dtype="<u4", count=n_words, offset=pos).astype(np.uint32)
    return Header.from_json(head), words
