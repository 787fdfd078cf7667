"""The contrastive losses against reference computations written out the slow way."""

import math

import pytest
import torch
import torch.nn.functional as F

from unsup.models.representation.contrastive import gather, info_nce, nt_xent, projection_head
from unsup.train import distributed


def reference_nt_xent(z1, z2, tau):
    """SimCLR's loss as a double loop over the 2N views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2, n = len(z), len(z1)
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / denominator)
    return total / n2


def test_nt_xent_equals_the_double_loop_and_is_symmetric_in_the_views():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 3), torch.randn(5, 3)
    for tau in (0.1, 0.5, 2.0):
        loss, _ = nt_xent(z1, z2, tau)
        assert loss.item() == pytest.approx(reference_nt_xent(z1, z2, tau), rel=1e-5)
        assert nt_xent(z2, z1, tau)[0].item() == pytest.approx(loss.item(), rel=1e-6)


def test_nt_xent_is_zero_for_matching_orthogonal_views_and_log_2n_minus_1_for_identical_ones():
    z = torch.eye(4)
    loss, accuracy = nt_xent(z, z, 0.01)
    assert loss.item() < 1e-6 and accuracy.item() == 1.0
    same = torch.ones(4, 2)  # every view alike: chance among 2N - 1 candidates
    assert nt_xent(same, same, 0.5)[0].item() == pytest.approx(math.log(7), rel=1e-6)


def test_info_nce_puts_the_positive_in_column_0_for_shared_and_per_query_negatives():
    torch.manual_seed(1)
    q, k = F.normalize(torch.randn(3, 4), dim=1), F.normalize(torch.randn(3, 4), dim=1)
    negatives = F.normalize(torch.randn(5, 4), dim=1)
    logits, labels = info_nce(q, k, negatives, 0.2)
    assert logits.shape == (3, 6) and labels.tolist() == [0, 0, 0]
    for b in range(3):
        assert logits[b, 0].item() == pytest.approx(float(q[b] @ k[b]) / 0.2, rel=1e-5)
        for j in range(5):
            assert logits[b, 1 + j].item() == pytest.approx(float(q[b] @ negatives[j]) / 0.2, rel=1e-5)
    per_query = negatives.expand(3, 5, 4)
    torch.testing.assert_close(info_nce(q, k, per_query, 0.2)[0], logits)
    # the loss is log(1 + K) when every key is equally similar: the bound's zero point
    assert F.cross_entropy(*info_nce(q[:1], q[:1], q[:1].expand(7, 4), 1.0)).item() == pytest.approx(
        math.log(8), rel=1e-6)


def test_gather_in_one_process_is_the_tensor_itself():
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.current().world_size == 1
    assert gather(x) is x
    assert not gather(x, grad=False).requires_grad


@pytest.mark.parametrize("kind, out", [("mlp", 7), ("linear", 7), ("none", 10)])
def test_projection_heads(kind, out):
    head = projection_head(10, kind, 16, 7)
    assert head(torch.randn(4, 10)).shape == (4, out)
