"""Transformer: a GPT-style causal transformer over the elements of any discrete data.

The data is flattened to ``D`` elements (images in raster order, the channels of a pixel in turn,
as iGPT [1]; vectors and byte/char sequences as they are; :mod:`unsup.models.autoregressive.sequence`) and

    p(x | y) = prod_t softmax(logits_t)[x_t],   logits_t = f(s, x_1, .., x_{t-1}),

computed by a decoder-only transformer [2, 3] over the shifted sequence with a start token ``s``
(a learned vector, or the embedding of the class ``y``: class conditioning), so the first element
is predicted from ``s`` alone. With ``d = d_model``:

    h^0_t = e_t + P_t                           (e_t = s at t = 0, else E[x_{t-1}]; P learned)
    a^l   = h^l + Attn(LN(h^l))                 (multi-head causal self-attention)
    h^l+1 = a^l + W_2 GELU(W_1 LN(a^l))         (MLP of width mlp_ratio * d)
    logits = W_out LN(h^N)                      (L logits per position)

-- GPT-2's pre-LN block [3]; weights are initialised N(0, 0.02) with the residual output
projections scaled by ``1/sqrt(2 N)`` [3].

Attention patterns (``attention``; :func:`~unsup.nn.attention.sparse_attention_mask`):
``full`` (each position sees every earlier one), or the Sparse Transformer's [4] ``strided``
(the last ``l`` positions and every ``l``-th before them) and ``fixed`` (the current block of
``l`` and the last ``c = summary`` positions of every block), masks of the dense attention
combined with causality. ``stride = 0`` picks ``l`` = one image row (``W C`` elements, the
choice of [4] for images) or ``ceil(sqrt(D))`` otherwise.

Sampling. ``sample(fast=True)`` keeps every layer's keys and values in a cache, so each new
element is one query per layer against the cache; ``fast=False`` re-runs the transformer over the
whole prefix for every element. Both draw the same random numbers in the same order, so they
return the same samples for the same seed.

References:
    [1] Chen, Radford, Child, Wu, Jun, Luan, Sutskever. Generative Pretraining from Pixels.
        ICML 2020.
    [2] Vaswani et al. Attention Is All You Need. NeurIPS 2017.
    [3] Radford, Wu, Child, Luan, Amodei, Sutskever. Language Models are Unsupervised Multitask
        Learners (GPT-2). 2019.
    [4] Child, Gray, Radford, Sutskever. Generating Long Sequences with Sparse Transformers.
        arXiv:1904.10509, 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.sequence import SequenceModel, ShiftedEmbedding, StepFn
from unsup.nn.attention import PATTERNS, KVCache, MultiHeadAttention, sparse_attention_mask


@dataclass
class TransformerConfig:
    """Hyper-parameters of :class:`Transformer`.

    Attributes:
        num_layers: transformer blocks ``N``.
        d_model: width ``d`` of the residual stream.
        num_heads: attention heads (must divide ``d_model``).
        mlp_ratio: MLP width as a multiple of ``d_model``.
        dropout: dropout on attention weights and residual branches (training only).
        attention: ``full``, or the Sparse Transformer's ``strided`` or ``fixed`` pattern.
        stride: ``l`` of the sparse patterns (0: one image row, or ceil(sqrt(D)) for non-images).
        summary: ``c``, summary positions per block of the ``fixed`` pattern.
        conditional: condition on the class label (its embedding is the start token).
    """

    num_layers: int = 4
    d_model: int = 128
    num_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    attention: str = "full"
    stride: int = 0
    summary: int = 1
    conditional: bool = False


class Block(nn.Module):
    """Pre-LN transformer block: ``a = h + Attn(LN(h))``, ``a + MLP(LN(a))``."""

    def __init__(self, d: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, heads=heads, dropout=dropout)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(),
                                 nn.Linear(mlp_ratio * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """``(B, T, d) -> (B, T, d)``; ``mask`` None means full causal attention."""
        h = h + self.drop(self.attn(self.ln1(h), mask=mask, causal=mask is None, cache=cache))
        return h + self.drop(self.mlp(self.ln2(h)))


@register(
    "transformer",
    "Transformer: GPT/iGPT-style causal transformer over any discrete data, KV-cache sampler",
    presets={
        # iGPT-S (Chen et al. 2020, Sec. 3.2 / Table 1): L = 24 layers, d = 512 (76M parameters
        # with its 512-colour vocabulary). The paper does not state the head count; 8 heads of
        # 64 dimensions as in GPT-2. iGPT uses dense attention on 32x32 (and smaller) inputs.
        "paper": {"num_layers": 24, "d_model": 512, "num_heads": 8, "mlp_ratio": 4},
        # GPT-2 small (Radford et al. 2019): 12 layers, d = 768, 12 heads.
        "gpt2-small": {"num_layers": 12, "d_model": 768, "num_heads": 12, "mlp_ratio": 4},
    },
)
class Transformer(SequenceModel):
    """Causal transformer over discrete images, vectors or sequences.

    Attributes:
        mask: the boolean ``(D, D)`` attention mask of a sparse pattern, or None (full causal).

    Raises:
        ConfigError: continuous data, ``conditional`` on unlabelled data, unknown attention
            pattern, or invalid sizes.
    """

    Config = TransformerConfig
    mask: torch.Tensor | None

    def __init__(self, spec: DataSpec, config: TransformerConfig | None = None) -> None:
        c = config or TransformerConfig()
        super().__init__(spec, c)
        self.setup_sequence(c.conditional)
        for name in ("num_layers", "d_model", "num_heads", "mlp_ratio"):
            if getattr(c, name) < 1:
                raise ConfigError(f"Transformer {name} must be >= 1, got {getattr(c, name)}")
        if c.d_model % c.num_heads:
            raise ConfigError(f"d_model={c.d_model} must be divisible by num_heads={c.num_heads}")
        if not 0 <= c.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {c.dropout}")
        if c.stride < 0:
            raise ConfigError(f"stride must be >= 0 (0: automatic), got {c.stride}")
        self.stride = c.stride or self.default_stride()
        if c.attention not in PATTERNS:
            raise ConfigError(f"attention must be one of {', '.join(PATTERNS)}, got {c.attention!r}")
        mask = None  # full attention: SDPA's causal mode, no (D, D) matrix
        if c.attention != "full":
            mask = sparse_attention_mask(self.length, c.attention, self.stride, c.summary)
        self.register_buffer("mask", mask, persistent=False)

        d = c.d_model
        self.embed = ShiftedEmbedding(self.levels, d, self.num_classes)
        self.position = nn.Parameter(torch.zeros(self.length, d))
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(d, c.num_heads, c.mlp_ratio, c.dropout) for _ in range(c.num_layers))
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, self.num_logits)
        self._init_weights()

    def default_stride(self) -> int:
        """``l`` for ``stride = 0``: one image row of ``W C`` elements, else ``ceil(sqrt(D))``."""
        if self.spec.kind == "image":
            c, _, w = self.spec.shape
            return w * c
        return max(1, math.ceil(math.sqrt(self.length)))

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() >= 2 or name in ("position", "embed.start"):
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        for block in self.blocks:  # GPT-2: residual projections scaled by 1/sqrt(2N)
            for out in (block.attn.out, block.mlp[2]):
                nn.init.normal_(out.weight, std=0.02 / math.sqrt(2 * len(self.blocks)))

    # ----------------------------------------------------------------------------- forward

    def features(self, e: torch.Tensor) -> torch.Tensor:
        """The transformer on input embeddings ``e`` ``(B, T, d)`` (from :attr:`embed`):
        logits ``(B, T, L)``, row ``t`` depending on ``e[:, :t+1]`` only."""
        t = e.shape[1]
        h = self.drop(e + self.position[:t])
        mask = None if self.mask is None else self.mask[:t, :t]
        for block in self.blocks:
            h = block(h, mask)
        return self.head(self.ln_out(h))

    def logits(self, seq: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, L)`` of ``p(x_t | x_<t, y)`` for a sequence or prefix ``(B, T)``."""
        return self.features(self.embed(seq, y))

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """One position per call from per-layer key/value caches."""
        like = self.position
        caches = [block.attn.new_cache(n, self.length, like) for block in self.blocks]

        def step(prev: torch.Tensor | None, t: int) -> torch.Tensor:
            h = (self.embed.step(prev, n, y) + self.position[t])[:, None]  # (n, 1, d)
            mask = None if self.mask is None else self.mask[t:t + 1, :t + 1]  # (1, t+1)
            for block, cache in zip(self.blocks, caches, strict=True):
                h = block(h, mask, cache)
            return self.head(self.ln_out(h[:, 0]))  # (n, L)

        return step
