"""Lossless compression with a trained model: ``unsup compress`` / ``unsup decompress``.

A model that assigns ``p(x)`` to discrete data defines a code of about ``-log2 p(x)`` bits for
``x``; an entropy coder (here the ``constriction`` package) turns that into real bytes. This package
writes and reads such streams (:mod:`unsup.codec.stream`: header, payload, checksum) and codes
with autoregressive models (:mod:`unsup.codec.autoregressive`: range coding under the model's
conditionals, decoded by the same cached loop that samples) and with VAEs
(:mod:`unsup.codec.bitsback`: bits-back coding with ANS, at about the negative ELBO). Files go
in and out byte for byte through :mod:`unsup.codec.files` (PNG) and :mod:`unsup.codec.sequences`
(text and WAV files as windows of a sequence model, the last coded in part).

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

from unsup.codec import autoregressive, bitsback
from unsup.codec.stream import Header, data_digest, model_fingerprint, read_stream, write_stream
from unsup.errors import ConfigError, DataError
from unsup.models import Model

__all__ = ["compress", "decompress", "coder_of", "Header", "read_stream", "model_fingerprint"]

CHUNK = {"range": 64, "bits-back": 1}  # default examples per chunk: bits-back's first chunk costs
# initial bits in proportion to its size


def coder_of(model: Model, name: str) -> str:
    """``"range"`` for an autoregressive model, ``"bits-back"`` for a VAE with Gaussian latents.

    Raises:
        ConfigError: a model that codes neither way (the message lists those that do).
    """
    if model.codes:
        autoregressive.check_codable(model, name)
        return "range"
    if model.bits_back:
        bitsback.check_codable(model, name)
        return "bits-back"
    from unsup.models import MODELS, names

    ar = ", ".join(n for n in names() if MODELS.get(n).codes)
    bb = ", ".join(n for n in names() if MODELS.get(n).bits_back)
    raise ConfigError(f"{name} cannot code data: `unsup compress` takes the autoregressive models with a "
                      f"walk loop ({ar}) and, by bits-back, the VAEs with Gaussian latents ({bb})")


def _nll_bits(model: Model, x: torch.Tensor, chunk: int, coded: torch.Tensor | None = None) -> float:
    """The model's negative log-likelihood of ``x`` in bits (what the code should cost); of its
    ``coded`` elements only (examples coded in part: from the conditionals of the walk)."""
    part = torch.zeros(len(x), dtype=torch.bool) if coded is None else ~coded.flatten(1).all(1)
    whole = x[~part]
    with torch.inference_mode():
        bits = sum(-model.log_prob(whole[i:i + chunk].to(model.device)).double().sum().item()
                   for i in range(0, len(whole), chunk)) / math.log(2)
    if part.any():
        assert coded is not None
        bits += autoregressive.information(model, x[part], coded[part], chunk)
    return bits


def _neg_elbo_bits(model: Model, x: torch.Tensor, chunk: int = 256) -> float:
    """The negative ELBO of ``x`` in bits, one posterior draw per example (seeded): what a
    bits-back code costs on average."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(0)
        return sum(-model.iwae_bound(x[i:i + chunk], 1).double().sum().item()
                   for i in range(0, len(x), chunk)) / math.log(2)


