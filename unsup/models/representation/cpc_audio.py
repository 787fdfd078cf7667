"""Contrastive predictive coding on raw audio (van den Oord, Li, Vinyals 2018).

A strided convolutional encoder turns the waveform into one latent vector per frame, ``z_t =
g_enc(x)_t`` (strides 5, 4, 2, 2, 2 and kernels 10, 8, 4, 4, 4: one frame per 160 samples, 10 ms
at 16 kHz, each seeing 465 samples); a GRU summarises the past, ``c_t = g_ar(z_{<=t})``; and for
each step ``k = 1..K`` (``--steps-ahead``, 12 in [1]) a bilinear score ``f_k(z, c_t) = z^T W_k c_t``
rates how well a latent fits ``k`` frames ahead. The InfoNCE loss asks the true future latent
``z_{t+k}`` to win against ``N`` negatives ``z_j`` (``--num-negatives``):

    L_k = -E_t log exp(f_k(z_{t+k}, c_t)) / (exp(f_k(z_{t+k}, c_t)) + sum_j exp(f_k(z_j, c_t))),

    L = (1/K) sum_k L_k,

which is a lower bound, ``I(z_{t+k}; c_t) >= log(1 + N) - L_k``, on the information the context
keeps about the future. ``acc_k`` (logged for every k, pictured in ``steps.png``) is how often
the true latent scores highest: far ahead the future is less predictable and the accuracy falls.

Where negatives come from decides what the features must encode (``--negatives``, [1] table 2):

* ``all``: frames drawn uniformly from every clip of the batch, whoever speaks;
* ``speaker``: frames of clips by the same speaker (the batch's labels ``y``, the speaker
  metadata [1] used for this ablation; no other use is made of labels), so the speaker's voice
  no longer tells the true future from a negative and the context must model what is said;
* ``clip``: frames of the same clip only ([1]'s "current sequence only").

Negatives are drawn with replacement and never equal the positive frame itself. In validation
they are drawn from a fixed seed, so that the validation loss compares checkpoints fairly. Under
``torchrun`` the latents of every process's clips are gathered (with their gradients, as SimCLR's
embeddings), so that training draws from the global batch.

The encoder normalises its activations (``--norm``): ``batch`` (the default) learns fast on
the CPU; its statistics, shared by every frame of the batch, are a weak channel between frames
in training (none in evaluation, where running averages make it a fixed affine map per frame).
``channel`` normalises each frame over its channels alone ([2]'s channel norm), which keeps frames
strictly apart but, measured on ``speech``, stays at chance through the first 80 steps at Adam
1e-3 (at 2e-4 it starts to learn). A norm over time is not offered: it would let a frame hear
the future.

``encode`` (what ``unsup probe`` reads) averages ``c_t`` over the clip (``--features context``)
or ``z_t`` (``--features latent``): speaker identification from one fixed-size vector per clip,
as in [1]'s speaker probe, and ``unsup probe`` sets it against MFCC features and the same
network untrained. The checkpoint a run keeps is chosen by that probe too, not by the InfoNCE
loss: the highest validation ``knn_accuracy`` of the speakers of the first 2,000 validation clips
(:class:`~unsup.models.representation.base.KnnSelection`), or the last checkpoint when the clips
have no speaker labels.

Inputs are mu-law codes (the ``speech`` dataset), decoded to amplitudes in [-1, 1] through a
lookup table, or amplitudes as floats (``--represent float`` data).

The ``paper`` preset is [1]'s network (512 channels, a 256-unit GRU, 12 steps); [1] trained on
20,480-sample windows of LibriSpeech, batches of 8 per GPU on 8 GPUs
(``--data-opt length=20480``).

References:
    [1] van den Oord, Li, Vinyals. Representation Learning with Contrastive Predictive Coding. 2018.
    [2] Rivière, Joulin, Mazaré, Dupoux. Unsupervised Pretraining Transfers Well Across Languages.
        ICASSP 2020 (channel-wise normalisation, sampled negatives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unsup.audio import AUDIO, to_amplitudes
from unsup.data.base import Dataset, DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Model
from unsup.models.representation.base import KnnSelection
from unsup.models.representation.contrastive import gather
from unsup.nn import distributed

NEGATIVES = ("all", "speaker", "clip")
NORMS = ("batch", "channel", "none")
FEATURES = ("context", "latent")


@dataclass
class CPCAudioConfig:
    """Hyper-parameters of :class:`CPCAudio`.

    Attributes:
        channels: channels of every encoder layer, and the size of ``z_t``.
        strides: the encoder's strides, one per convolution.
        kernels: the encoder's kernel sizes, as many as strides.
        context: hidden units of the GRU, the size of ``c_t``.
        steps_ahead: K, the farthest frame predicted.
        num_negatives: N, negatives per prediction.
        negatives: where negatives come from: all (any clip of the batch), speaker (clips of
            the same speaker, from the labels) or clip (the same clip).
        features: what ``encode`` averages over time: context (c_t) or latent (z_t).
        norm: the encoder's normalisation: batch, channel (per frame) or none.
    """

    channels: int = 128
    strides: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])
    kernels: list[int] = field(default_factory=lambda: [10, 8, 4, 4, 4])
    context: int = 128
    steps_ahead: int = 12
    num_negatives: int = 128
    negatives: str = "all"
    features: str = "context"
    norm: str = "batch"


class ChannelNorm(nn.Module):
    """Layer norm over the channels of each time step of ``(B, C, T)``: frames stay independent."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h.transpose(1, 2)).transpose(1, 2)


