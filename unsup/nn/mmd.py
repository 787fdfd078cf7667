"""Maximum mean discrepancy with a sum of Gaussian kernels (Gretton et al. 2012).

For distributions P, Q and a kernel k,

    MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y),   x, x' ~ P,  y, y' ~ Q,

which is zero exactly when P = Q for a characteristic kernel such as the Gaussian
``k(a, b) = exp(-|a - b|^2 / (2 s^2))``. Several bandwidths ``s`` summed make one kernel that
sees both coarse and fine differences (the generative moment-matching network of Li et al. 2015
uses such a sum as its loss). :func:`mmd2` is the unbiased U-statistic: the within-sample means
leave out the ``i = j`` terms, so its expectation is MMD^2 itself and it can be slightly negative.

For two 1-D Gaussians ``N(m1, v)`` and ``N(m2, v)`` and one bandwidth ``s`` the value is closed:
``2 s / sqrt(s^2 + 2v) * (1 - exp(-(m1 - m2)^2 / (2 (s^2 + 2v))))`` (tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MEDIAN_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a_i - b_j|^2`` as ``|a_i|^2 + |b_j|^2 - 2 a_i.b_j`` (differentiable at zero distance,
    unlike the norm)."""
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0)


def _kernel_sum(d2: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """``sum_s exp(-d2 / (2 s^2))`` for a matrix of squared distances."""
    return torch.exp(-d2.unsqueeze(-1) / (2 * bandwidths**2)).sum(-1)


def median_bandwidths(x: torch.Tensor, y: torch.Tensor,
                      scales: Sequence[float] = MEDIAN_SCALES) -> torch.Tensor:
    """Bandwidths ``scales`` times the median distance between all the examples of ``x`` and
    ``y`` (the median heuristic), computed without gradient."""
    with torch.no_grad():
        both = torch.cat([x, y]).flatten(1).float()
        d = torch.cdist(both, both)
        n = len(both)
        median = d[~torch.eye(n, dtype=torch.bool, device=d.device)].median().clamp_min(1e-6)
    return median * torch.tensor(scales, device=x.device)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] | torch.Tensor | None = None
         ) -> torch.Tensor:
    """Unbiased MMD^2 between samples ``x`` (m, ...) and ``y`` (n, ...), flattened to vectors.

    Args:
        bandwidths: the Gaussian kernels' ``s``; ``None``: :func:`median_bandwidths`.

    Raises:
        ValueError: fewer than two examples on a side, or differently shaped examples.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least 2 examples per sample, got {len(x)} and {len(y)}")
    x, y = x.flatten(1).float(), y.flatten(1).float()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"MMD compares examples of one size, got {x.shape[1]} and {y.shape[1]} values")
    s = (median_bandwidths(x, y) if bandwidths is None
         else torch.as_tensor(bandwidths, dtype=x.dtype, device=x.device))
    m, n = len(x), len(y)
    kxx = _kernel_sum(_squared_distances(x, x), s)
    kyy = _kernel_sum(_squared_distances(y, y), s)
    kxy = _kernel_sum(_squared_distances(x, y), s)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * kxy.mean()