def compress(model: Model, meta: dict[str, Any], x: torch.Tensor, path: str | Path, *,
             chunk: int | None = None,
             kind: str = "examples", names: list[str] | None = None,
             source: dict[str, Any] | None = None, done: autoregressive.Done = None,
             lengths: list[int] | None = None, files: list[dict[str, Any]] | None = None,
             vocab: str | None = None) -> dict[str, Any]:
    """Code examples ``x`` ``(n, *spec.shape)`` with ``model`` (loaded from a run with ``meta``)
    into the stream ``path``.

    Args:
        chunk: examples coded together (the decoder batches them the same way).
        kind: ``"images"`` (read from files named ``names``) or ``"examples"``.
        source: informative fields for the header (run, dataset, split).
        done: progress, told the number of examples coded after every chunk.
        lengths: code only the first ``lengths[i]`` elements of example ``i`` (flattened; the
            rest must be zeros): the last, short window of a file (:mod:`unsup.codec.sequences`).
        files, vocab: for the header: the files that ``x`` holds (``kind`` ``"text"`` or
            ``"audio"``) and the bytes text symbols stand for.

    Returns:
        sizes: ``bytes`` of the file, ``payload_bits`` of the coder, ``container_bits`` of
        header, framing and checksum, ``count`` and ``dims`` (the elements coded), and what the
        payload should cost: the model's ``nll_bits`` of ``x`` (autoregressive models), or its
        negative ELBO ``neg_elbo_bits`` (a one-sample estimate) and the ``initial_bits`` that the
        payload also holds (bits-back).

    Raises:
        ConfigError: a model that cannot code, an invalid chunk.
        DataError: ``x`` not of the model's shape or levels.
    """
    coder = coder_of(model, meta["model"])
    chunk = CHUNK[coder] if chunk is None else chunk
    if chunk < 1:
        raise ConfigError(f"chunk must be at least 1, got {chunk}")
    if coder == "bits-back" and lengths is not None:
        raise ConfigError("bits-back codes whole examples: lengths are for autoregressive models")
    if len(x) == 0:
        raise DataError("nothing to compress: no examples given")
    model.check_input(x)
    coded = autoregressive.coded_mask(lengths, len(x), tuple(model.spec.shape))
    if coded is not None and (x.cpu()[~coded] != 0).any():
        raise ConfigError("the elements past an example's length must be zeros")
    threads = torch.get_num_threads()
    params: dict[str, Any] = {}
    with autoregressive.computing_as(threads):
        if coder == "range":
            words = autoregressive.encode(model, x, chunk, done, coded)
            target = {"nll_bits": _nll_bits(model, x, chunk, coded)}
        else:
            grid = bitsback.Grid.for_model(model)
            words, initial = bitsback.encode(model, x, chunk, grid, done)
            params = {**grid.to_dict(), "initial_words": initial}
            target = {"neg_elbo_bits": _neg_elbo_bits(model, x), "initial_bits": 32 * initial}
    fingerprint = model_fingerprint(meta["model"], meta["model_config"], model)
    header = Header(model=meta["model"], fingerprint=fingerprint, kind=kind, shape=list(model.spec.shape),
                    levels=int(model.spec.levels), count=len(x), chunk=chunk, device=model.device.type,
                    threads=threads, torch=torch.__version__, data_sha256=data_digest(x), names=names,
                    source=source or {}, files=files, vocab=vocab, coder=coder, coder_params=params,
                    lengths=None if lengths is None else autoregressive.length_runs(lengths))
    size = write_stream(path, header, words)
    dims = len(x) * model.spec.dims if lengths is None else sum(lengths)
    return {"bytes": size, "payload_bits": 32 * len(words), "container_bits": 8 * size - 32 * len(words),
            **target, "count": len(x), "dims": dims}


def _grid(header: Header, path: str | Path) -> bitsback.Grid:
    try:
        p = header.coder_params
        return bitsback.Grid(bin_bits=int(p["bin_bits"]), range=float(p["range"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: corrupt stream header: its bits-back parameters {header.coder_params} "
                        f"are incomplete") from e


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
    coder = coder_of(model, meta["model"])
    mine = model_fingerprint(meta["model"], meta["model_config"], model)
    if header.fingerprint != mine:
        raise DataError(f"{path} was written by another model ({header.model}, fingerprint "
                        f"{header.fingerprint[:12]}), not by this run ({meta['model']}, {mine[:12]}): "
                        f"decompress with the run (and --checkpoint) that compressed it")
    lengths = None if header.lengths is None else autoregressive.run_lengths(header.lengths, header.count,
                                                                             model.spec.dims)
    coded = autoregressive.coded_mask(lengths, header.count, tuple(model.spec.shape))
    if header.coder != coder:
        raise DataError(f"{path} was coded by {header.coder}, which {meta['model']} does not use")
    with autoregressive.computing_as(header.threads):
        if coder == "range":
            x = autoregressive.decode(model, words, header.count, header.chunk, done, coded)
        else:
            x = bitsback.decode(model, words, header.count, header.chunk, _grid(header, path),
                                header.coder_params.get("initial_words", -1), done)
    if data_digest(x) != header.data_sha256:
        raise DataError(f"{path}: the decoded data do not match the original's checksum. The stream was "
                        f"written on {header.device} with {header.threads} threads and torch {header.torch}; "
                        f"this is {model.device.type} with torch {torch.__version__}: decode where the "
                        f"probabilities are computed the same way")
    return x, header
