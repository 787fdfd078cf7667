"""Causal self-attention: multi-head attention, a key/value cache, sparse attention patterns.

Scaled dot-product attention of ``h`` heads [1]: queries ``Q = X_q W_Q``, keys ``K = X_c W_K``,
values ``V = X_c W_V`` of a query sequence ``X_q`` and a context ``X_c`` (the same sequence in
self-attention), per head

    Attend(Q, K, V)_i = sum_{j in A_i} softmax_j(q_i . k_j / sqrt(d_k)) v_j,

where ``A_i`` is the set of positions that ``i`` may attend to. An autoregressive model needs
``A_i`` within ``{0 .. i}``: the output at ``i`` then depends on inputs ``<= i`` only.

Attention patterns (:func:`sparse_attention_mask`, a boolean ``(T, T)`` matrix with ``M[i, j]``
true iff ``j in A_i``):

* ``full``: ``A_i = {0 .. i}``, the causal mask of GPT [2];
* ``strided`` with stride ``l`` (Sparse Transformer [3], Sec. 4.2-4.3): the union of
  ``A^(1)_i = {max(0, i - l) .. i}`` (the last ``l`` positions and ``i``) and
  ``A^(2)_i = {j <= i : (i - j) mod l = 0}`` (every ``l``-th position back). For an image whose
  rows are ``l`` elements long, these are the row so far and the column above;
* ``fixed`` with block length ``l`` and ``c`` summary positions [3]: the union of
  ``A^(1)_i = {j <= i : floor(j / l) = floor(i / l)}`` (the block so far) and
  ``A^(2)_i = {j <= i : j mod l >= l - c}`` (the last ``c`` positions of every block).

We use the "merged" form of [3]: each head attends to the union of both sets in every layer, so
any two layers connect every position to every earlier one (for ``strided``: ``i`` reaches
``k = i - ml``, the nearest such position at or after ``j``, which reaches ``j`` locally; for
``fixed``: ``i`` reaches the summary at the end of ``j``'s block, which sees the whole block).
Masks here are dense boolean matrices: they give the Sparse Transformer's connectivity and
its inductive bias, not its ``O(T sqrt T)`` cost, which needs block-sparse kernels.

Sampling one position at a time, the keys and values of earlier positions never change: a
:class:`KVCache` keeps them, so each new position costs one query against the cache instead of
a pass over the whole prefix (the "KV cache" of GPT implementations).

References:
    [1] Vaswani et al. Attention Is All You Need. NeurIPS 2017.
    [2] Radford, Wu, Child, Luan, Amodei, Sutskever. Language Models are Unsupervised Multitask
        Learners (GPT-2). 2019.
    [3] Child, Gray, Radford, Sutskever. Generating Long Sequences with Sparse Transformers.
        arXiv:1904.10509, 2019.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from unsup.errors import ConfigError

PATTERNS = ("full", "strided", "fixed")


def sparse_attention_mask(length: int, pattern: str = "full", stride: int = 1,
                          summary: int = 1) -> torch.Tensor:
    """The boolean ``(T, T)`` attention mask of a causal pattern (see the module docstring).

    Args:
        length: sequence length ``T``.
        pattern: ``"full"``, ``"strided"`` or ``"fixed"``.
        stride: ``l``, the stride (``strided``) or block length (``fixed``); ignored by ``full``.
        summary: ``c``, the summary positions at the end of each block (``fixed`` only),
            ``1 <= c <= l``.

    Returns:
        ``M`` with ``M[i, j]`` True iff position ``i`` may attend to position ``j``; always
        ``M[i, i]`` and never ``j > i``.

    Raises:
        ConfigError: unknown pattern, or ``stride`` / ``summary`` out of range.
    """
    if pattern not in PATTERNS:
        raise ConfigError(f"attention must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if pattern != "full" and stride < 1:
        raise ConfigError(f"{pattern} attention needs a stride >= 1, got {stride}")
    if pattern == "fixed" and not 1 <= summary <= stride:
        raise ConfigError(f"fixed attention needs 1 <= summary <= stride={stride}, got {summary}")
    i = torch.arange(length)[:, None]  # (T, 1): query positions
    j = torch.arange(length)[None, :]  # (1, T): key positions
    causal = j <= i
    if pattern == "full":
        return causal
    if pattern == "strided":
        local = i - j <= stride
        strided = (i - j) % stride == 0
        return causal & (local | strided)
    same_block = j // stride == i // stride
    summaries = j % stride >= stride - summary
    return causal & (same_block | summaries)


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    Args:
        batch: batch size ``B``.
        heads: number of heads ``h``.
        max_length: the most positions the cache will hold.
        key_dim: per-head key size.
        value_dim: per-head value size.
        like: a tensor whose dtype and device the buffers take.
    """

    def __init__(self, batch: int, heads: int, max_length: int, key_dim: int, value_dim: int,
                 like: torch.Tensor) -> None:
        self.k = like.new_zeros(batch, heads, max_length, key_dim)
        self.v = like.new_zeros(batch, heads, max_length, value_dim)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` of shape ``(B, h, t, d)`` after the cached positions and return all
        keys and values so far, ``(B, h, length, d)``."""
        t = k.shape[2]
        end = self.length + t
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache of {self.k.shape[2]} positions is full")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class MultiHeadAttention(nn.Module):
    """Multi-head attention of a query sequence over a context sequence.

    Args:
        query_dim: feature size of the queries' input.
        context_dim: feature size of the context (default ``query_dim``: self-attention).
        heads: number of heads ``h``.
        key_dim: total key/query size over all heads (default ``query_dim``).
        value_dim: total value size over all heads (default ``key_dim``).
        out_dim: output size (default ``query_dim``).
        dropout: dropout on the attention weights (training only).
    """

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 1,
                 key_dim: int | None = None, value_dim: int | None = None,
                 out_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        context_dim = context_dim or query_dim
        key_dim = key_dim or query_dim
        value_dim = value_dim or key_dim
        if key_dim % heads or value_dim % heads:
            raise ConfigError(f"key size {key_dim} and value size {value_dim} must be divisible "
                              f"by the number of heads {heads}")
        self.heads, self.key_dim, self.value_dim, self.dropout = heads, key_dim, value_dim, dropout
        self.query = nn.Linear(query_dim, key_dim)
        self.key_value = nn.Linear(context_dim, key_dim + value_dim)
        self.out = nn.Linear(value_dim, out_dim or query_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, h, T, d/h)

    def new_cache(self, batch: int, max_length: int, like: torch.Tensor) -> KVCache:
        """An empty :class:`KVCache` for this layer."""
        return KVCache(batch, self.heads, max_length, self.key_dim // self.heads,
                       self.value_dim // self.heads, like)

    def forward(self, query: torch.Tensor, context: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, causal: bool = False,
                cache: KVCache | None = None) -> torch.Tensor:
        """Attend from ``query`` ``(B, Tq, query_dim)`` to ``context`` ``(B, Tc, context_dim)``.

        Args:
            query: query inputs.
            context: context inputs (default: ``query``).
            mask: boolean ``(Tq, Tk)``, True where attending is allowed; ``Tk`` counts the
                cached positions too.
            causal: without a mask, query ``i`` sees keys ``j <= i`` (``Tq == Tk``).
            cache: append this call's keys and values to the cache and attend over all of them
                (one new position per call when sampling; then ``causal`` needs no mask).

        Returns:
            ``(B, Tq, out_dim)``.
        """
        context = query if context is None else context
        q = self._split(self.query(query))  # (B, h, Tq, dk)
        k, v = self.key_value(context).split([self.key_dim, self.value_dim], dim=-1)
        k, v = self._split(k), self._split(v)  # (B, h, Tc, dk), (B, h, Tc, dv)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, h, Tk, .)
            causal = causal and mask is None and q.shape[2] > 1
            if causal:  # several new queries at once: the newest Tq of the Tk positions
                tk, tq = k.shape[2], q.shape[2]
                mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(tk - tq)
                causal = False
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0,
            scale=1.0 / math.sqrt(self.key_dim // self.heads))  # (B, h, Tq, dv)
        b, _, tq, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, tq, self.value_dim))  # (B, Tq, out)
