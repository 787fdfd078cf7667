"""Sample-quality metrics against closed forms and direct computations."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from unsup.errors import ConfigError
from unsup.metrics import (
    classifier_score,
    density_coverage,
    frechet_distance,
    kernel_distance,
    precision_recall,
    sample_quality,
)


def gaussian(n, mean, cov, seed):
    g = np.random.default_rng(seed)
    return torch.from_numpy(g.multivariate_normal(mean, cov, size=n))


MU1, MU2 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 0.0, 0.5])
S1 = np.array([[1.0, 0.3, 0.0], [0.3, 2.0, 0.5], [0.0, 0.5, 1.5]])
S2 = np.array([[2.0, -0.4, 0.1], [-0.4, 1.0, 0.0], [0.1, 0.0, 0.5]])


def closed_form_fd(m1, s1, m2, s2):
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_the_frechet_distance_is_the_gaussians_2_wasserstein_distance():
    real, fake = gaussian(40000, MU1, S1, 0), gaussian(40000, MU2, S2, 1)
    truth = closed_form_fd(MU1, S1, MU2, S2)
    assert frechet_distance(real, fake) == pytest.approx(truth, rel=0.02)
    # on the samples themselves the formula holds exactly (unbiased covariances)
    r, f = real.numpy(), fake.numpy()
    exact = closed_form_fd(r.mean(0), np.cov(r.T), f.mean(0), np.cov(f.T))
    assert frechet_distance(real, fake) == pytest.approx(exact, rel=1e-6)
    assert frechet_distance(real, gaussian(40000, MU1, S1, 2)) < 0.01


def unbiased_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = len(x)
    return float((kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
                 - 2 * kxy.mean())


def test_kid_is_the_unbiased_polynomial_mmd():
    real, fake = gaussian(50, MU1, S1, 0), gaussian(50, MU2, S2, 1)
    mean, _ = kernel_distance(real, fake, subsets=1, subset_size=50)  # one subset: every example
    assert mean == pytest.approx(unbiased_mmd2(real, fake), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    same = kernel_distance(gaussian(2000, MU1, S1, 0), gaussian(2000, MU1, S1, 1), subsets=50,
                           subset_size=500)
    near = kernel_distance(gaussian(2000, MU1, S1, 0), gaussian(2000, MU1 + 0.3, S1, 1), subsets=50,
                           subset_size=500)
    far = kernel_distance(gaussian(2000, MU1, S1, 0), gaussian(2000, MU2, S2, 1), subsets=50,
                          subset_size=500)
    assert abs(same[0]) < 3 * same[1] and near[0] > 3 * near[1]
    assert 0 < near[0] < far[0]
    assert kernel_distance(gaussian(300, MU1, S1, 0), gaussian(300, MU2, S2, 1), seed=3) == \
        kernel_distance(gaussian(300, MU1, S1, 0), gaussian(300, MU2, S2, 1), seed=3)


def test_the_classifier_score_is_one_for_undecided_and_c_for_confident_balanced_predictions():
    assert classifier_score(torch.zeros(1000, 10))[0] == pytest.approx(1.0)
    confident = torch.full((1000, 10), -30.0)
    confident[torch.arange(1000), torch.arange(1000) % 10] = 30.0
    assert classifier_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert 9 < classifier_score(confident)[0] < 10  # random splits of 100 are not quite balanced
    one_class = torch.full((1000, 10), -30.0)
    one_class[:, 3] = 30.0  # confident, but every sample the same class: no diversity
    assert classifier_score(one_class)[0] == pytest.approx(1.0)


def uniform_disc(n, seed, centre=(0.0, 0.0)):
    g = torch.Generator().manual_seed(seed)
    r, a = torch.rand(n, generator=g).sqrt(), torch.rand(n, generator=g) * 2 * math.pi
    return torch.stack([r * a.cos(), r * a.sin()], 1).double() + torch.tensor(centre).double()


def test_precision_and_recall_separate_fidelity_from_diversity():
    real = uniform_disc(2000, 0)
    p, r = precision_recall(real, uniform_disc(2000, 1))
    assert p > 0.95 and r > 0.95
    assert precision_recall(real, uniform_disc(2000, 1, centre=(10, 0))) == (0.0, 0.0)
    half = torch.cat([uniform_disc(1000, 1), uniform_disc(1000, 2, centre=(10, 0))])
    p, r = precision_recall(real, half)
    assert p == pytest.approx(0.5, abs=0.03) and r > 0.9  # half the fakes are off the data
    collapsed = uniform_disc(2000, 1) * 0.05  # every fake near the centre: faithful, not diverse
    p, r = precision_recall(real, collapsed)
    assert p == 1.0 and r < 0.05


def test_density_counts_fidelity_and_coverage_diversity():
    real = uniform_disc(3000, 0)
    density, coverage = density_coverage(real, uniform_disc(3000, 1))
    assert density == pytest.approx(1.0, abs=0.08)
    assert coverage > 0.9  # expected 1 - 2^-5 for k = 5
    density, coverage = density_coverage(real, uniform_disc(3000, 1) * 0.05)
    assert density == pytest.approx(1.0, abs=0.15) and coverage < 0.05  # faithful, not diverse
    half = torch.cat([uniform_disc(1500, 1), uniform_disc(1500, 2, centre=(10, 0))])
    density, coverage = density_coverage(real, half)
    assert density == pytest.approx(0.5, abs=0.05) and coverage > 0.8  # half off the data


def test_sample_quality_reports_every_metric_and_bad_features_are_refused():
    r = sample_quality(gaussian(300, MU1, S1, 0), gaussian(300, MU2, S2, 1), subsets=10,
                       subset_size=100)
    assert set(r) == {"fd", "kid", "kid_sd", "precision", "recall", "density", "coverage", "n_real",
                      "n_fake"}
    with pytest.raises(ConfigError, match="one width D"):
        frechet_distance(torch.zeros(10, 3), torch.zeros(10, 4))
    with pytest.raises(ConfigError, match="at least 4"):
        precision_recall(torch.zeros(3, 2), torch.zeros(10, 2))
    with pytest.raises(ConfigError, match="finite"):
        frechet_distance(torch.full((10, 2), math.nan), torch.zeros(10, 2))


def test_mmd_test_rejects_different_gaussians_and_keeps_equal_ones():
    from unsup.metrics import mmd_test

    g = torch.Generator().manual_seed(0)
    same = [mmd_test(torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g), 49, seed=s)[1]
            for s in range(12)]
    # under the null the p-value is uniform: few tests below 0.05, a mean near 1/2
    assert sum(p < 0.05 for p in same) <= 2 and 0.25 < sum(same) / len(same) < 0.75
    stat, p = mmd_test(torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g) + 1.0, 49)
    assert stat > 0 and p == pytest.approx(0.02)  # no permutation reaches it: the smallest p-value
