"""Semantic hashing: retrieval by Hamming distance between short binary codes [1].

Any map from examples to ``bits`` binary values is a hash; a good one gives nearby codes to
examples of the same class. This module holds what does not depend on how the codes were made:

* :func:`binary_codes` thresholds real activations into bits, :func:`hamming_distance` counts
  differing bits;
* :func:`precision_at_k`: for each query, the fraction of its ``k`` nearest database items (in
  Hamming distance) that share its label, averaged over queries;
* two baselines: :func:`pca_codes`, the signs of the top ``bits`` principal components of centred
  data, and :func:`random_projection_codes`, the signs of ``bits`` random Gaussian projections of
  centred data (locality-sensitive hashing for the angle, Charikar 2002 [2]).

The learned hash is :class:`unsup.models.representation.hashing_ae.HashingAutoencoder` (``codes(x)``).

Ties. Hamming distances take only ``bits + 1`` values, so the ``k``-th neighbour usually sits in a
block of items at the same distance. Rather than break ties by database order (which would make
the score depend on how the database is sorted), :func:`precision_at_k` returns the *expected*
precision when the tied block is ordered uniformly at random: all items strictly closer than the
``k``-th distance count fully, and the remaining places are filled with the block's fraction of
relevant items.

References:
    [1] R. Salakhutdinov, G. Hinton. Semantic hashing. International Journal of Approximate
        Reasoning 50(7), 2009.
    [2] M. Charikar. Similarity estimation techniques from rounding algorithms. STOC 2002.
"""

from __future__ import annotations

import torch

from unsup.errors import ConfigError


def binary_codes(h: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Bits of activations ``h`` ``(N, bits)``: ``h > threshold`` as a bool tensor."""
    return h > threshold


def hamming_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamming distances between binary codes ``a (Q, bits)`` and ``b (N, bits)``, ``(Q, N)`` long.

    Codes may be bool or 0/1 numbers.
    """
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"codes of {a.shape[1]} and {b.shape[1]} bits cannot be compared")
    a, b = a.float(), b.float()
    # |a - b| summed = a(1-b) + (1-a)b, as two matrix products (exact in float32 for < 2^24 bits)
    return (a @ (1 - b).T + (1 - a) @ b.T).round().long()


def precision_at_k(codes_query: torch.Tensor, y_query: torch.Tensor, codes_db: torch.Tensor,
                   y_db: torch.Tensor, k: int, chunk: int = 1024) -> float:
    """Mean over queries of the fraction of the ``k`` Hamming-nearest database items with the
    query's label, ties at the ``k``-th distance counted in expectation (module docstring).

    Args:
        codes_query: query codes, ``(Q, bits)`` bool or 0/1.
        y_query: query labels, ``(Q,)``.
        codes_db: database codes, ``(N, bits)``.
        y_db: database labels, ``(N,)``.
        k: neighbours per query, ``1 <= k <= N``.
        chunk: queries per block (memory: ``chunk x N`` distances).

    Raises:
        ConfigError: ``k`` out of range or mismatched lengths.
    """
    n, bits = codes_db.shape
    if not 1 <= k <= n:
        raise ConfigError(f"precision_at_k: k must be in [1, {n}] (the database size), got {k}")
    if len(codes_query) != len(y_query) or len(codes_db) != len(y_db):
        raise ConfigError("precision_at_k: codes and labels differ in length")
    total = 0.0
    for s in range(0, len(codes_query), chunk):
        d = hamming_distance(codes_query[s:s + chunk], codes_db)  # (q, N)
        rel = (y_query[s:s + chunk, None] == y_db[None, :]).float()  # (q, N)
        count = torch.zeros(len(d), bits + 1).scatter_add_(1, d, torch.ones_like(rel))  # (q, bits+1)
        hits = torch.zeros(len(d), bits + 1).scatter_add_(1, d, rel)
        before = count.cumsum(1) - count  # items strictly closer than each distance
        # places the block at distance j fills among the first k: clamp(k - before, 0, count)
        taken = (k - before).clamp(min=0).minimum(count)
        total += float((taken * hits / count.clamp(min=1)).sum() / k)
    return total / len(codes_query)


def _centred(train: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    train = train.float().flatten(1)
    mean = train.mean(0)
    return train - mean, x.float().flatten(1) - mean


def pca_codes(train: torch.Tensor, x: torch.Tensor, bits: int) -> torch.Tensor:
    """Signs of the projections of ``x`` (centred by the training mean) on the top ``bits``
    principal directions of ``train``, ``(N, bits)`` bool. Examples of any shape are flattened."""
    train, x = _centred(train, x)
    if not 1 <= bits <= min(train.shape):
        raise ConfigError(f"pca_codes: bits must be in [1, {min(train.shape)}], got {bits}")
    _, _, vt = torch.linalg.svd(train, full_matrices=False)  # rows of vt: principal directions
    return x @ vt[:bits].T > 0


def random_projection_codes(train: torch.Tensor, x: torch.Tensor, bits: int, seed: int = 0
                            ) -> torch.Tensor:
    """Signs of ``bits`` random N(0, I) projections of ``x`` centred by the training mean (LSH),
    ``(N, bits)`` bool; the projections are drawn from ``seed``."""
    train, x = _centred(train, x)
    if bits < 1:
        raise ConfigError(f"random_projection_codes: bits must be >= 1, got {bits}")
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(train.shape[1], bits, generator=g)  # (dims, bits)
    return x @ r > 0
