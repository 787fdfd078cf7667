r"""Lossless coding with an autoregressive model: range coding under its conditionals.

An autoregressive model factorises ``p(x) = prod_t p(x_t | x_<t)``. A range coder [1] given each
conditional in turn spends ``-log2 q(x_t | x_<t)`` bits on element ``t`` plus a constant for the
whole stream, where ``q`` is ``p`` quantised to the coder's fixed-point probabilities; so the
stream's length is the model's negative log-likelihood in bits, plus the quantisation's small
excess (a KL divergence per element) and at most one 32-bit word of padding.

Encoder and decoder must use the same ``q`` bit for bit, or decoding derails. Both run the model's
own autoregressive loop (``walk``: the cached sampler's loop of
:class:`~unsup.models.autoregressive.raster.RasterSampling` and
:class:`~unsup.models.autoregressive.sequence.SequenceModel`) over the same chunks of examples,
starting from the same zero-filled tensor and filling it in the same order: the encoder with the
true values, the decoder with the decoded ones, which are the same. Every network input is
therefore the same tensor on both sides, and so, on the same device type with the same thread
count, are the logits. Probabilities are the float64 softmax of those logits, and the
``constriction`` package's ``Categorical(perfect=False)`` quantises them deterministically, giving
every symbol a nonzero probability, so no value is ever uncodable. The stream records device
type, threads and torch version (:mod:`unsup.codec.stream`); the decoder uses the same thread
count, and the SHA-256 of the original data catches any decoder that still computed otherwise.

References:
    [1] G. N. N. Martin. Range encoding: an algorithm for removing redundancy from a digitised
        message. Video and Data Recording Conference, 1979.
    [2] R. Bamler. Understanding entropy coding with asymmetric numeral systems (ANS): a
        statistician's perspective. arXiv:2201.01741, 2022 (the ``constriction`` library).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import constriction
import numpy as np
import torch

from unsup.errors import ConfigError, DataError
from unsup.models import MODELS, Model
from unsup.models import names as model_names
from unsup.nn.layers import level_log_probs

Done = Callable[[int], None] | None  # progress: told the number of examples just coded


def check_codable(model: Model, name: str) -> None:
    """Raises ConfigError unless ``model`` (registered as ``name``) can code data: an
    autoregressive model with a ``walk`` loop (``Model.codes``), unconditional (coding a
    conditional model would need every example's label)."""
    if not model.codes:
        family = ", ".join(n for n in model_names() if MODELS.get(n).codes)
        raise ConfigError(f"{name} cannot code data: `unsup compress` takes the autoregressive models "
                          f"with a walk loop ({family})")
    if model.num_classes:
        raise ConfigError(f"{name} is class-conditional: coding would need every example's label; "
                          f"compress with an unconditional run")


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """``(..., L)`` logits (``(..., 1)``: one binary logit) to float64 probabilities ``(N, L)``,
    one row per coded element."""
    p = level_log_probs(logits.double()).exp()
    return p.reshape(-1, p.shape[-1]).cpu().numpy()


def _family():
    return constriction.stream.model.Categorical(perfect=False)


@contextmanager
def computing_as(threads: int) -> Iterator[None]:
    """Compute the probabilities as the encoder did: ``threads`` intra-op threads, cuDNN's
    deterministic kernels, no autotuning, gradients off."""
    old = torch.get_num_threads(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.set_num_threads(threads)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(old[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old[1], old[2]


def length_runs(lengths: list[int]) -> list[list[int]]:
    """Per-example lengths as runs ``[[length, repeats], ..]`` (a file's windows: two runs)."""
    runs: list[list[int]] = []
    for k in lengths:
        if runs and runs[-1][0] == k:
            runs[-1][1] += 1
        else:
            runs.append([int(k), 1])
    return runs


def run_lengths(runs: list[list[int]], count: int, dims: int) -> list[int]:
    """The inverse of :func:`length_runs`, checked against ``count`` examples of ``dims`` elements.

    Raises:
        DataError: runs that do not describe ``count`` examples (a corrupt header).
    """
    try:
        lengths = [int(k) for k, n in runs for _ in range(int(n))]
    except (TypeError, ValueError):
        lengths = []
    if len(lengths) != count or any(not 0 <= k <= dims for k in lengths):
        raise DataError(f"corrupt stream header: its lengths do not describe {count} examples of "
                        f"{dims} elements")
    return lengths


def coded_mask(lengths: list[int] | None, count: int, shape: tuple[int, ...]) -> torch.Tensor | None:
    """Which elements of ``count`` examples of ``shape`` are coded: the first ``lengths[i]`` of
    example ``i``, flattened (None: all of every example)."""
    if lengths is None:
        return None
    dims = math.prod(shape)
    if len(lengths) != count or any(not 0 <= k <= dims for k in lengths):
        raise ConfigError(f"{len(lengths)} lengths for {count} examples, each in [0, {dims}]")
    return (torch.arange(dims)[None] < torch.tensor(lengths, dtype=torch.long)[:, None]).view(count, *shape)


def encode(model: Model, x: torch.Tensor, chunk: int, done: Done = None,
           coded: torch.Tensor | None = None) -> np.ndarray:
    """Range-code examples ``x`` ``(n, *spec.shape)`` (levels) in chunks of ``chunk``; the
    coder's 32-bit words. ``done(k)`` hears of every ``k`` examples coded. ``coded``: a boolean
    mask like ``x`` (:func:`coded_mask`) of the elements to code; the others must be zero, and
    the decoder fills them with zeros without reading a bit (both sides condition on those
    zeros, so any order stays exact). Call within :func:`computing_as`."""
    model.eval()
    coder, family = constriction.stream.queue.RangeEncoder(), _family()
    for start in range(0, len(x), chunk):
        truth = model.to_walk(x[start:start + chunk].to(model.device).long())
        keep = None if coded is None else model.to_walk(coded[start:start + chunk].to(model.device))

        def choose(logits: torch.Tensor, where: tuple, truth: torch.Tensor = truth,
                   keep: torch.Tensor | None = keep) -> torch.Tensor:
            value = truth[where]
            symbols, p = value.reshape(-1).cpu().numpy().astype(np.int32), probabilities(logits)
            if keep is not None:
                rows = keep[where].reshape(-1).cpu().numpy()
                symbols, p = symbols[rows], p[rows]
            if len(symbols):
                coder.encode(symbols, family, p)
            return value

        model.walk(torch.zeros_like(truth), None, choose, fast=True)
        if done is not None:
            done(len(truth))
    return coder.get_compressed()


def decode(model: Model, words: np.ndarray, count: int, chunk: int, done: Done = None,
           coded: torch.Tensor | None = None) -> torch.Tensor:
    """The ``count`` examples that :func:`encode` coded into ``words`` with the same ``chunk``
    and ``coded``; ``done`` as in :func:`encode`. Call within :func:`computing_as`."""
    model.eval()
    coder, family = constriction.stream.queue.RangeDecoder(np.asarray(words, dtype=np.uint32)), _family()
    shape = model.to_walk(torch.zeros(1, *model.spec.shape, dtype=torch.long)).shape[1:]
    out = []
    for start in range(0, count, chunk):
        canvas = torch.zeros(min(chunk, count - start), *shape, dtype=torch.long, device=model.device)
        keep = None if coded is None else model.to_walk(coded[start:start + chunk].to(model.device))

        def choose(logits: torch.Tensor, where: tuple, keep: torch.Tensor | None = keep) -> torch.Tensor:
            p = probabilities(logits)
            value = np.zeros(len(p), dtype=np.int64)
            rows = slice(None) if keep is None else keep[where].reshape(-1).cpu().numpy()
            if len(p[rows]):
                value[rows] = coder.decode(family, p[rows])
            return torch.from_numpy(value).to(model.device).view(logits.shape[:-1])

        out.append(model.from_walk(model.walk(canvas, None, choose, fast=True)).cpu())
        if done is not None:
            done(len(canvas))
    return torch.cat(out) if out else torch.zeros(0, *model.spec.shape, dtype=torch.long)


def information(model: Model, x: torch.Tensor, coded: torch.Tensor, chunk: int) -> float:
    """``-log2 p`` of the ``coded`` elements of ``x`` in bits, summed, from the conditionals of
    the model's walk with the other elements zero (what :func:`encode` should spend on them):
    the NLL of examples that are coded in part. Call within :func:`computing_as`."""
    model.eval()
    total = 0.0
    for start in range(0, len(x), chunk):
        truth = model.to_walk(x[start:start + chunk].to(model.device).long())
        keep = model.to_walk(coded[start:start + chunk].to(model.device))

        def choose(logits: torch.Tensor, where: tuple, truth: torch.Tensor = truth,
                   keep: torch.Tensor = keep) -> torch.Tensor:
            nonlocal total
            logp = level_log_probs(logits.double()).gather(-1, truth[where][..., None])[..., 0]
            total -= logp[keep[where]].sum().item() / math.log(2)
            return truth[where]

        model.walk(torch.zeros_like(truth), None, choose, fast=True)
    return total
