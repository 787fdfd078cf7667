"""Attention: sparse patterns are causal, have the published structure and connect in two layers;
the key/value cache gives the full computation."""

import itertools

import pytest
import torch

from unsup.errors import ConfigError
from unsup.nn.attention import KVCache, MultiHeadAttention, sparse_attention_mask

CASES = [("full", 1, 1), ("strided", 3, 1), ("strided", 4, 1), ("strided", 1, 1),
         ("fixed", 4, 1), ("fixed", 4, 2), ("fixed", 5, 5), ("fixed", 1, 1)]


@pytest.mark.parametrize("pattern,stride,summary", CASES)
@pytest.mark.parametrize("length", [1, 7, 24])
def test_masks_are_causal_and_see_the_current_position(pattern, stride, summary, length):
    m = sparse_attention_mask(length, pattern, stride, summary)
    assert m.shape == (length, length) and m.dtype == torch.bool
    assert not m.triu(1).any()  # no position attends to a later one
    assert m.diagonal().all()


def test_strided_is_the_last_l_positions_and_every_lth():
    stride, length = 4, 20
    m = sparse_attention_mask(length, "strided", stride)
    for i, j in itertools.product(range(length), repeat=2):
        expected = j <= i and (i - j <= stride or (i - j) % stride == 0)
        assert m[i, j].item() == expected, (i, j)
    # e.g. position 13 with l = 4: 9..13 locally and 1, 5 (every 4th back)
    assert torch.nonzero(m[13]).flatten().tolist() == [1, 5, 9, 10, 11, 12, 13]


@pytest.mark.parametrize("summary", [1, 2])
def test_fixed_is_the_block_so_far_and_the_last_c_of_every_block(summary):
    block, length = 4, 14
    m = sparse_attention_mask(length, "fixed", block, summary)
    for i, j in itertools.product(range(length), repeat=2):
        expected = j <= i and (j // block == i // block or j % block >= block - summary)
        assert m[i, j].item() == expected, (i, j)
    row = torch.nonzero(m[10]).flatten().tolist()  # block 8..11, summaries of blocks 0 and 1
    assert row == ([3, 7, 8, 9, 10] if summary == 1 else [2, 3, 6, 7, 8, 9, 10])


@pytest.mark.parametrize("pattern,stride,summary", CASES)
def test_two_layers_connect_every_earlier_position(pattern, stride, summary):
    """Factorised attention: (M @ M)[i, j] > 0 for all j <= i, though M itself is sparse."""
    length = 40
    m = sparse_attention_mask(length, pattern, stride, summary).float()
    two = (m @ m) > 0
    assert torch.equal(two, torch.ones(length, length, dtype=torch.bool).tril())
    if pattern != "full" and 1 < stride and summary < stride:
        assert (m.sum(1) < torch.arange(1, length + 1)).any()  # one layer is not enough


def test_mask_errors():
    with pytest.raises(ConfigError, match="attention must be"):
        sparse_attention_mask(4, "local")
    with pytest.raises(ConfigError, match="stride"):
        sparse_attention_mask(4, "strided", 0)
    with pytest.raises(ConfigError, match="summary"):
        sparse_attention_mask(4, "fixed", 2, 3)
    with pytest.raises(ConfigError, match="divisible"):
        MultiHeadAttention(6, heads=4)


@pytest.mark.parametrize("pattern", ["full", "strided", "fixed"])
def test_cache_one_position_at_a_time_equals_the_full_pass(pattern):
    torch.manual_seed(0)
    b, t, d = 2, 9, 8
    attn = MultiHeadAttention(d, heads=2).double()
    x = torch.randn(b, t, d, dtype=torch.float64)
    mask = None if pattern == "full" else sparse_attention_mask(t, pattern, 3)
    full = attn(x, mask=mask, causal=mask is None)
    cache = attn.new_cache(b, t, x)
    steps = [attn(x[:, i:i + 1], mask=None if mask is None else mask[i:i + 1, :i + 1],
                  causal=True, cache=cache) for i in range(t)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-12)
    # several new positions at once (causal within them) also match
    cache = attn.new_cache(b, t, x)
    first = attn(x[:, :4], causal=True, cache=cache)
    rest = attn(x[:, 4:], causal=True, cache=cache)
    if pattern == "full":
        assert torch.allclose(torch.cat([first, rest], 1), full, atol=1e-12)


def test_kv_cache_refuses_to_overflow():
    cache = KVCache(1, 1, 2, 3, 3, torch.zeros(1))
    k = torch.zeros(1, 1, 2, 3)
    keys, _ = cache.append(k, k)
    assert keys.shape == (1, 1, 2, 3) and cache.length == 2
    with pytest.raises(ValueError, match="full"):
        cache.append(k[:, :, :1], k[:, :, :1])
