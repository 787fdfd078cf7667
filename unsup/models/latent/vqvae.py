"""VQ-VAE: an autoencoder with a discrete latent grid (van den Oord et al. 2017).

An encoder maps an image ``x`` to a grid ``z_e(x)`` of ``h x w`` vectors in ``R^d``; each vector is
replaced by its nearest entry of a codebook ``e_1 .. e_K`` [1],

    k = argmin_j ||z_e - e_j||^2,        z_q = e_k,

and a decoder reads ``z_q``. ``argmin`` has no gradient, so the decoder's gradient is copied to the
encoder by the straight-through estimator ``z_e + sg[z_q - z_e]`` (``sg`` = stop-gradient;
forward value ``z_q``, backward the identity). The objective per image is

    L = -log p(x | z_q) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2,

the reconstruction term, the codebook term (moves codes towards the encoder outputs assigned to
them) and the commitment term (keeps the encoder near its codes; ``beta = 0.25``). Here the
reconstruction term is in nats per dimension of ``x`` and the two squared distances are means over
latent elements, so ``beta`` keeps its paper value whatever the image size.

Codebook by EMA ([1], appendix A.1; ``codebook_update="ema"``, the default). The codebook term is
dropped and the codes are moving averages of their clusters: with ``n_i`` the number of the batch's
vectors assigned to code ``i`` and ``s_i`` their sum, in training mode

    N_i <- gamma N_i + (1 - gamma) n_i,       m_i <- gamma m_i + (1 - gamma) s_i,
    e_i  = m_i / N~_i,   N~_i = (N_i + eps) / (sum_j N_j + K eps) * sum_j N_j,

``N~`` being the Laplace-smoothed counts (as in Sonnet's ``VectorQuantizerEMA``) so that a code
nobody uses does not divide by zero. ``codebook_update="loss"`` learns the codebook by gradient
through the codebook term instead.

Dead codes. A code that no vector picks never moves again. Following Jukebox [2] (and the
"codebook reset" of Williams et al. [3]), every training step re-initialises each code whose
moving usage ``N_i`` (vectors per batch) is below ``restart_threshold`` to a random encoder output
of the current batch (``N_i = 1``, ``m_i = e_i``). The codebook is also initialised from the
first training batch's encoder outputs [2]. All of this state -- codebook, ``N``, ``m`` and the
"initialised" flag -- are registered buffers, so a checkpoint resumes exactly.

Monitoring. With ``p_k`` the fraction of the batch's vectors assigned to code ``k``, the codebook
perplexity ``exp(-sum_k p_k log p_k)`` is ``K`` for a uniform assignment and 1 when everything
goes to one code; ``usage`` is the fraction of codes used at least once in the batch.

Decoder likelihood. Pixels are ``L``-level integers and ``p(x | z_q)`` factorises over pixels
and channels, so the reconstruction term is a true ``-log p(x | z_q)`` in nats (which the bound
below needs; a squared error is not a likelihood of discrete data). The default is PixelCNN++'s
discretized mixture of ``M = components`` logistics [4]: each level gets the mass of its bin of
the value rescaled to ``[-1, 1]``, the end levels all the mass beyond, so it is normalised for
any ``L``. It was chosen over a per-pixel softmax (``likelihood="categorical"``, also available)
because it needs ``3 M`` output maps per channel instead of ``L = 256`` -- on a CPU the 256-way
output and its log-softmax cost most of a training step -- and because neighbouring levels share
their mass, it learns the intensity scale in far fewer steps (a 256-way softmax starts with each
level on its own; after 100 steps on Fashion-MNIST its per-pixel mode was still black). The
edge bin of level 0 models the exact-zero background of Fashion-MNIST well.

Prior and likelihood bound. The VQ-VAE alone is a :class:`~unsup.models.base.Model`, not a
likelihood model: [1] trains it with a uniform prior over the ``K^{hw}`` code grids and fits an
autoregressive prior over the grids afterwards. Viewed as a VAE with the deterministic posterior
``q(z | x) = delta(z = k(x))`` the ELBO is ``log p(x | z_q(x)) - KL(q || p)`` with
``KL = -log p(k(x))`` (``= hw log K`` for the uniform prior), so

    -log p(x) <= -log p_prior(k(x)) - log p(x | z_q(x)),

which also follows from ``p(x) = sum_k p(k) p(x | k) >= p(k(x)) p(x | k(x))``. The prior is any of
the repository's autoregressive image models trained on the code grids (:mod:`unsup.train.vqcodes`,
``--data vq-codes:RUN_DIR``); :class:`VQVAEWithPrior` combines the two for sampling (codes from the
prior, then ``decode``) and for the bound in bits per dimension of ``x``.

References:
    [1] van den Oord, Vinyals, Kavukcuoglu. Neural Discrete Representation Learning. NeurIPS 2017.
    [2] Dhariwal, Jun, Payne, Kim, Radford, Sutskever. Jukebox: A Generative Model for Music. 2020.
    [3] Williams, Ringer, Ash, Hughes, MacLeod, Dougherty. Hierarchical Quantized Autoencoders.
        NeurIPS 2020.
    [4] Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN with Discretized
        Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, LikelihoodModel, Model
from unsup.nn.layers import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_table,
    sample_categorical,
)

CODEBOOK_UPDATES = ("ema", "loss")
LIKELIHOODS = ("logistic", "categorical")


@dataclass
class VQVAEConfig:
    """Hyper-parameters of :class:`VQVAE`.

    Attributes:
        hidden: feature maps of the encoder and decoder convolutions.
        res_blocks: residual blocks after the downsampling (and before the upsampling).
        res_hidden: feature maps inside a residual block.
        downsample: spatial reduction 2, 4 or 8 (one stride-2 convolution per factor 2).
        codebook_size: number of codes K.
        code_dim: dimension d of a code vector.
        beta: weight of the commitment term.
        codebook_update: ema (moving averages, no codebook loss) or loss (codebook term).
        decay: EMA decay gamma of the cluster sizes and sums (also of the usage counts that
            decide restarts).
        epsilon: Laplace smoothing of the EMA cluster sizes.
        restart_threshold: restart codes whose moving usage (vectors per batch) is below this
            (0: never).
        likelihood: decoder distribution of a pixel: logistic (discretized mixture of logistics)
            or categorical (softmax over the levels).
        components: logistics per pixel and channel with the logistic likelihood.
    """

    hidden: int = 64
    res_blocks: int = 2
    res_hidden: int = 32
    downsample: int = 4
    codebook_size: int = 128
    code_dim: int = 32
    beta: float = 0.25
    codebook_update: str = "ema"
    decay: float = 0.99
    epsilon: float = 1e-5
    restart_threshold: float = 1.0
    likelihood: str = "logistic"
    components: int = 2


# ------------------------------------------------------------------------------ quantiser


def perplexity(codes: torch.Tensor, K: int) -> torch.Tensor:
    """``exp(H(p))`` of the average one-hot assignment ``p`` of ``codes`` (any shape) to K codes."""
    p = torch.bincount(codes.flatten(), minlength=K).float() / max(codes.numel(), 1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with straight-through gradients, an EMA or learned codebook, and
    dead-code restarts (see the module docstring for the math).

    Buffers: ``cluster_size`` ``(K,)`` = ``N``, ``embed_sum`` ``(K, d)`` = ``m``, ``initialized``;
    the codebook ``(K, d)`` is a buffer with EMA updates, a parameter otherwise.
    """

    def __init__(self, K: int, d: int, *, update: str = "ema",
                 decay: float = 0.99, epsilon: float = 1e-5, restart_threshold: float = 1.0) -> None:
        super().__init__()
        self.K, self.d = K, d
        self.update, self.decay, self.epsilon = update, decay, epsilon
        self.restart_threshold = restart_threshold
        codebook = torch.randn(K, d) / math.sqrt(d)
        if update == "ema":
            self.register_buffer("codebook", codebook)
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("cluster_size", torch.ones(K))
        self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each row of ``z`` ``(N, d)``: ``(N,)`` long."""
        e = self.codebook.detach()
        dist = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None]  # (N, K)
        return dist.argmin(1)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise a grid ``z_e`` ``(B, d, h, w)``.

        In training mode this also updates the EMA codebook and restarts dead codes (the first
        call initialises the codebook from ``z_e``).

        Returns:
            ``z_q`` with straight-through gradient ``(B, d, h, w)``, the codes ``(B, h, w)`` and
            the terms ``commitment`` (``||z_e - sg[e]||^2``, unweighted), ``codebook``
            (``||sg[z_e] - e||^2``; 0 with EMA updates), ``perplexity`` and ``usage``.
        """
        with torch.autocast(z_e.device.type, enabled=False):  # distances and EMA in full precision
            return self._quantise(z_e.to(self.codebook.dtype))

    def _quantise(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        B, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B h w, d)
        if self.training and not bool(self.initialized):
            self._initialise(flat.detach())
        codes = self.nearest(flat.detach())  # (N,)
        z_q = self.codebook[codes]  # (N, d): the codes searched, before this step's update
        if self.training:
            self._ema_update(flat.detach(), codes)
        terms = {
            "commitment": F.mse_loss(flat, z_q.detach()),
            "codebook": (F.mse_loss(z_q, flat.detach()) if self.update == "loss"
                         else flat.new_zeros(())),
            "perplexity": perplexity(codes, self.K),
            "usage": (torch.bincount(codes, minlength=self.K) > 0).float().mean(),
        }
        if self.training and self.restart_threshold > 0:
            self._restart(flat.detach())
        z_q = z_q.view(B, h, w, d).permute(0, 3, 1, 2)  # (B, d, h, w)
        z_st = z_e + (z_q - z_e).detach()  # straight-through: value z_q, gradient to z_e only
        return z_st, codes.view(B, h, w), terms

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        """Codebook <- K random encoder outputs (repeated when the batch has fewer than K)."""
        pick = torch.randint(len(flat), (self.K,), device=flat.device)
        self.codebook.data.copy_(flat[pick])
        self.embed_sum.copy_(flat[pick])
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, self.K).type_as(flat)  # (N, K)
        n = onehot.sum(0)  # (K,)
        self.cluster_size.mul_(self.decay).add_(n, alpha=1 - self.decay)
        if self.update != "ema":
            return  # counts only, for restarts
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.K * self.epsilon) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart(self, flat: torch.Tensor) -> None:
        dead = self.cluster_size < self.restart_threshold  # (K,)
        if not dead.any():
            return
        pick = torch.randint(len(flat), (int(dead.sum()),), device=flat.device)
        self.codebook.data[dead] = flat[pick]
        self.embed_sum[dead] = flat[pick]
        self.cluster_size[dead] = 1.0


