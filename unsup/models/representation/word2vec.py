"""word2vec: skip-gram and CBOW with negative sampling (Mikolov et al. 2013).

Every word ``w`` of a vocabulary of ``V`` has an input vector ``v_w`` and an output vector ``u_w``
(``--dim`` D). Each training example is a window of ``2R + 1`` words (``R`` = the data's
``window``, see :mod:`unsup.data.words`) around a centre word ``c``:

* **skip-gram** [1] predicts each context word ``o`` from the centre; negative sampling [2]
  replaces the softmax over ``V`` words by ``k`` (``--negatives``) binary classifications against
  noise words ``n_j`` drawn from the unigram distribution raised to 3/4, ``P_n(w) ~ count(w)^0.75``:

      l(c, o) = -log sigmoid(u_o . v_c) - sum_{j=1..k} log sigmoid(-u_{n_j} . v_c);

* **CBOW** [1] predicts the centre from the mean of its context's input vectors,
  ``h = mean_o v_o``: ``l = -log sigmoid(u_c . h) - sum_j log sigmoid(-u_{n_j} . h)``.

Two details of [1, 2] that matter for quality are applied to every training window:

* **subsampling of frequent words**: each occurrence of ``w`` is kept with probability
  ``min(1, sqrt(t / f(w)))`` (``f`` its relative frequency, ``t`` = ``--subsample``, 1e-3 here;
  0 disables it), so that "the" and "and" stop dominating the pairs and rare words get more
  updates. (Discarded words are masked inside the fixed window rather than deleted from the stream
  first, so a window never reaches past ``R`` positions of the original text.)
* **dynamic windows**: for each centre a size ``b ~ U{1..R}`` is drawn and only context within
  ``b`` positions is used, which weights near words more.

The loss is the mean of ``l`` over the kept (centre, context) pairs (skip-gram) or kept centres
(CBOW). Validation uses every pair of the full window (no subsampling), so it estimates the
objective on held-out text. The embeddings are the input vectors; :meth:`Word2Vec.neighbours` and
:meth:`Word2Vec.analogy` answer queries by cosine similarity (``unsup words RUN``), and
:func:`write_vectors` exports them in word2vec's text format.

References:
    [1] Mikolov, Chen, Corrado, Dean. Efficient Estimation of Word Representations in Vector Space.
        ICLR workshop 2013.
    [2] Mikolov, Sutskever, Chen, Corrado, Dean. Distributed Representations of Words and Phrases
        and their Compositionality. NeurIPS 2013.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import Dataset, DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Model

ARCHS = ("skipgram", "cbow")


@dataclass
class Word2VecConfig:
    """Hyper-parameters of :class:`Word2Vec`.

    Attributes:
        arch: skipgram (predict the context from the centre) or cbow (the centre from the context).
        dim: D, the size of the word vectors.
        negatives: k, noise words per positive pair.
        subsample: t of frequent-word subsampling (0: keep every word).
        dynamic_window: draw the window size per centre uniformly in 1..R.
    """

    arch: str = "skipgram"
    dim: int = 100
    negatives: int = 5
    subsample: float = 1e-3
    dynamic_window: bool = True


@register("word2vec", "word2vec: skip-gram or CBOW word vectors with negative sampling and "
          "subsampling of frequent words (data: bible-words, words:PATH)",
          presets={"paper": {"dim": 300, "negatives": 5, "subsample": 1e-5}})
class Word2Vec(Model):
    """Input and output word vectors trained on windows of word indices.

    Raises:
        ConfigError: data that are not odd-length windows of words, or bad options.
    """

    embeds_words = True

    Config = Word2VecConfig

    def __init__(self, spec: DataSpec, config: Word2VecConfig) -> None:
        super().__init__(spec, config)
        self.require(levels=True, kinds=("sequence",))
        if spec.shape[0] < 3 or spec.shape[0] % 2 == 0:
            raise ConfigError(f"word2vec expects windows of 2R + 1 >= 3 words, got length {spec.shape[0]}")
        if config.arch not in ARCHS:
            raise ConfigError(f"word2vec arch must be skipgram or cbow, got {config.arch!r}")
        if config.dim < 1 or config.negatives < 1 or config.subsample < 0:
            raise ConfigError(f"word2vec needs dim >= 1, negatives >= 1 and subsample >= 0, got "
                              f"{config.dim}, {config.negatives}, {config.subsample}")
        V, D = spec.levels, config.dim
        self.R = spec.shape[0] // 2
        self.v = nn.Embedding(V, D)  # input vectors: the embeddings
        self.u = nn.Embedding(V, D)  # output vectors
        nn.init.uniform_(self.v.weight, -0.5 / D, 0.5 / D)  # as the reference code
        nn.init.zeros_(self.u.weight)
        # training counts of the words (set from the training data by prepare())
        self.register_buffer("counts", torch.ones(V))

    def prepare(self, data: Dataset) -> None:
        """Take the word counts of the training data (``data.counts``), which subsampling and the
        noise distribution need; called by ``unsup.create(name, data=TRAIN)``."""
        counts = getattr(data, "counts", None)
        if counts is None or len(counts) != self.spec.levels:
            raise ConfigError("word2vec needs word counts from its data (a words dataset: "
                              "bible-words or words:PATH)")
        self.counts.copy_(torch.as_tensor(counts, dtype=torch.float))

    def keep_probability(self) -> torch.Tensor:
        """``min(1, sqrt(t / f(w)))`` for every word, ``(V,)`` (all ones when ``t = 0``)."""
        if self.config.subsample == 0:
            return torch.ones_like(self.counts)
        f = self.counts / self.counts.sum()
        return (self.config.subsample / f).sqrt().clamp(max=1.0)

    def noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Noise words drawn from ``P_n(w) ~ count(w)^0.75``, of the given shape."""
        p = self.counts.pow(0.75)
        return torch.multinomial(p, math.prod(shape), replacement=True).view(shape)

    def context_mask(self, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Which centres and which context positions take part, ``(B,)`` and ``(B, 2R)`` bools."""
        B, R = len(x), self.R
        offsets = torch.cat([torch.arange(-R, 0), torch.arange(1, R + 1)]).to(x.device).abs()  # (2R,)
        context = torch.cat([x[:, :R], x[:, R + 1:]], 1)  # (B, 2R)
        if not train:
            everything = torch.ones_like(context, dtype=torch.bool)
            return everything[:, 0], everything
        keep = self.keep_probability()
        centre_kept = torch.rand(B, device=x.device) < keep[x[:, R]]
        mask = torch.rand(context.shape, device=x.device) < keep[context]
        if self.config.dynamic_window:
            b = torch.randint(1, R + 1, (B, 1), device=x.device)
            mask &= offsets[None] <= b
        return centre_kept, mask

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        self.check_input(x)
        x = x.to(self.device).long()
        R, k = self.R, self.config.negatives
        centre = x[:, R]  # (B,)
        context = torch.cat([x[:, :R], x[:, R + 1:]], 1)  # (B, 2R)
        centre_kept, mask = self.context_mask(x, self.training and torch.is_grad_enabled())
        if self.config.arch == "skipgram":
            h = self.v(centre)[:, None, :]  # (B, 1, D)
            positive = self.u(context)  # (B, 2R, D)
            noise = self.u(self.noise((len(x), 2 * R, k)))  # (B, 2R, k, D)
            weight = (mask & centre_kept[:, None]).float()  # (B, 2R): the kept pairs
            pos = F.logsigmoid((positive * h).sum(-1))  # (B, 2R)
            neg = F.logsigmoid(-(noise * h[:, :, None, :]).sum(-1)).sum(-1)  # (B, 2R)
        else:
            m = mask.float()
            h = (self.v(context) * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)  # (B, D)
            pos = F.logsigmoid((self.u(centre) * h).sum(-1))  # (B,)
            neg = F.logsigmoid(-(self.u(self.noise((len(x), k))) * h[:, None]).sum(-1)).sum(-1)  # (B,)
            weight = (centre_kept & mask.any(1)).float()  # (B,): centres with some context
        n = weight.sum()
        loss = -((pos + neg) * weight).sum() / n.clamp(min=1)
        return {"loss": loss, "pairs": n}

    # --- queries ---------------------------------------------------------------------------
    def vectors(self) -> torch.Tensor:
        """The word vectors (input vectors), L2-normalised, ``(V, D)``."""
        return F.normalize(self.v.weight.detach(), dim=1)

    @torch.no_grad()
    def nearest(self, query: torch.Tensor, k: int, exclude: list[int] = ()) -> list[tuple[int, float]]:
        """The ``k`` words of highest cosine similarity to vector ``query`` ``(D,)``, as
        ``(index, similarity)``, without the indices in ``exclude``."""
        sims = self.vectors() @ F.normalize(query, dim=0)
        if exclude:
            sims[list(exclude)] = -float("inf")
        top = sims.topk(min(k, len(sims) - len(exclude)))
        return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))

    def export(self, vocab: list[str], path: str | Path) -> None:
        """Write the vectors in word2vec's text format (:func:`write_vectors`)."""
        write_vectors(self, vocab, path)

    def neighbours(self, word: int, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` nearest words to ``word`` (itself excluded)."""
        return self.nearest(self.vectors()[word], k, [word])

    def analogy(self, a: int, b: int, c: int, k: int = 5) -> list[tuple[int, float]]:
        """``a : b :: c : ?`` by 3CosAdd: the words nearest ``b - a + c`` (normalised vectors),
        the three query words excluded."""
        w = self.vectors()
        return self.nearest(w[b] - w[a] + w[c], k, [a, b, c])


def write_vectors(model: Word2Vec, vocab: list[str], path: str | Path) -> None:
    """The word vectors in word2vec's text format: a ``V D`` header, then ``word x1 .. xD`` lines
    (readable by gensim's ``KeyedVectors.load_word2vec_format``)."""
    w = model.v.weight.detach().cpu()
    if len(vocab) != len(w):
        raise ConfigError(f"{len(vocab)} words for {len(w)} vectors")
    lines = [f"{len(w)} {w.shape[1]}"]
    lines += [word + " " + " ".join(f"{x:.6g}" for x in row.tolist())
              for word, row in zip(vocab, w, strict=True)]
    Path(path).write_text("\n".join(lines) + "\n")
