"""Sample quality from features: how far generated examples are from real ones.

Every metric here compares two sets of feature vectors, ``real`` ``(N, D)`` and ``fake``
``(M, D)``, computed by the same feature extractor (for images, the penultimate layer of a
classifier trained on the data: Inception features mean little on 28x28 greyscale images, and
cannot be downloaded here). The metric names say which features were used: a Fréchet distance in
a dataset classifier's features is an **FD**, not an FID, which is reserved for Inception
features.

* :func:`frechet_distance` -- ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))``, the
  2-Wasserstein distance between Gaussians fitted to the two sets [1] (torchmetrics'
  ``FrechetInceptionDistance`` with the features given as they are). Biased at small sample
  sizes: compare FDs only at equal ``N`` and ``M``.
* :func:`kernel_distance` -- KID [2]: the unbiased estimate of the squared MMD with the kernel
  ``k(x, y) = (x . y / D + 1)^3``, its mean and standard deviation over random subsets
  (torchmetrics' ``KernelInceptionDistance``). Unbiased, so usable at the sample sizes a CPU can
  afford; it can be slightly negative when the sets are alike.
* :func:`classifier_score` -- the Inception-score formula ``exp E_x KL(p(y | x) || p(y))`` on a
  classifier's logits [3] (torchmetrics' ``InceptionScore``): high when each sample is confidently
  one class and the classes are balanced.
* :func:`precision_recall` -- the k-nearest-neighbour manifolds of [4]: precision is the share of
  fake points within the k-NN radius of some real point (fidelity), recall the share of real
  points within the radius of some fake point (diversity).
* :func:`mmd_test` -- the two-sample test of [6]: the unbiased MMD^2 under a sum of Gaussian
  kernels (:mod:`unsup.nn.mmd`, median-heuristic bandwidths) and its permutation p-value, the
  share of random relabellings of the pooled sets whose statistic is at least as large: a small
  p-value says the sets come from different distributions.
* :func:`density_coverage` -- [5]: density counts, for each fake point, the real balls that hold
  it (``1/(kM) sum_j sum_i 1[f_j in B(r_i)]``; about 1 for matching sets, above 1 where fakes
  crowd real modes); coverage is the share of real balls that hold at least one fake point.

References:
    [1] Heusel et al. GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
        Equilibrium. NeurIPS 2017.
    [2] Bińkowski et al. Demystifying MMD GANs. ICLR 2018.
    [3] Salimans et al. Improved Techniques for Training GANs. NeurIPS 2016.
    [4] Kynkäänniemi et al. Improved Precision and Recall Metric for Assessing Generative Models.
        NeurIPS 2019.
    [5] Naeem et al. Reliable Fidelity and Diversity Metrics for Generative Models. ICML 2020.
    [6] Gretton et al. A Kernel Two-Sample Test. JMLR 2012.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from unsup.errors import ConfigError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torchmetrics warns that KID and the score keep every feature in memory: the features are
    in memory already, so the warning tells the user nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
        yield


class _Given(nn.Module):
    """The "feature extractor" of features already extracted: the identity, with their width."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check(real: torch.Tensor, fake: torch.Tensor, least: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(f"expected feature matrices (N, D) and (M, D) of one width D, got "
                          f"{tuple(real.shape)} and {tuple(fake.shape)}")
    if len(real) < least or len(fake) < least:
        raise ConfigError(f"need at least {least} real and {least} generated examples, got "
                          f"{len(real)} and {len(fake)}")
    if not (torch.isfinite(real).all() and torch.isfinite(fake).all()):
        raise ConfigError("features must be finite")
    return real.detach().double().cpu(), fake.detach().double().cpu()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to the two feature sets (module docstring)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _check(real, fake)
    fd = FrechetInceptionDistance(feature=_Given(real.shape[1]))
    fd.update(real, real=True)
    fd.update(fake, real=False)
    return float(fd.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100,
                    subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation over ``subsets`` random subsets of
    ``min(subset_size, N, M)`` examples of the unbiased squared MMD (cubic polynomial kernel)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _check(real, fake)
    size = min(subset_size, len(real), len(fake))
    with _quiet():
        kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng():  # the subsets are drawn from torch's RNG
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def classifier_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """``exp E KL(p(y | x) || p(y))`` of classifier ``logits`` ``(M, C)``: mean and standard
    deviation over ``splits`` random splits (one split: the whole set, and a NaN deviation)."""
    from torchmetrics.image.inception import InceptionScore

    logits, _ = _check(logits, logits, least=splits)
    with _quiet():
        score = InceptionScore(feature=_Given(logits.shape[1]), splits=splits)
    score.update(logits)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")  # splits=1: NaN
        torch.manual_seed(seed)
        mean, std = score.compute()
    return float(mean), float(std)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point of ``x`` to its k-th nearest other point of ``x``."""
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # the 1st is the point itself (distance 0)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall [4] with k-NN balls (module docstring)."""
    real, fake = _check(real, fake, least=k + 1)
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (d.T <= r_fake[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def mmd_test(real: torch.Tensor, fake: torch.Tensor, permutations: int = 200, seed: int = 0
             ) -> tuple[float, float]:
    """The unbiased MMD^2 of the two sets and its permutation p-value ``(1 + #{b: T_b >= T}) /
    (1 + permutations)``, with the bandwidths fixed from the pooled sets before permuting.

    Raises:
        ConfigError: fewer than two examples on a side, or sets of different dimensions.
    """
    from unsup.nn.mmd import median_bandwidths, mmd2

    real, fake = _check(real, fake)
    bandwidths = median_bandwidths(real, fake)
    observed = float(mmd2(real, fake, bandwidths))
    pooled = torch.cat([real, fake])
    g = torch.Generator().manual_seed(seed)
    exceed = 0
    for _ in range(permutations):
        perm = torch.randperm(len(pooled), generator=g)
        exceed += float(mmd2(pooled[perm[:len(real)]], pooled[perm[len(real):]], bandwidths)) >= observed
    return observed, (1 + exceed) / (1 + permutations)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage [5] with the k-NN balls of the real points (module docstring)."""
    real, fake = _check(real, fake, least=k + 1)
    inside = torch.cdist(fake, real) <= _knn_radii(real, k)[None, :]  # (M, N): fake j in ball i
    density = inside.double().sum() / (k * len(fake))
    coverage = inside.any(0).double().mean()
    return float(density), float(coverage)


def sample_quality(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100,
                   subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """Every feature-set metric above in one dict, with the papers' neighbourhood sizes
    (precision/recall k = 3, density/coverage k = 5)."""
    kid, kid_sd = kernel_distance(real, fake, subsets, subset_size, seed)
    precision, recall = precision_recall(real, fake, k=3)
    density, coverage = density_coverage(real, fake, k=5)
    return {"fd": frechet_distance(real, fake), "kid": kid, "kid_sd": kid_sd, "precision": precision,
            "recall": recall, "density": density, "coverage": coverage, "n_real": len(real),
            "n_fake": len(fake)}
