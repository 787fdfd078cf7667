r"""Bits-back coding with ANS for latent-variable models (BB-ANS [1]).

A VAE gives no tractable ``p(x)``, only ``p(x | z) p(z)`` and an encoder ``q(z | x)``. Coding ``z``
with ``p(z)`` and then ``x`` with ``p(x | z)`` costs ``-log p(x | z) - log p(z)``: more than ``-log p(x)``
by the information in ``z``. Bits-back coding [1] gets that information back. On a stack (ANS)
coder that already holds some bits, the encoder of one example

1. *decodes* ``z`` from the stack under ``q(z | x)``: ``z`` is a draw from ``q`` paid for with
   ``-log q(z | x)`` bits taken off the stack;
2. encodes ``x`` under ``p(x | z)``;
3. encodes ``z`` under ``p(z)``.

Net cost: ``-log p(x | z) - log p(z) + log q(z | x)``, whose mean over ``z ~ q`` is the negative ELBO.
The decoder runs the inverse steps in reverse order: it decodes ``z`` under ``p(z)``, ``x`` under
``p(x | z)``, and then *encodes* ``z`` under ``q(z | x)``, which puts back exactly the bits step 1
took. Because the stack is last-in first-out, examples are decoded in the reverse order of
encoding.

**Hierarchies.** Latent levels inferred top-down (``q(z2 | x) q(z1 | z2, x)``, the default
:class:`~unsup.models.latent.hvae.HVAE`) are decoded from ``q`` level after level, and encoded
under ``p(z2) p(z1 | z2)`` lowest level first, so the decoder meets ``z2`` first: every level of the
first chunk is paid by initial bits. Levels inferred bottom-up as a Markov chain
(``q(z1 | x) q(z2 | z1)``, ``hvae --inference bottom-up``) are coded in Bit-Swap's order [2]:

    decode z1 under q(z1 | x);  encode x under p(x | z1);
    decode z2 under q(z2 | z1); encode z1 under p(z1 | z2);   (and so on up the chain)
    encode the top level under p.

Each level is drawn with the bits that the level below just wrote, so only the first level of
the first chunk needs initial bits.

**Discretisation.** ANS codes integers. Each latent coordinate is put on a grid
``z = m + s k delta``, ``k = -K..K`` (``delta = 2^-bin_bits``, ``K delta = range``) in the
coordinates of its prior ``p(z_i | levels above) = N(m, s^2)``, known to both sides when the level
is drawn: the prior becomes ``N(0, 1)`` on the grid and ``q`` the Gaussian of
``(z - m) / s``, both the leaky quantised Gaussians of the ``constriction`` library (the mass of
each bin ``[k - 1/2, k + 1/2] delta``, every bin given at least the smallest representable
probability, fixed-point with 24 bits). Since the bits taken under ``q`` and those spent under
``p`` both scale with the bin, it cancels in the net cost to first order, which stays
``-log p(x | z) - log p(z) + log q(z | x)`` at the grid point. The decoder sees the grid point. A
grid in the prior's coordinates follows a conditional prior ``p(z1 | z2)`` however narrow it is
(a fixed grid wider than ``s`` would cost bits through a worse ``p(x | z1)``). Bit-Swap draws ``z1``
before ``z2``, when ``p(z1 | z2)`` is not yet known: its grids are in absolute coordinates
(``m = 0``, ``s = 1``), over twice the range. Every grid point carries at least the smallest
probability, so a draw from ``q`` lands on a far point now and then (with 2,049 points, 1.2e-4 of
the time per coordinate), and ``p(x | z)`` pays for that outlier: the grids are kept as coarse as
the measurements allow (``docs/codec.md``).

**Initial bits.** Step 1 of the first chunk needs bits on the stack before any were written.
The stack starts with ``initial_words`` 32-bit words from a fixed-seed generator, enough for the
entropy of the first chunk's latents (``log2(2K + 1)`` bits per coordinate at most); they stay in
the stream and are what the decoder finds left at the end (checked). They cost ``32 *
initial_words`` bits once, which amortise over the examples: reported apart as ``initial_bits``.

**Determinism.** Encoder and decoder compute every distribution from the same tensors: ``x`` and
the grid points, in the same chunks of examples, so on the same device type and thread count the
network outputs agree bit for bit; the float64 parameters are then quantised by ``constriction``
deterministically. A decoded checksum (:mod:`unsup.codec.stream`) catches a decoder that still
computed otherwise.

References:
    [1] J. Townsend, T. Bird, D. Barber. Practical lossless compression with latent variables using
        bits back coding. ICLR 2019.
    [2] F. Kingma, P. Abbeel, J. Ho. Bit-Swap: recursive bits-back coding for lossless compression
        with hierarchical latent variables. ICML 2019.
    [3] R. Bamler. Understanding entropy coding with asymmetric numeral systems (ANS): a
        statistician's perspective. arXiv:2201.01741, 2022 (the ``constriction`` library).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import constriction
import numpy as np
import torch

from unsup.codec.autoregressive import Done, probabilities
from unsup.errors import ConfigError, DataError
from unsup.models import Model

Frame = tuple[torch.Tensor, torch.Tensor] | None  # (mean, log sd): the coordinates of a level's grid
SEED = 20190501  # of the initial words: any fixed value, the decoder checks what is left


@dataclass
class Grid:
    """The latents' grid: ``z = k * 2^-bin_bits`` for integers ``|k| <= range * 2^bin_bits``."""

    bin_bits: int = 6
    range: float = 8.0

    @classmethod
    def for_model(cls, model: Model) -> Grid:
        """The default grid: +-8 prior standard deviations (top-down coding, grids in the prior's
        coordinates), +-16 in absolute units for Bit-Swap (module docstring); bins of 1/64."""
        return cls(range=16.0) if model.inference == "bottom-up" else cls()

    @property
    def delta(self) -> float:
        return 2.0 ** -self.bin_bits

    @property
    def k(self) -> int:
        return int(round(self.range / self.delta))

    def family(self):
        return constriction.stream.model.QuantizedGaussian(-self.k, self.k)

    def params(self, mu: torch.Tensor, log_s: torch.Tensor, frame: Frame = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """A level's Gaussian in grid units, float64 and flat, means clipped into the grid; in
        the coordinates ``(z - m) / s`` of ``frame = (m, log s)`` if given."""
        mu, log_s = mu.detach().double(), log_s.detach().double()
        if frame is not None:
            m, log_f = frame[0].detach().double(), frame[1].detach().double()
            mu, log_s = (mu - m) * torch.exp(-log_f), log_s - log_f
        mean = (mu / self.delta).clamp(-self.k, self.k)
        std = torch.exp(log_s) / self.delta
        return mean.reshape(-1).cpu().numpy(), std.reshape(-1).cpu().numpy()

    def standard(self, like: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``N(0, 1)`` in grid units for every element of ``like``: a prior in its own frame."""
        n = like.numel()
        return np.zeros(n), np.full(n, 1.0 / self.delta)

    def point(self, k: np.ndarray, like: torch.Tensor, frame: Frame = None) -> torch.Tensor:
        """Grid points of the integers ``k`` (in ``frame``'s coordinates if given), shaped and
        placed like ``like``."""
        u = torch.from_numpy(k.astype(np.float64)).to(like.device).view(like.shape) * self.delta
        if frame is not None:
            u = frame[0].detach().double() + torch.exp(frame[1].detach().double()) * u
        return u.to(like.dtype)

    def initial_words(self, model: Model, chunk: int) -> int:
        """Words enough for the entropy of the latents that one chunk draws before it has written
        anything (all levels; bottom-up inference: the lowest), plus two."""
        levels = model.latent_levels()
        drawn_first = levels[-1] if model.inference == "bottom-up" and len(levels) > 1 else sum(levels)
        bits = chunk * drawn_first * np.log2(2 * self.k + 1)
        return int(np.ceil(bits / 32)) + 2

    def to_dict(self) -> dict:
        return asdict(self)


def check_codable(model: Model, name: str) -> None:
    """Raises ConfigError unless ``model`` can be coded by bits-back: Gaussian latent levels
    (``Model.bits_back``) and a decoder over discrete levels."""
    if not model.bits_back:
        raise ConfigError(f"{name} cannot be coded by bits-back: `unsup compress` codes the VAEs with "
                          f"Gaussian latents (vae, iwae, hvae) this way")
    if model.spec.levels is None:
        raise ConfigError(f"{name} models continuous data: lossless coding needs discrete levels")


def _initial(n: int) -> np.ndarray:
    """``n`` words from the fixed-seed generator; the last nonzero (a stack's top word never is 0)."""
    words = np.random.default_rng(SEED).integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    words[-1] |= np.uint32(1)
    return words


def _chunks(count: int, chunk: int) -> list[slice]:
    return [slice(s, min(s + chunk, count)) for s in range(0, count, chunk)]


def encode(model: Model, x: torch.Tensor, chunk: int, grid: Grid, done: Done = None
           ) -> tuple[np.ndarray, int]:
    """Bits-back code ``x`` ``(n, *spec.shape)`` (levels) in chunks of ``chunk``: the stack's
    32-bit words and the number of initial words among them (module docstring). Call within
    :func:`~unsup.codec.autoregressive.computing_as`."""
    model.eval()
    n_init = grid.initial_words(model, chunk)
    coder = constriction.stream.stack.AnsCoder(_initial(n_init))
    gauss, categorical = grid.family(), constriction.stream.model.Categorical(perfect=False)
    for part in _chunks(len(x), chunk):
        xb = x[part].to(model.device).long()
        symbols = xb.reshape(-1).cpu().numpy().astype(np.int32)
        if model.inference == "bottom-up":
            _encode_bit_swap(model, coder, xb, symbols, grid)
            if done is not None:
                done(len(xb))
            continue
        drawn, ks = [], []
        for _ in model.latent_levels():  # 1. z ~ q(z | x), taken off the stack, on p's grid
            frame = model.prior_level(drawn, len(xb))
            mu, log_s = model.posterior_level(xb, drawn)
            ks.append(coder.decode(gauss, *grid.params(mu, log_s, frame)))
            drawn.append(grid.point(ks[-1], mu, frame))
        table = model.decoder_table(drawn)  # 2. x under p(x | z)
        coder.encode_reverse(symbols, categorical, probabilities(table))
        for i in reversed(range(len(ks))):  # 3. z under p(z), lowest level first
            coder.encode_reverse(ks[i], gauss, *grid.standard(drawn[i]))
        if done is not None:
            done(len(xb))
    return coder.get_compressed(), n_init


def _encode_bit_swap(model: Model, coder, xb: torch.Tensor, symbols: np.ndarray, grid: Grid) -> None:
    """One chunk in Bit-Swap's order (module docstring); ``post`` holds the levels bottom-up."""
    gauss, categorical = grid.family(), constriction.stream.model.Categorical(perfect=False)
    levels = len(model.latent_levels())
    mu, log_s = model.posterior_level(xb, [])
    ks = [coder.decode(gauss, *grid.params(mu, log_s))]  # z1 ~ q(z1 | x)
    post = [grid.point(ks[0], mu)]
    coder.encode_reverse(symbols, categorical, probabilities(model.decoder_table(post[:1])))
    for i in range(1, levels):
        mu, log_s = model.posterior_level(None, post)  # z_(i+1) ~ q(. | z_i): bits x just wrote
        ks.append(coder.decode(gauss, *grid.params(mu, log_s)))
        post.append(grid.point(ks[-1], mu))
        above = post[i:][::-1]  # the levels above z_i, top first
        coder.encode_reverse(ks[i - 1], gauss, *grid.params(*model.prior_level(above, len(xb))))
    coder.encode_reverse(ks[-1], gauss, *grid.params(*model.prior_level([], len(xb))))


def _decode_bit_swap(model: Model, coder, b: int, grid: Grid) -> torch.Tensor:
    """The inverse of :func:`_encode_bit_swap`: one chunk of ``b`` examples."""
    gauss, categorical = grid.family(), constriction.stream.model.Categorical(perfect=False)
    levels = len(model.latent_levels())
    ks: list[np.ndarray | None] = [None] * levels
    post: list[torch.Tensor | None] = [None] * levels
    mu, log_s = model.prior_level([], b)
    ks[-1] = coder.decode(gauss, *grid.params(mu, log_s))
    post[-1] = grid.point(ks[-1], mu)
    for i in range(levels - 1, 0, -1):
        mu, log_s = model.prior_level(post[i:][::-1], b)  # z_i under p(. | z_(i+1))
        ks[i - 1] = coder.decode(gauss, *grid.params(mu, log_s))
        post[i - 1] = grid.point(ks[i - 1], mu)
        coder.encode_reverse(ks[i], gauss, *grid.params(*model.posterior_level(None, post[:i])))
    table = model.decoder_table(post[:1])
    xb = torch.from_numpy(coder.decode(categorical, probabilities(table)).astype(np.int64))
    xb = xb.view(b, *model.spec.shape).to(post[0].device)
    coder.encode_reverse(ks[0], gauss, *grid.params(*model.posterior_level(xb, [])))
    return xb


def decode(model: Model, words: np.ndarray, count: int, chunk: int, grid: Grid, initial_words: int,
           done: Done = None) -> torch.Tensor:
    """The ``count`` examples :func:`encode` coded into ``words``, in their original order.

    Raises:
        DataError: the words left at the end are not the initial words (the stream was decoded
            with probabilities other than the encoder's).
    """
    model.eval()
    coder = constriction.stream.stack.AnsCoder(np.asarray(words, dtype=np.uint32))
    gauss, categorical = grid.family(), constriction.stream.model.Categorical(perfect=False)
    shape = tuple(model.spec.shape)
    out: list[torch.Tensor] = []
    for part in reversed(_chunks(count, chunk)):
        b = part.stop - part.start
        if model.inference == "bottom-up":
            out.append(_decode_bit_swap(model, coder, b, grid).cpu())
            if done is not None:
                done(b)
            continue
        drawn, ks, frames = [], [], []
        for _ in model.latent_levels():  # z under p(z), top level first
            frames.append(model.prior_level(drawn, b))
            ks.append(coder.decode(gauss, *grid.standard(frames[-1][0])))
            drawn.append(grid.point(ks[-1], frames[-1][0], frames[-1]))
        table = model.decoder_table(drawn)
        xb = torch.from_numpy(coder.decode(categorical, probabilities(table)).astype(np.int64))
        xb = xb.view(b, *shape).to(model.device)
        for i in reversed(range(len(ks))):  # give the bits back: z under q(z | x)
            coder.encode_reverse(ks[i], gauss, *grid.params(*model.posterior_level(xb, drawn[:i]), frames[i]))
        out.append(xb.cpu())
        if done is not None:
            done(b)
    left = coder.get_compressed()
    if len(left) != initial_words or not np.array_equal(left, _initial(initial_words)):
        raise DataError("bits-back decoding did not end on the stream's initial words: the "
                        "probabilities were computed differently than when encoding")
    out.reverse()
    return torch.cat(out) if out else torch.zeros(0, *shape, dtype=torch.long)
