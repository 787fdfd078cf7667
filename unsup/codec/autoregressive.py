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

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import constriction
import numpy as np
import torch

from unsup.errors import ConfigError
from unsup.models import Model

Done = Callable[[int], None] | None  # progress: told the number of examples just coded


def check_codable(model: Model, name: str) -> None:
    """Raises ConfigError unless ``model`` (registered as ``name``) can code data: an
    autoregressive model with a ``walk`` loop (``Model.codes``), unconditional (coding a
    conditional model would need every example's label)."""
    if not model.codes:
        raise ConfigError(f"{name} cannot code data: `unsup compress` takes the autoregressive models "
                          f"with a raster or sequence loop (pixelcnn, gated-pixelcnn, pixelcnn++, "
                          f"pixelsnail, transformer, lstm, bytenet, nade)")
    if model.num_classes:
        raise ConfigError(f"{name} is class-conditional: coding would need every example's label; "
                          f"compress with an unconditional run")


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """``(..., L)`` logits to float64 probabilities ``(N, L)``, one row per coded element."""
    return torch.softmax(logits.double(), dim=-1).reshape(-1, logits.shape[-1]).cpu().numpy()


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


def encode(model: Model, x: torch.Tensor, chunk: int, done: Done = None) -> np.ndarray:
    """Range-code examples ``x`` ``(n, *spec.shape)`` (levels) in chunks of ``chunk``; the
    coder's 32-bit words. ``done(k)`` hears of every ``k`` examples coded. Call within
    :func:`computing_as`."""
    model.eval()
    coder, family = constriction.stream.queue.RangeEncoder(), _family()
    for start in range(0, len(x), chunk):
        truth = model.to_walk(x[start:start + chunk].to(model.device).long())

        def choose(logits: torch.Tensor, where: tuple, truth: torch.Tensor = truth) -> torch.Tensor:
            value = truth[where]
            coder.encode(value.reshape(-1).cpu().numpy().astype(np.int32), family, probabilities(logits))
            return value

        model.walk(torch.zeros_like(truth), None, choose, fast=True)
        if done is not None:
            done(len(truth))
    return coder.get_compressed()


def decode(model: Model, words: np.ndarray, count: int, chunk: int, done: Done = None) -> torch.Tensor:
    """The ``count`` examples that :func:`encode` coded into ``words`` with the same ``chunk``;
    ``done`` as in :func:`encode`. Call within :func:`computing_as`."""
    model.eval()
    coder, family = constriction.stream.queue.RangeDecoder(np.asarray(words, dtype=np.uint32)), _family()
    shape = model.to_walk(torch.zeros(1, *model.spec.shape, dtype=torch.long)).shape[1:]
    out = []
    for start in range(0, count, chunk):
        canvas = torch.zeros(min(chunk, count - start), *shape, dtype=torch.long, device=model.device)

        def choose(logits: torch.Tensor, where: tuple) -> torch.Tensor:
            value = coder.decode(family, probabilities(logits))
            return torch.from_numpy(value.astype(np.int64)).to(model.device).view(logits.shape[:-1])

        out.append(model.from_walk(model.walk(canvas, None, choose, fast=True)).cpu())
        if done is not None:
            done(len(canvas))
    return torch.cat(out) if out else torch.zeros(0, *model.spec.shape, dtype=torch.long)
