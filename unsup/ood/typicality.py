"""The typicality test on batches of inputs (Nalisnick et al. [1]).

By the asymptotic equipartition property, samples of a model in high dimensions have a
log-likelihood close to its entropy, ``-log p(x) ~ H``: they lie in its *typical set*, which need
not contain the points of highest density. Outliers that a model finds *more* likely than its own
data (the failure of plain likelihood) are then as atypical as those it finds less likely. The
test asks how far a batch's mean NLL is from the entropy, in either direction:

    T(x_1..x_M) = | (1/M) sum_m -log2 p(x_m) / D  -  H^ |,

with ``H^`` the mean NLL (bits/dim) of held-out in-distribution data (the run's validation split,
never the test inputs). Higher = more outlying. Nalisnick et al. turn ``T`` into a test with a
bootstrap threshold; here ``T`` is a score, judged by AUROC over batches like every other score.

Batches are ``M`` inputs from one set, disjoint, in an order drawn from a seeded generator; a set
of ``n`` inputs gives ``n // M`` batches (the remainder is left out). ``M = 1`` is the two-sided
per-input test ``|NLL - H^|``.

[1] E. Nalisnick, A. Matsukawa, Y. W. Teh and B. Lakshminarayanan, "Detecting Out-of-Distribution
    Inputs to Deep Generative Models Using Typicality", arXiv:1906.02994, 2019.
"""

from __future__ import annotations

import numpy as np
import torch

from unsup.errors import ConfigError


def batch_indices(n: int, m: int, seed: int) -> torch.Tensor:
    """``(n // m, m)`` disjoint batches of ``range(n)`` in a seeded random order."""
    if m < 1:
        raise ConfigError(f"the typicality batch size must be >= 1, got {m}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: (n // m) * m].view(-1, m)


def typicality_scores(nll_bpd: np.ndarray, entropy: float, m: int, seed: int) -> np.ndarray:
    """``T`` of every batch of ``m`` of the inputs whose NLLs (bits/dim) are ``nll_bpd``.

    Args:
        nll_bpd: per-input NLL in bits/dim.
        entropy: ``H^``, the mean NLL (bits/dim) of held-out in-distribution inputs.
        m: inputs per batch.
        seed: seed of the batches' order.

    Returns:
        One score per batch, ``len(nll_bpd) // m`` of them.
    """
    nll = np.asarray(nll_bpd, dtype=np.float64)
    idx = batch_indices(len(nll), m, seed).numpy()
    return np.abs(nll[idx].mean(axis=1) - entropy) if len(idx) else np.zeros(0)
