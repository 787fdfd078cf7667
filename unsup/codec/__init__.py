"""Lossless compression with a trained model: ``unsup compress`` / ``unsup decompress``.

A model that assigns ``p(x)`` to discrete data defines a code of about ``-log2 p(x)`` bits for
``x``; an entropy coder (here the ``constriction`` package) turns that into real bytes. This package
writes and reads such streams (:mod:`unsup.codec.stream`: header, payload, checksum) and codes
with autoregressive models (:mod:`unsup.codec.autoregressive`: range coding under the model's
conditionals, decoded by the same cached loop that samples).

    >>> model, meta = unsup.train.load_run("runs/pixelcnn")
    >>> report = compress(model, meta, x, "test.unsupz")       # x: (n, *spec.shape) levels
    >>> y, header = decompress(model, meta, "test.unsupz")    # y equals x
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsup.codec import autoregressive
from unsup.codec.stream import Header, data_digest, model_fingerprint, read_stream, write_stream
from unsup.errors import ConfigError, DataError
from unsup.models import Model

__all__ = ["compress", "decompress", "Header", "read_stream", "model_fingerprint"]


def _nll_bits(model: Model, x: torch.Tensor, chunk: int) -> float:
    """The model's negative log-likelihood of ``x`` in bits (what the code should cost)."""
    with torch.inference_mode():
        return sum(-model.log_prob(x[i:i + chunk].to(model.device)).double().sum().item()
                   for i in range(0, len(x), chunk)) / math.log(2)


def compress(model: Model, meta: dict[str, Any], x: torch.Tensor, path: str | Path, *, chunk: int = 64,
             kind: str = "examples", names: list[str] | None = None,
             source: dict[str, Any] | None = None, done: autoregressive.Done = None) -> dict[str, Any]:
    """Code examples ``x`` ``(n, *spec.shape)`` with ``model`` (loaded from a run with ``meta``)
    into the stream ``path``.

    Args:
        chunk: examples coded together (the decoder batches them the same way).
        kind: ``"images"`` (read from files named ``names``) or ``"examples"``.
        source: informative fields for the header (run, dataset, split).
        done: progress, told the number of examples coded after every chunk.

    Returns:
        sizes: ``bytes`` of the file, ``payload_bits`` of the coder, ``container_bits`` of
        header, framing and checksum, the model's ``nll_bits`` of ``x`` and ``dims``.

    Raises:
        ConfigError: a model that cannot code, an invalid chunk.
        DataError: ``x`` not of the model's shape or levels.
    """
    autoregressive.check_codable(model, meta["model"])
    if chunk < 1:
        raise ConfigError(f"chunk must be at least 1, got {chunk}")
    if len(x) == 0:
        raise DataError("nothing to compress: no examples given")
    model.check_input(x)
    threads = torch.get_num_threads()
    with autoregressive.computing_as(threads):
        words = autoregressive.encode(model, x, chunk, done)
        nll = _nll_bits(model, x, chunk)
    fingerprint = model_fingerprint(meta["model"], meta["model_config"], model)
    header = Header(model=meta["model"], fingerprint=fingerprint, kind=kind, shape=list(model.spec.shape),
                    levels=int(model.spec.levels), count=len(x), chunk=chunk, device=model.device.type,
                    threads=threads, torch=torch.__version__, data_sha256=data_digest(x), names=names,
                    source=source or {})
    size = write_stream(path, header, words)
    return {"bytes": size, "payload_bits": 32 * len(words), "container_bits": 8 * size - 32 * len(words),
            "nll_bits": nll, "count": len(x), "dims": len(x) * model.spec.dims}


def decompress(model: Model, meta: dict[str, Any], path: str | Path, done: autoregressive.Done = None,
               stream: tuple[Header, np.ndarray] | None = None) -> tuple[torch.Tensor, Header]:
    """Decode the stream ``path`` with ``model``: the original examples and the stream's header
    (``done`` as in :func:`compress`; ``stream``: ``read_stream(path)`` when the caller has
    already read it).

    Raises:
        DataError: not a complete, unmodified stream; written by another model (its fingerprint
            differs); or decoded data that differ from the original's checksum (the probabilities
            were computed differently: another device type or torch build).
    """
    header, words = stream if stream is not None else read_stream(path)
    autoregressive.check_codable(model, meta["model"])
    mine = model_fingerprint(meta["model"], meta["model_config"], model)
    if header.fingerprint != mine:
        raise DataError(f"{path} was written by another model ({header.model}, fingerprint "
                        f"{header.fingerprint[:12]}), not by this run ({meta['model']}, {mine[:12]}): "
                        f"decompress with the run (and --checkpoint) that compressed it")
    with autoregressive.computing_as(header.threads):
        x = autoregressive.decode(model, words, header.count, header.chunk, done)
    if data_digest(x) != header.data_sha256:
        raise DataError(f"{path}: the decoded data do not match the original's checksum. The stream was "
                        f"written on {header.device} with {header.threads} threads and torch {header.torch}; "
                        f"this is {model.device.type} with torch {torch.__version__}: decode where the "
                        f"probabilities are computed the same way")
    return x, header
