"""WaveNet: dilated causal convolutions over a 1-D sequence (van den Oord et al. 2016).

Images and vectors are sequences too: an example of shape ``(C, H, W)`` or ``(D,)`` is read in
raster order (row by row, the channels of a pixel in turn), as the course's comparison of
architectures on 28 x 28 images does. A flattened row has lost where it ends, so ``positions``
adds a learned embedding ``P_t`` of the position to the input layer (``h^0_t += P_t``).

A sequence ``x_1 .. x_T`` of ``L`` discrete levels (mu-law audio [1]: ``L = 256`` at 16 kHz; text
bytes work the same way) is factorised in time order, each conditional seeing only the last
``R`` samples (the receptive field) and optionally a global label ``s`` (the speaker [1, Sec. 2.5]),

    p(x | s) = prod_t p(x_t | x_{t-R} .. x_{t-1}, s),   p(x_t | .) = softmax(logits_t)[x_t].

The network, with ``C`` residual, ``G`` gate and ``S`` skip channels [1, Fig. 4]:

* causal input convolution of width ``k0`` over the one-hot input shifted by one step, written as
  ``k0`` embedding lookups (a convolution of a one-hot is a table look-up; no ``L x T`` one-hot
  tensor is ever built): ``h^0_t = b + sum_{j<k0} E_j[x_{t-1-j}]``;
* ``num_stacks`` stacks of ``layers_per_stack`` dilated causal convolutions of width ``k`` with
  dilations ``d = 1, 2, .., 2^(K-1)``, each a gated residual block

      [a; g] = sum_{i<k} W_i h^{l-1}_{t-i d} + b + V_l s,   z = tanh(a) * sigmoid(g),
      h^l_t = h^{l-1}_t + R_l z,   skip_t = b_S + sum_l S_l z

  (``V_l s``: a learned per-layer speaker embedding, present when ``conditional``);
* output ``logits_t = U_2 relu(U_1 relu(skip_t))``, ``L`` logits per step.

Left zero padding makes every layer causal, so one pass gives all ``T`` conditionals and
``log_prob`` is the exact sum of ``T`` categorical log-likelihoods. The output at ``t`` sees
exactly the inputs ``t - R .. t - 1`` with

    R = k0 + (k - 1) * num_stacks * (2^K - 1)                   (:attr:`WaveNet.receptive_field`).

A dilated convolution is computed as one linear map of the ``k`` time-shifted copies of its
input, concatenated on the channel axis: the arithmetic of ``conv1d`` with dilation, in the form
the fast sampler applies to a single time step. The filter and gate convolutions are one map to
``2G`` channels; the residual ``1 x 1`` maps ``R_l`` have no bias (as in pytorch-wavenet [3]).

Sampling. The naive sampler (``fast=False``) runs the network over the last ``R + 1`` positions
for every new sample (the receptive field suffices, so the cost per step is constant). The fast
sampler [2] keeps, for each layer, a queue of its last ``(k - 1) d`` inputs: a new sample then
costs one time step of every layer, ``O(layers)`` instead of ``O(layers * R)``. Both draw one
categorical per position in the same order, so for the same seed they return the same samples.
Both run one loop, :meth:`WaveNet.walk`, which the lossless coder (:mod:`unsup.codec`) runs too.

References:
    [1] van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior, Kavukcuoglu.
        WaveNet: A Generative Model for Raw Audio. arXiv:1609.03499, 2016.
    [2] Paine, Khorrami, Chang, Zhang, Ramachandran, Hasegawa-Johnson, Huang. Fast Wavenet
        Generation Algorithm. arXiv:1611.09482, 2016.
    [3] Babuschkin (ibab) et al. tensorflow-wavenet (wavenet_params.json) and Herrmann,
        pytorch-wavenet: open reproductions, source of the channel counts of preset ``paper``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.autoregressive.raster import Choose
from unsup.models.base import LikelihoodModel
from unsup.nn.layers import categorical_log_prob, check_temperature, logit_width, sample_categorical

# (x_{t-1} (n,) or None at t = 0, position t, whether logits are wanted) -> logits (n, L) or None
StepFn = Callable[[torch.Tensor | None, int, bool], torch.Tensor | None]


@dataclass
class WaveNetConfig:
    """Hyper-parameters of :class:`WaveNet`.

    The defaults run the paper's dilation cycle 1, 2, .., 512 twice with 32 channels throughout:
    a receptive field of 2048 samples (128 ms at 16 kHz) at about 160k parameters, small enough
    to train on speech on a CPU.

    Attributes:
        residual_channels: channels ``C`` of the residual stream between layers.
        gate_channels: channels ``G`` of each gated activation (the paper's dilation channels).
        skip_channels: channels ``S`` of the skip connections and of the output layers.
        num_stacks: repetitions of the dilation cycle.
        layers_per_stack: layers per cycle ``K``, with dilations 1, 2, .., 2^(K-1).
        kernel_size: width ``k`` of the dilated convolutions (>= 2).
        input_kernel_size: width ``k0`` of the causal input convolution (>= 1).
        conditional: condition on the label (the speaker of speech data) in every gate.
        positions: add a learned embedding of the position ``t`` to the input layer (for
            flattened images; samples are then at most the data's length).
    """

    residual_channels: int = 32
    gate_channels: int = 32
    skip_channels: int = 32
    num_stacks: int = 2
    layers_per_stack: int = 10
    kernel_size: int = 2
    input_kernel_size: int = 2
    conditional: bool = False
    positions: bool = False


def shift(h: torch.Tensor, s: int) -> torch.Tensor:
    """``h`` delayed by ``s`` steps along time (axis 1), zeros first: ``out[:, t] = h[:, t-s]``."""
    if s == 0:
        return h
    return F.pad(h, (0, 0, s, 0))[:, :h.shape[1]]  # (B, T, C)


@register(
    "wavenet",
    "WaveNet: dilated causal convolutions over 1-D sequences (mu-law audio, bytes); fast sampler",
    presets={
        # van den Oord et al. 2016, Sec. 2.1: dilations 1, 2, .., 512 repeated three times (R =
        # 3071 samples, 192 ms at 16 kHz; the paper's multi-speaker model used ~300 ms). The
        # paper gives no channel counts: 32 residual / 32 gate channels as in tensorflow-wavenet
        # and pytorch-wavenet, 256 skip and output channels as in pytorch-wavenet [3].
        "paper": {"residual_channels": 32, "gate_channels": 32, "skip_channels": 256,
                  "num_stacks": 3, "layers_per_stack": 10, "kernel_size": 2,
                  "input_kernel_size": 2},
    },
)
class WaveNet(LikelihoodModel):
    """WaveNet over discrete data with ``L`` levels: sequences ``(T,)``, or images and vectors
    read in raster order (``T`` = number of elements).

    Attributes:
        receptive_field: ``R``, the number of past samples each conditional sees.
        dilations: dilation of every layer, in order.

    Raises:
        ConfigError: continuous data, ``conditional`` on unlabelled data, or invalid sizes.
    """

    Config = WaveNetConfig
    supports_fast_sampling = True
    variable_length = True
    codes = True

    def __init__(self, spec: DataSpec, config: WaveNetConfig | None = None) -> None:
        c = config or WaveNetConfig()
        super().__init__(spec, c)
        self.require(levels=True, kinds=("sequence", "vector", "image"), labels=c.conditional)
        self.length = spec.dims
        for name in ("residual_channels", "gate_channels", "skip_channels", "num_stacks",
                     "layers_per_stack", "input_kernel_size"):
            if getattr(c, name) < 1:
                raise ConfigError(f"WaveNet {name} must be >= 1, got {getattr(c, name)}")
        if c.kernel_size < 2:
            raise ConfigError(f"WaveNet kernel_size must be >= 2, got {c.kernel_size}")
        assert spec.levels is not None
        self.levels = spec.levels
        self.dilations = [2**i for _ in range(c.num_stacks) for i in range(c.layers_per_stack)]
        self.receptive_field = c.input_kernel_size + (c.kernel_size - 1) * sum(self.dilations)
        C, G, S, k = c.residual_channels, c.gate_channels, c.skip_channels, c.kernel_size

        # E_0 .. E_{k0-1} side by side: the k0 taps of the causal input convolution.
        self.input_embedding = nn.Embedding(self.levels, c.input_kernel_size * C)
        self.input_bias = nn.Parameter(torch.zeros(C))
        self.position = nn.Embedding(self.length, C) if c.positions else None
        if self.position is not None:
            nn.init.normal_(self.position.weight, std=0.02)
        n = len(self.dilations)
        self.dilated = nn.ModuleList(nn.Linear(k * C, 2 * G) for _ in range(n))
        # No bias: the next layer's bias plays its part (as in pytorch-wavenet); the last layer
        # needs no residual output.
        self.residual = nn.ModuleList(nn.Linear(G, C, bias=False) for _ in range(n - 1))
        # sum_l S_l z_l as one map of the concatenated gate outputs (the biases add up to one).
        self.skip = nn.Linear(n * G, S)
        self.head = nn.Linear(S, S)
        self.num_logits = logit_width(self.levels)  # 1 for binary data
        self.output = nn.Linear(S, self.num_logits)

        self.num_classes = spec.num_classes if c.conditional else None
        if self.num_classes is not None:
            # V_l s for every layer l at once: (num_classes, layers * 2G).
            self.speaker = nn.Embedding(self.num_classes, n * 2 * G)
            nn.init.normal_(self.speaker.weight, std=0.1)

    # ----------------------------------------------------------------------------- forward

    def gate_biases(self, y: torch.Tensor | None) -> list[torch.Tensor | None]:
        """The speaker term ``V_l s`` of every layer, each ``(B, 2G)``; Nones if unconditional."""
        if self.num_classes is None:
            return [None] * len(self.dilations)
        assert y is not None
        return list(self.speaker(y).chunk(len(self.dilations), dim=-1))

    def features(self, e: torch.Tensor, y: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
        """The summed skip connections ``(B, T, S)`` of embedded inputs ``e`` (``(B, T, k0 C)``,
        from ``input_embedding``) of positions ``offset .. offset + T - 1``; position ``t``
        depends on ``e[:, t-R:t]`` only."""
        b, t, _ = e.shape
        k0, C = self.config.input_kernel_size, self.config.residual_channels
        e = e.view(b, t, k0, C)  # (B, T, k0, C)
        h = self.input_bias.expand(b, t, C)
        if self.position is not None:
            h = h + self.position.weight[offset:offset + t]
        for j in range(k0):
            h = h + shift(e[:, :, j], 1 + j)  # E_j[x_{t-1-j}]
        k = self.config.kernel_size
        zs = []
        for d, conv, res, v in zip(self.dilations, self.dilated, [*self.residual, None],
                                   self.gate_biases(y), strict=True):
            taps = torch.cat([shift(h, i * d) for i in range(k - 1, -1, -1)], -1)  # (B, T, kC)
            pre = conv(taps)  # (B, T, 2G)
            if v is not None:
                pre = pre + v[:, None]
            a, g = pre.chunk(2, -1)
            zs.append(torch.tanh(a) * torch.sigmoid(g))  # (B, T, G)
            if res is not None:
                h = h + res(zs[-1])
        return self.skip(torch.cat(zs, -1))  # (B, T, S)

    def head_logits(self, skip: torch.Tensor) -> torch.Tensor:
        """``U_2 relu(U_1 relu(skip))``: logits ``(..., L)`` of summed skips ``(..., S)``."""
        return self.output(F.relu(self.head(F.relu(skip))))

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, L)`` of ``p(x_t | x_<t)`` for levels ``x`` of shape ``(B, T)``
        (flattened)."""
        return self.head_logits(self.features(self.input_embedding(x), y))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``; ``y`` is ignored if unconditional."""
        self.check_input(x)
        x = x.to(self.device).long().flatten(1)
        return categorical_log_prob(self.logits(x, self.labels(y, len(x))), x)

    # ---------------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               fast: bool = True, length: int | None = None,
               prime: torch.Tensor | None = None) -> torch.Tensor:
        """Ancestral samples in time order, shape ``(n, length)`` -- or ``(n, *spec.shape)`` for
        images and vectors when ``length`` is the data's.

        Args:
            n: number of samples.
            y: labels ``(n,)`` of a conditional model; default ``arange(n) % num_classes``.
            temperature: divides every conditional's logits (0: argmax).
            fast: use the queue-based sampler [2] (``O(layers)`` per sample); ``False`` runs the
                network over the receptive field for every sample. Both give the same samples
                for the same seed.
            length: samples per sequence (default: the data's length; any length works
                unless ``positions`` caps it at the data's length).
            prime: levels ``(n, P)`` or ``(P,)`` that every sequence starts with; sampling
                continues after them.

        Raises:
            ConfigError: invalid labels, temperature, length or prime.
        """
        check_temperature(temperature)
        y = self.sample_labels(y, n)
        length = self.length if length is None else int(length)
        if length < 1 or (self.position is not None and length > self.length):
            raise ConfigError(f"WaveNet sample length must be in [1, {self.length}] with positions, "
                              f"got {length}" if self.position is not None else
                              f"WaveNet sample length must be >= 1, got {length}")
        x = torch.zeros(n, length, dtype=torch.long, device=self.device)
        start = 0
        if prime is not None:
            prime = torch.as_tensor(prime, device=self.device)
            if len(self.spec.shape) > 1 and prime.dim() > 2:
                prime = prime.flatten(1)
            prime = prime.expand(n, -1) if prime.dim() == 1 else prime
            if (prime.is_floating_point() or prime.dim() != 2 or len(prime) != n
                    or prime.shape[1] > length
                    or (prime.numel() and (prime.min() < 0 or prime.max() >= self.levels))):
                raise ConfigError(f"prime must hold levels in [0, {self.levels - 1}] of shape "
                                  f"({n}, P) or (P,) with P <= length={length}, got "
                                  f"{prime.dtype} {tuple(prime.shape)}")
            start = prime.shape[1]
            x[:, :start] = prime

        def draw(logits: torch.Tensor, where: tuple) -> torch.Tensor:
            return sample_categorical(logits, temperature)

        self.walk(x, y, draw, fast, start=start)
        if len(self.spec.shape) > 1 and length == self.length:
            return x.view(n, *self.spec.shape)
        return x

    # ------------------------------------------------------------ the autoregressive loop

    def to_walk(self, x: torch.Tensor) -> torch.Tensor:
        """Examples ``(B, *spec.shape)`` as the sequences ``(B, T)`` that :meth:`walk` fills."""
        return x.reshape(len(x), -1)

    def from_walk(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_walk`."""
        return z.reshape(len(z), *self.spec.shape)

    def walk(self, x: torch.Tensor, y: torch.Tensor | None, choose: Choose, fast: bool = True,
             start: int = 0) -> torch.Tensor:
        """The loop of both samplers over ``x`` ``(n, T)``: for ``t = start, start + 1, ..``,
        ``x[:, t] = choose(logits, (:, t))`` with ``logits`` ``(n, L)`` of ``p(x_t | x_<t)``
        given ``x`` as filled so far (``x[:, :start]``: a prime, kept); as
        :meth:`RasterSampling.walk <unsup.models.autoregressive.raster.RasterSampling.walk>`.
        ``fast``: the queues of :meth:`incremental`; otherwise the network over the receptive
        field at every step."""
        step = self.incremental(len(x), y) if fast else None
        r = self.receptive_field
        for t in range(x.shape[1]):
            if step is not None:
                logits = step(x[:, t - 1] if t else None, t, t >= start)
            elif t >= start:
                first = max(0, t - r)
                window = x[:, first:t + 1]  # x_t itself is a placeholder the output ignores
                logits = self.head_logits(self.features(self.input_embedding(window), y, first)[:, -1])
            if t >= start:
                where = (slice(None), t)
                x[where] = choose(logits, where)
        return x

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """Paine et al.'s algorithm [2]: a stateful ``(prev, t, head) -> logits (n, L)`` (None
        when not ``head``) equal to ``logits(x, y)[:, t]``, called for ``t = 0, 1, ..`` with
        ``prev = x[:, t-1]`` (None at 0). It keeps per-layer queues of past layer inputs, so a step
        costs one time step of every layer; ``head=False`` (a primed position) skips the output
        layers.

        Each step computes :meth:`features` for one time step with the same weights, fetched
        once and called through plain tensor operations: at a few thousand multiply-adds per
        layer, the cost of a step is mostly per-operation overhead, so fewer operations matter.
        """
        c = self.config
        k, k0, C, G = c.kernel_size, c.input_kernel_size, c.residual_channels, c.gate_channels
        zero = torch.zeros(n, C, device=self.device)
        # recent[-1-j] = E[x_{t-1-j}] (n, k0, C); queue[i d] = input of its layer at t-(k-1-i)d.
        recent = deque([torch.zeros(n, k0, C, device=self.device)] * k0, maxlen=k0)
        layers = []
        for d, conv, res, v in zip(self.dilations, self.dilated, [*self.residual, None],
                                   self.gate_biases(y), strict=True):
            bias = conv.bias if v is None else conv.bias + v  # (2G,) or (n, 2G)
            queue = deque([zero] * ((k - 1) * d), maxlen=(k - 1) * d)
            layers.append((queue, [i * d for i in range(k - 1)], conv.weight.t(), bias,
                           None if res is None else res.weight.t()))
        skip_w, skip_b = self.skip.weight.t(), self.skip.bias
        embedding, input_bias = self.input_embedding.weight, self.input_bias

        def step(prev: torch.Tensor | None, t: int, head: bool = True) -> torch.Tensor | None:
            if prev is not None:
                recent.append(F.embedding(prev, embedding).view(n, k0, C))
            h = input_bias.expand(n, C) if self.position is None else input_bias + self.position.weight[t]
            for j in range(k0):
                h = h + recent[-1 - j][:, j]
            zs = []
            for queue, taps, w, bias, res in layers:
                pre = torch.addmm(bias, torch.cat([queue[i] for i in taps] + [h], 1), w)  # (n, 2G)
                queue.append(h)
                pre[:, :G].tanh_()
                zs.append(F.glu(pre, 1))  # tanh(a) * sigmoid(g) in 3 operations, not 5: (n, G)
                if res is not None:
                    h = torch.addmm(h, zs[-1], res)  # h + R_l z
            if not head:
                return None
            return self.head_logits(torch.addmm(skip_b, torch.cat(zs, 1), skip_w))  # (n, L)

        return step