# ------------------------------------------------------------------------ encoder, decoder


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` ([1], Sec. 4.1)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, hidden, 3, padding=1)
        self.proj = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def encoder(in_channels: int, c: VQVAEConfig) -> nn.Sequential:
    steps = int(math.log2(c.downsample))
    layers: list[nn.Module] = []
    ch = in_channels
    for i in range(steps):  # 4x4 stride-2 convolutions halve the size
        out = c.hidden if i > 0 else max(c.hidden // 2, 1)
        layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.ReLU()]
        ch = out
    layers.append(nn.Conv2d(ch, c.hidden, 3, padding=1))
    layers += [ResidualBlock(c.hidden, c.res_hidden) for _ in range(c.res_blocks)]
    layers += [nn.ReLU(), nn.Conv2d(c.hidden, c.code_dim, 1)]
    return nn.Sequential(*layers)


def decoder(out_channels: int, c: VQVAEConfig) -> nn.Sequential:
    steps = int(math.log2(c.downsample))
    layers: list[nn.Module] = [nn.Conv2d(c.code_dim, c.hidden, 3, padding=1)]
    layers += [ResidualBlock(c.hidden, c.res_hidden) for _ in range(c.res_blocks)]
    ch = c.hidden
    for i in range(steps):  # 4x4 stride-2 transposed convolutions double the size
        out = c.hidden if i < steps - 1 else max(c.hidden // 2, 1)
        layers += [nn.ReLU(), nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1)]
        ch = out
    # C L logits per pixel from a 1x1 convolution: a 4x4 transposed convolution straight to
    # C L = 256 maps would cost most of the network's time
    layers += [nn.ReLU(), nn.Conv2d(ch, out_channels, 1)]
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------ the model


@register(
    "vqvae",
    "VQ-VAE: conv autoencoder with a discrete code grid (EMA codebook, dead-code restarts)",
    presets={
        # van den Oord et al. 2017, Sec. 4.1 (CIFAR-10 / ImageNet): two stride-2 convolutions,
        # 256 hidden units, two residual blocks (3x3 -> 1x1), K = 512, beta = 0.25; residual
        # width and code dimension are not stated for images: 256 and 64 (Sonnet's example).
        "paper": {"hidden": 256, "res_blocks": 2, "res_hidden": 256, "downsample": 4,
                  "codebook_size": 512, "code_dim": 64, "beta": 0.25, "codebook_update": "ema",
                  "decay": 0.99},
    },
)
class VQVAE(Model):
    """VQ-VAE over discrete images ``(C, H, W)`` with ``L <= 256`` levels.

    The loss dict holds ``loss`` (minimised), ``recon`` (``-log p(x | z_q)`` in nats per
    dimension), ``commitment``, ``perplexity``, ``usage`` and ``mse`` (of the decoder's mean on
    [0, 1] pixels); ``codebook`` too with ``codebook_update="loss"``. Images whose sides are not
    multiples of ``downsample`` are zero-padded on the bottom/right and the output cropped
    (28 x 28 with ``downsample=8`` gives a 4 x 4 grid).

    Raises:
        ConfigError: non-image or continuous data, more than 256 levels, or invalid options.
    """

    reconstructs = True
    encodes = True  # the encoder output before quantisation (representation)

    Config = VQVAEConfig

    def __init__(self, spec: DataSpec, config: VQVAEConfig | None = None) -> None:
        c = config or VQVAEConfig()
        super().__init__(spec, c)
        self.require(levels=True, kinds=("image",), max_levels=256)
        if len(spec.shape) != 3:
            raise ConfigError(f"VQVAE expects images (C, H, W), got shape {spec.shape}")
        if c.downsample not in (2, 4, 8):
            raise ConfigError(f"VQVAE downsample must be 2, 4 or 8, got {c.downsample}")
        if c.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, "
                              f"got {c.likelihood!r}")
        if c.components < 1:
            raise ConfigError(f"components must be >= 1, got {c.components}")
        if c.codebook_update not in CODEBOOK_UPDATES:
            raise ConfigError(f"codebook_update must be one of {', '.join(CODEBOOK_UPDATES)}, "
                              f"got {c.codebook_update!r}")
        for name in ("hidden", "res_hidden", "code_dim"):
            if getattr(c, name) < 1:
                raise ConfigError(f"VQVAE {name} must be >= 1, got {getattr(c, name)}")
        if c.codebook_size < 2:
            raise ConfigError(f"codebook_size must be >= 2, got {c.codebook_size}")
        if c.res_blocks < 0 or c.beta < 0 or c.epsilon <= 0 or c.restart_threshold < 0:
            raise ConfigError("VQVAE needs res_blocks >= 0, beta >= 0, epsilon > 0 and "
                              "restart_threshold >= 0")
        if not 0 < c.decay < 1:
            raise ConfigError(f"VQVAE decay must be in (0, 1), got {c.decay}")
        assert spec.levels is not None
        self.channels, self.height, self.width = spec.shape
        self.levels = spec.levels
        f = c.downsample
        self.code_shape = (math.ceil(self.height / f), math.ceil(self.width / f))  # (h, w)
        self.encoder = encoder(self.channels, c)
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, update=c.codebook_update,
                                         decay=c.decay, epsilon=c.epsilon,
                                         restart_threshold=c.restart_threshold)
        per_channel = self.levels if c.likelihood == "categorical" else 3 * c.components
        self.decoder = decoder(self.channels * per_channel, c)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def check_input(self, x: torch.Tensor) -> None:
        LikelihoodModel.check_input(self, x)  # type: ignore[arg-type]  # the same checks

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """``z_e(x)``: ``(B, d, h, w)`` for images ``(B, C, H, W)`` of levels."""
        self.check_input(x)
        dtype = self.decoder[0].weight.dtype
        x = x.to(self.device, dtype) / (self.levels - 1) * 2 - 1  # levels -> [-1, 1]
        f = self.config.downsample
        h, w = self.code_shape
        x = F.pad(x, (0, w * f - self.width, 0, h * f - self.height))  # (B, C, h f, w f)
        return self.encoder(x)

    def decoder_output(self, z_q: torch.Tensor) -> torch.Tensor:
        """The decoder's distribution parameters ``(B, C, P, H, W)`` for a quantised grid
        ``(B, d, h, w)``: ``P = L`` logits (categorical) or ``3M`` mixture logits, locations and
        log-scales (logistic). Parameters sit on axis 2 so that no ``B C H W P`` copy is made."""
        out = self.decoder(z_q)[:, :, :self.height, :self.width]  # crop the padding
        return out.reshape(len(out), self.channels, -1, self.height, self.width)

    def _mixture(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``logit_pi, mu, log_s``, each ``(B, C, H, W, M)``, of logistic decoder parameters."""
        params = params if params.dtype == torch.float64 else params.float()
        return tuple(t.movedim(2, -1) for t in params.chunk(3, dim=2))  # type: ignore[return-value]

    def pixel_log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z_q) = sum`` over pixels and channels, ``(B,)``, for decoder parameters
        ``(B, C, P, H, W)`` and images of levels ``(B, C, H, W)``."""
        if self.config.likelihood == "categorical":
            logp = F.log_softmax(params if params.dtype == torch.float64 else params.float(), dim=2)
            return logp.gather(2, x.long().unsqueeze(2)).flatten(1).sum(1)
        return discretized_logistic_mixture_log_prob(x, *self._mixture(params), self.levels).flatten(1).sum(1)

    def level_log_probs(self, params: torch.Tensor) -> torch.Tensor:
        """``log p(x_i = l | z_q)`` for every level: ``(B, C, H, W, L)``."""
        if self.config.likelihood == "categorical":
            return F.log_softmax(params.float(), dim=2).movedim(2, -1)
        return discretized_logistic_mixture_table(*self._mixture(params), self.levels)

    def pixel_mean(self, params: torch.Tensor) -> torch.Tensor:
        """The decoder's mean intensity on [0, 1], ``(B, C, H, W)`` (logistic: the mixture's
        mean location, clipped to the pixel range)."""
        if self.config.likelihood == "categorical":
            p = F.softmax(params.float(), dim=2)
            return (p * torch.arange(self.levels, device=p.device).view(1, 1, -1, 1, 1)).sum(2) / (
                self.levels - 1)
        logit_pi, mu, _ = self._mixture(params)
        return ((F.softmax(logit_pi, -1) * mu).sum(-1).clamp(-1, 1) + 1) / 2

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The representation ``unsup probe`` judges: the encoder's output ``z_e(x)`` before
        quantisation, flattened, ``(B, d h w)`` (the code grid is its nearest codebook vectors;
        unlike the codes it is differentiable, so it can be fine-tuned)."""
        return self.encode_continuous(x).flatten(1).float()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code grid ``k(x)``: ``(B, h, w)`` long (no codebook update, whatever the mode)."""
        z = self.encode_continuous(x)
        B, d, h, w = z.shape
        return self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d)).view(B, h, w)

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        h, w = self.code_shape
        if codes.dim() != 3 or tuple(codes.shape[1:]) != (h, w) or codes.is_floating_point():
            raise ConfigError(f"VQVAE decodes integer code grids of shape (B, {h}, {w}), got "
                              f"{codes.dtype} of shape {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ConfigError(f"codes must be in [0, {self.codebook_size - 1}]")
        return self.quantizer.codebook[codes.to(self.device)].permute(0, 3, 1, 2)  # (B, d, h, w)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Images of levels ``(B, C, H, W)`` from code grids ``(B, h, w)``.

        Args:
            codes: long tensor of code indices.
            temperature: ``None``: the decoder's mean intensity rounded to a level (what pictures
                show: the per-pixel mode of a wide logistic sits on an end level, so an early
                model's modes look binary); otherwise a draw from ``softmax(log p / T)``, and
                ``T = 0`` the most likely level of each pixel.
        """
        params = self.decoder_output(self._embed(codes))
        if temperature is None:
            return (self.pixel_mean(params) * (self.levels - 1)).round().long()
        return sample_categorical(self.level_log_probs(params), temperature)  # table (B, C, H, W, L)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the decoder's mean image (rounded) given the codes of ``x``."""
        return self.decode(self.encode(x))

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z_q(x))`` in nats per example, ``(B,)`` (no codebook update)."""
        z = self.encode_continuous(x)
        B, d, h, w = z.shape
        codes = self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d)).view(B, h, w)
        return self.pixel_log_prob(self.decoder_output(self._embed(codes)), x.to(self.device))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["x"]
        z_e = self.encode_continuous(x)
        x = x.to(self.device)
        z_q, _, terms = self.quantizer(z_e)
        params = self.decoder_output(z_q)  # (B, C, P, H, W)
        recon = -self.pixel_log_prob(params, x).mean() / self.spec.dims
        loss = recon + self.config.beta * terms["commitment"] + terms["codebook"]
        mse = (self.pixel_mean(params.detach()) - x / (self.levels - 1)).pow(2).mean()
        out = {"loss": loss, "recon": recon, "commitment": terms["commitment"],
               "perplexity": terms["perplexity"], "usage": terms["usage"], "mse": mse}
        if self.config.codebook_update == "loss":
            out["codebook"] = terms["codebook"]
        return out


# ------------------------------------------------------------------- VQ-VAE + learned prior


class VQVAEWithPrior(LikelihoodModel):
    """A trained VQ-VAE and an autoregressive prior over its code grids, as one likelihood model.

    ``log_prob(x, y)`` is the lower bound ``log p_prior(k(x) | y) + log p(x | z_q(x))`` in nats
    (``exact_likelihood = False``), so :func:`unsup.train.evaluate` reports bits/dim of ``x`` as an
    upper bound; ``sample`` draws code grids from the prior and decodes them.

    Args:
        vqvae: the autoencoder.
        prior: a :class:`LikelihoodModel` over ``(1, h, w)`` images with ``K`` levels (e.g. a
            ``gated-pixelcnn`` trained with ``--data vq-codes:RUN_DIR``); class-conditional
            priors take the labels ``y``.

    Raises:
        ConfigError: the prior does not model this VQ-VAE's code grids.
    """

    exact_likelihood = False

    def __init__(self, vqvae: VQVAE, prior: LikelihoodModel) -> None:
        super().__init__(vqvae.spec, None)
        want = (1, *vqvae.code_shape)
        if tuple(prior.spec.shape) != want or prior.spec.levels != vqvae.codebook_size:
            raise ConfigError(f"the prior models data of shape {prior.spec.shape} with "
                              f"{prior.spec.levels} levels; this VQ-VAE's codes are {want} with "
                              f"{vqvae.codebook_size} levels: train it with --data vq-codes:RUN_DIR")
        self.vqvae, self.prior = vqvae, prior
        self.num_classes = prior.num_classes

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x)
        codes = self.vqvae.encode(x)[:, None]  # (B, 1, h, w)
        y = self.labels(y, len(x))  # None for an unconditional prior
        return self.prior.log_prob(codes, y) + self.vqvae.log_likelihood(x)

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               **options: Any) -> torch.Tensor:
        """``n`` images: code grids from the prior at ``temperature`` (``options`` such as
        ``fast`` go to the prior's sampler), decoded to the mean image given the codes."""
        codes = self.prior.sample(n, y=y, temperature=temperature, **options)  # (n, 1, h, w)
        return self.vqvae.decode(codes[:, 0])

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise ConfigError("VQVAEWithPrior combines two trained runs; train the VQ-VAE and the "
                          "prior separately")
