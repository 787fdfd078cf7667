"""MMD with Gaussian kernels against its closed form for Gaussians."""

import math

import pytest
import torch

from unsup.nn.mmd import median_bandwidths, mmd2


def closed_form(m1: float, m2: float, v: float, s: float) -> float:
    """MMD^2 of N(m1, v) and N(m2, v) in 1-D under exp(-d^2 / (2 s^2))."""
    a = s**2 + 2 * v
    return 2 * s / math.sqrt(a) * (1 - math.exp(-((m1 - m2) ** 2) / (2 * a)))


@pytest.mark.parametrize("shift, s", [(0.0, 1.0), (0.5, 1.0), (2.0, 0.5), (1.0, 3.0)])
def test_unbiased_estimate_matches_the_closed_form_for_gaussians(shift, s):
    g = torch.Generator().manual_seed(0)
    estimates = [float(mmd2(torch.randn(600, 1, generator=g), shift + torch.randn(600, 1, generator=g), [s]))
                 for _ in range(20)]
    mean = sum(estimates) / len(estimates)
    se = torch.tensor(estimates).std().item() / math.sqrt(len(estimates))
    assert abs(mean - closed_form(0.0, shift, 1.0, s)) < 4 * se + 1e-3


def test_a_sum_of_kernels_sums_their_discrepancies_and_same_sample_is_about_zero():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g) + 0.3
    torch.testing.assert_close(mmd2(x, y, [0.5, 2.0]), mmd2(x, y, [0.5]) + mmd2(x, y, [2.0]))
    same = mmd2(torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g), [1.0])
    assert abs(float(same)) < 0.01  # unbiased: can be slightly negative


def test_median_bandwidths_scale_with_the_data_and_gradients_are_finite():
    x = torch.randn(50, 4)
    b1, b10 = median_bandwidths(x, x + 1), median_bandwidths(10 * x, 10 * x + 10)
    torch.testing.assert_close(b10, 10 * b1)
    y = x.clone().requires_grad_(True)
    mmd2(x, y).backward()  # equal points (distance 0) included
    assert torch.isfinite(y.grad).all()


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        mmd2(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="one size"):
        mmd2(torch.zeros(3, 2), torch.zeros(3, 4))