class StridedEncoder(nn.Module):
    """``g_enc``: strided 1-D convolutions without padding, each followed by a normalisation
    (:data:`NORMS`) and a ReLU; ``(B, T_samples) -> (B, C, T_frames)``."""

    def __init__(self, channels: int, strides: list[int], kernels: list[int], norm: str = "batch") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for s, k in zip(strides, kernels, strict=True):
            layers.append(nn.Conv1d(c_in, channels, k, stride=s, bias=norm == "none"))
            if norm != "none":
                layers.append(nn.BatchNorm1d(channels) if norm == "batch" else ChannelNorm(channels))
            layers.append(nn.ReLU())
            c_in = channels
        self.net = nn.Sequential(*layers)
        self.stride = 1
        self.receptive_field = 1
        for s, k in zip(strides, kernels, strict=True):
            self.receptive_field += (k - 1) * self.stride
            self.stride *= s

    def frames(self, samples: int) -> int:
        """How many frames a clip of ``samples`` samples gives."""
        return max(0, (samples - self.receptive_field) // self.stride + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


@register("cpc-audio", "CPC on raw audio: strided conv encoder, GRU context, bilinear scores per "
          "step k, multi-step InfoNCE; negatives from all clips, the same speaker or the same clip",
          presets={"paper": {"channels": 512, "context": 256, "steps_ahead": 12}})
class CPCAudio(KnnSelection, Model):
    """Encoder ``g_enc``, autoregressive context ``g_ar`` and the predictors ``W_k``.

    Raises:
        ConfigError: data that are not audio sequences, clips too short for the encoder and
            ``steps_ahead``, or bad options.
    """

    loss_gathers = True  # negatives from every process (gather)

    Config = CPCAudioConfig
    encodes = True

    def __init__(self, spec: DataSpec, config: CPCAudioConfig) -> None:
        super().__init__(spec, config)
        self.require(kinds=("sequence",))
        c = config
        strides, kernels = list(c.strides), list(c.kernels)
        if not strides or len(strides) != len(kernels) or min(strides + kernels) < 1:
            raise ConfigError(f"cpc-audio needs as many kernels as strides, all positive, got kernels "
                              f"{kernels} and strides {strides}")
        if min(c.channels, c.context, c.steps_ahead, c.num_negatives) < 1:
            raise ConfigError(f"cpc-audio needs channels, context, steps_ahead and num_negatives >= 1, "
                              f"got {c.channels}, {c.context}, {c.steps_ahead}, {c.num_negatives}")
        if c.negatives not in NEGATIVES:
            raise ConfigError(f"cpc-audio negatives must be one of {', '.join(NEGATIVES)}, "
                              f"got {c.negatives!r}")
        if c.norm not in NORMS:
            raise ConfigError(f"cpc-audio norm must be one of {', '.join(NORMS)}, got {c.norm!r}")
        if c.features not in FEATURES:
            raise ConfigError(f"cpc-audio features must be one of {', '.join(FEATURES)}, "
                              f"got {c.features!r}")
        self.encoder = StridedEncoder(c.channels, strides, kernels, c.norm)
        self.T = self.encoder.frames(spec.shape[0])
        if self.T <= c.steps_ahead + 1:
            raise ConfigError(
                f"cpc-audio: clips of {spec.shape[0]} samples give {self.T} frames (stride "
                f"{self.encoder.stride}, receptive field {self.encoder.receptive_field}); predicting "
                f"{c.steps_ahead} steps ahead needs more than {c.steps_ahead + 1}: use longer clips "
                f"(--data-opt length=N) or a smaller --steps-ahead")
        self.gru = nn.GRU(c.channels, c.context, batch_first=True)
        # W_k for k = 1..K as one linear map to K predicted latents: f_k(z, c) = z . (W_k c)
        self.predictors = nn.Linear(c.context, c.steps_ahead * c.channels, bias=False)
        if spec.levels is not None:
            self.register_buffer("amplitude", to_amplitudes(torch.arange(spec.levels), spec.levels),
                                 persistent=False)

    def prepare(self, data: Dataset) -> None:
        """Refuse training data that are not audio (codes would be read as mu-law amplitudes)."""
        if data.name not in AUDIO:
            raise ConfigError(f"cpc-audio learns from raw audio ({', '.join(AUDIO)}); got {data.name!r}")
        if self.config.negatives == "speaker" and getattr(data, "y", None) is None:
            raise ConfigError("cpc-audio --negatives speaker needs the speaker of every clip (labels); "
                              f"{data.name} has none: use --negatives all or clip")

    @property
    def feature_dim(self) -> int:
        return self.config.context if self.config.features == "context" else self.config.channels

    def waveform(self, x: torch.Tensor) -> torch.Tensor:
        """Checked clips as amplitudes in [-1, 1] on the model's device, ``(B, T_samples)``."""
        self.check_input(x)
        x = x.to(self.device)
        return self.amplitude[x.long()] if self.spec.levels is not None else x.float()

    def latents_and_context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` ``(B, T, C)`` and ``c`` ``(B, T, H)`` of raw clips ``x``."""
        z = self.encoder(self.waveform(x)).transpose(1, 2)
        c, _ = self.gru(z)
        return z, c

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z, c = self.latents_and_context(x)
        return (c if self.config.features == "context" else z).mean(1)

    def negative_pool(self, y: torch.Tensor | None, y_all: torch.Tensor | None, B: int, G: int,
                      offset: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, G)`` bools: which of the ``G`` clips of the (gathered) batch may supply negatives
        for the predictions of each of this process's ``B`` clips, clip ``b`` being number
        ``offset + b`` of the ``G``; ``y`` and ``y_all`` are the speakers of both."""
        mode = self.config.negatives
        if mode == "all":
            return torch.ones(B, G, dtype=torch.bool, device=device)
        if mode == "clip":
            return torch.arange(G, device=device)[None, :] == offset + torch.arange(B, device=device)[:, None]
        if y is None or y_all is None:
            raise ConfigError("cpc-audio --negatives speaker needs batches with speaker labels y")
        return y.to(device)[:, None] == y_all.to(device)[None, :]

    def sample_negatives(self, clip: torch.Tensor, frame: torch.Tensor, pool: torch.Tensor, T: int,
                         generator: torch.Generator | None, offset: int = 0) -> torch.Tensor:
        """Flat indices ``(n, N)`` (``clip * T + frame`` among the ``G`` clips of the pool) of
        negatives for ``n`` positives at this process's clips ``clip`` (rows of ``pool``, which
        are clips ``offset + clip`` of the ``G``) and frames ``frame``: a clip drawn uniformly
        from the positive's pool, a frame uniformly from that clip, never the positive itself."""
        N = self.config.num_negatives
        weights = pool[clip].float()  # (n, G)
        neg_clip = torch.multinomial(weights, N, replacement=True, generator=generator)  # (n, N)
        same = neg_clip == (offset + clip)[:, None]
        u = torch.rand(neg_clip.shape, generator=generator, device=clip.device)
        f = (u * (T - same.long())).long()  # in the positive's own clip: one frame fewer ...
        f = f + (same & (f >= frame[:, None])).long()  # ... skipping the positive's frame
        return neg_clip * T + f

    @staticmethod
    def scores(pred: torch.Tensor, candidates: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``pred[i] . candidates[index[i, j]]``, ``(n, m)``: the positive's and the negatives'
        scores of each prediction.

        Few candidates (a training batch): one product with all of them, then the drawn ones are
        picked (fastest, and only ``pred`` and ``candidates`` are kept for the gradient). Many (the
        trainer validates on batches of 256 clips): the drawn candidates are gathered, in chunks
        of rows so that memory stays bounded."""
        m = index.shape[1]
        if len(candidates) <= 16 * m:
            return (pred @ candidates.t()).gather(1, index)
        rows = max(1, 2**24 // (m * candidates.shape[1]))
        return torch.cat([torch.einsum("nc,nmc->nm", p, candidates[i])
                          for p, i in zip(pred.split(rows), index.split(rows), strict=True)])

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        z, c = self.latents_and_context(batch["x"])
        B, T, C = z.shape
        K = self.config.steps_ahead
        generator = None
        if not self.training:  # the same negatives for every validation, so checkpoints compare
            generator = torch.Generator(z.device).manual_seed(0)
        # under torchrun, training draws negatives from every process's clips (gathered, with
        # their gradients); validation shards may differ in size, so it stays on its own
        world = distributed.current()
        gathering = self.training and world.world_size > 1
        candidates = gather(z.reshape(B * T, C)) if gathering else z.reshape(B * T, C)
        offset = world.rank * B if gathering else 0
        y = batch.get("y")
        y_all = gather(y.to(z.device), grad=False) if gathering and y is not None else y
        pool = self.negative_pool(y, y_all, B, len(candidates) // T, offset, z.device)
        pred = self.predictors(c).view(B, T, K, C)
        clips = torch.arange(B, device=z.device)[:, None]
        out, losses = {}, []
        for k in range(1, K + 1):
            p = pred[:, : T - k, k - 1].reshape(-1, C)  # (B (T-k), C): W_k c_t for t = 0 .. T-k-1
            clip = clips.expand(B, T - k).reshape(-1)
            frame = torch.arange(k, T, device=z.device).repeat(B)  # target frames t + k
            positive = (offset + clip) * T + frame
            negative = self.sample_negatives(clip, frame, pool, T, generator, offset)  # (n, N)
            logits = self.scores(p, candidates, torch.cat([positive[:, None], negative], 1))
            target = torch.zeros(len(logits), dtype=torch.long, device=z.device)
            losses.append(F.cross_entropy(logits, target))
            out[f"acc_{k}"] = (logits.argmax(1) == 0).float().mean()
        steps = [out[f"acc_{k}"] for k in range(1, K + 1)]
        return {"loss": torch.stack(losses).mean(), "accuracy": torch.stack(steps).mean(), **out}

    @torch.no_grad()
    def charts(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, dict]:
        """``steps``: the accuracy of the contrastive task against the step ``k`` on clips ``x``
        (speakers ``y``, which ``--negatives speaker`` needs), for ``unsup train`` to plot."""
        if self.config.negatives == "speaker" and y is None:
            return {}
        was = self.training
        self.eval()
        try:
            metrics = self.loss({"x": x} if y is None else {"x": x, "y": y})
        finally:
            self.train(was)
        K, stride = self.config.steps_ahead, self.encoder.stride
        return {"steps": {
            "title": f"CPC: how often the true future wins among {self.config.num_negatives + 1}",
            "xlabel": f"prediction step k (frames of {stride} samples)", "ylabel": "accuracy",
            "series": {f"{self.config.negatives} negatives": (
                list(range(1, K + 1)), [float(metrics[f"acc_{k}"]) for k in range(1, K + 1)])}}}
