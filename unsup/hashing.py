"""Semantic hashing: retrieval by Hamming distance between short binary codes [1].

Any map from examples to ``bits`` binary values is a hash; a good one gives nearby codes to
examples of the same class. This module holds what does not depend on how the codes were made:

* :func:`binary_codes` thresholds real activations into bits, :func:`hamming_distance` counts
  differing bits;
* :func:`precision_at_k`: for each query, the fraction of its ``k`` nearest database items (in
  Hamming distance) that share its label, averaged over queries;
* two binary baselines: :func:`pca_codes`, the signs of the top ``bits`` principal components of
  centred data, and :func:`random_projection_codes`, the signs of ``bits`` random Gaussian
  projections of centred data (locality-sensitive hashing for the angle, Charikar 2002 [2]);
* the k-means baseline, :class:`ProductQuantizer`: the same ``bits`` spent on cluster indices
  rather than on independent bits. The example's dimensions are cut into ``bits / 8`` contiguous
  blocks and each block is coded by the index of its nearest of 256 k-means centroids (product
  quantisation, Jegou et al. 2011 [3]; one block of ``2^bits`` centroids is plain k-means, which
  stops being feasible past ~12 bits). Two codes are as far apart as their centroids:
  ``d(a, b) = sum_j ||c_j[a_j] - c_j[b_j]||^2``, read from 256 x 256 tables, and retrieval ranks
  by that distance instead of a Hamming distance (:func:`precision_at_k_by_distance`).

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
    [3] H. Jegou, M. Douze, C. Schmid. Product quantization for nearest neighbor search. IEEE
        TPAMI 33(1), 2011.
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


def precision_at_k_by_distance(distances: torch.Tensor, y_query: torch.Tensor, y_db: torch.Tensor,
                               k: int) -> torch.Tensor:
    """Per-query precision@``k`` for any distances ``(Q, N)``, ties at the ``k``-th distance counted
    in expectation as in :func:`precision_at_k`; returns ``(Q,)``."""
    n = distances.shape[1]
    if not 1 <= k <= n:
        raise ConfigError(f"precision_at_k: k must be in [1, {n}] (the database size), got {k}")
    kth = distances.kthvalue(k, dim=1, keepdim=True).values
    rel = (y_query[:, None] == y_db[None, :]).float()
    closer, tied = (distances < kth).float(), (distances == kth).float()
    before, at = closer.sum(1), tied.sum(1)
    return ((closer * rel).sum(1) + (k - before) * (tied * rel).sum(1) / at) / k


class ProductQuantizer:
    """The k-means baseline of semantic hashing with ``bits`` bits per example (module docstring):
    ``bits / 8`` blocks of contiguous dimensions, each coded by one of 256 k-means centroids fitted
    on ``train`` (scikit-learn's k-means, seeded by ``seed``, at most ``iterations`` Lloyd steps, on a
    seeded random subset of ``fit_examples`` training examples, as product quantisers are usually
    trained: 256 centroids are well estimated from 10,000 points, and Lloyd's steps cost linearly
    in the points; ``None``: all of them).

    ``codes(x)`` gives ``(N, blocks)`` centroid indices; ``distances(a, b)`` the ``(len(a), len(b))``
    squared distances between the codes' centroids.
    """

    levels = 256  # centroids per block: 8 bits

    def __init__(self, train: torch.Tensor, bits: int, seed: int = 0, iterations: int = 50,
                 fit_examples: int | None = 10_000):
        from sklearn.cluster import KMeans

        train = train.float().flatten(1)
        blocks = bits // 8
        if bits < 8 or bits % 8 or not blocks <= train.shape[1]:
            raise ConfigError(f"ProductQuantizer: bits must be a multiple of 8 in [8, "
                              f"{8 * train.shape[1]}] (8 bits per block of dimensions), got {bits}")
        if len(train) < self.levels:
            raise ConfigError(f"ProductQuantizer: needs at least {self.levels} training examples "
                              f"(one per centroid), got {len(train)}")
        self.bounds = torch.linspace(0, train.shape[1], blocks + 1).round().long().tolist()
        if fit_examples is not None and len(train) > fit_examples:
            pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:fit_examples]
            train = train[pick]
        self.centroids, self.tables = [], []
        for j in range(blocks):
            part = train[:, self.bounds[j]:self.bounds[j + 1]].double().numpy()
            km = KMeans(self.levels, n_init=1, max_iter=iterations, random_state=seed + j).fit(part)
            c = torch.from_numpy(km.cluster_centers_).float()
            self.centroids.append(c)
            self.tables.append(torch.cdist(c, c, compute_mode="donot_use_mm_for_euclid_dist").square())

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().flatten(1)
        if x.shape[1] != self.bounds[-1]:
            raise ConfigError(f"ProductQuantizer: examples have {x.shape[1]} dimensions, "
                              f"it was fitted on {self.bounds[-1]}")
        return torch.stack([torch.cdist(x[:, self.bounds[j]:self.bounds[j + 1]], c).argmin(1)
                            for j, c in enumerate(self.centroids)], dim=1)

    def distances(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sum(t[a[:, j]][:, b[:, j]] for j, t in enumerate(self.tables))


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
