"""PixelVAE: a VAE whose decoder ``p(x | z)`` is a small PixelCNN conditioned on the latent.

The latent model is the :class:`~unsup.models.latent.vae.VAE`'s -- ``p(z) = N(0, I)``, a Gaussian
``q(z | x)`` from the convolutional encoder of :func:`~unsup.models.latent.parts.conv_pair` -- but the
pixels are no longer independent given ``z``: in raster order (and, for ``C > 1`` channels, channel
by channel within a pixel) [1, 2],

    p(x | z) = prod_i prod_c p(x_{i,c} | x_{<i}, x_{i,<c}, z),
    p(x_{i,c} | ...) = softmax(l_{i,c}(x, z))[x_{i,c}]      over the data's L levels.

The decoder network:

* ``z`` is mapped to feature maps of the image's size by the transposed-convolution decoder of
  :func:`~unsup.models.latent.parts.conv_pair` (a linear layer to an ``H/4 x W/4`` grid, two stride-2
  transposed convolutions) with ``F = pixel_channels`` output maps ``f(z)``; masked layer ``l``
  receives ``c_l(z) = g_l * f(z)``, with a learned gain ``g_l`` per feature map (initially 1).
  (A ``1 x 1`` convolution of ``f(z)`` per layer instead about doubled the decoder's CPU time.)
* A PixelCNN [2] on ``x`` (levels rescaled to ``[-1, 1]``): a ``k x k`` mask-A convolution,
  ``h_0 = A(x) + c_0(z)``, then ``pixel_layers - 1`` residual mask-B layers
  ``h_l = h_{l-1} + B_l(relu(h_{l-1})) + c_l(z)``, and a ``1 x 1`` mask-B convolution of
  ``relu(h)`` to ``C L`` logits per pixel. For ``C > 1`` every masked layer splits its maps into
  ``C`` ordered channel groups (R -> G -> B) as :class:`~unsup.models.autoregressive.pixelcnn.PixelCNN`
  does, so
  the logits of channel ``c`` see the earlier channels of their own pixel. Binary images are the
  case ``L = 2``.

Adding ``c_0(z)`` to the first layer's output stands in for [1]'s concatenation of ``f(z)`` with
the image (a convolution of concatenated inputs is a sum of one convolution per part); the later
layers see ``z`` again, as in the conditional PixelCNN [3].

Because every logit ``l_{i,c}`` depends on ``x`` only through earlier positions,

* ``log p(x | z)`` (:meth:`PixelVAE.decoder_log_prob`) is one parallel pass over all pixels (the
  teacher-forced likelihood), and it is normalised over the ``L^{CHW}`` images;
* a draw (:meth:`PixelVAE.decoder_draw`) is sequential, one pixel (channel) at a time; each step
  evaluates only the new position from cached activations (:mod:`unsup.nn.cached_conv`), so a
  whole image costs about one forward pass plus ``H W C`` small steps. ``mode=True`` takes the
  argmax at every step (greedy decoding: the most likely *path*, not necessarily the most likely
  image); that is what ``decode``, ``reconstruct``, ``interpolate`` and ``sample(temperature=0)``
  show.

Everything else -- the ELBO / ``L_k`` training bounds, KL weighting, the importance-sampled
``log p^(x)`` with its standard error -- is the :class:`~unsup.models.latent.vae.VAE`'s, which calls the
two methods above. The estimate runs the whole decoder once per (example, sample) pair, so its
cost grows linearly in ``eval_samples``: see docs/models.md for measured times.

Image sizes need not be multiples of 4: the encoder sees the image zero-padded (on the
``[-1, 1]`` scale) at the bottom and right to the next multiple, and the decoder's feature maps are
cropped back.

References:
    [1] Gulrajani, Kumar, Ahmed, Taiga, Visin, Vazquez, Courville. PixelVAE: A Latent Variable
        Model for Natural Images. ICLR 2017.
    [2] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
    [3] van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu. Conditional Image
        Generation with PixelCNN Decoders. NeurIPS 2016.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.latent.parts import conv_pair
from unsup.models.latent.vae import VAE, VAEConfig
from unsup.nn.cached_conv import ConvCache, ConvFn, dense
from unsup.nn.layers import MaskedConv2d, categorical_log_prob, logit_width, sample_categorical


@dataclass
class PixelVAEConfig(VAEConfig):
    """Hyper-parameters of :class:`PixelVAE`.

    Attributes:
        arch: the encoder: ``conv`` only (the conv encoder of the VAE).
        z_dim: latent dimensions (None: 32).
        hidden: unused (the MLP widths of the plain VAE).
        channels: channels of the conv encoder's first layer and of the decoder's upsampling
            path (the middle layers have twice as many).
        activation: ``relu``, ``tanh`` or ``elu`` (encoder and upsampling path).
        decoder: ``auto`` only: p(x | z) is the PixelCNN's categorical over the data's levels.
        k: importance samples of the training bound (1: the ELBO).
        beta: weight of the KL term (beta-VAE; k = 1 only).
        free_bits: KL floor in nats per latent dimension (k = 1 only; 0: off).
        kl_anneal_steps: steps of linear warm-up of the KL weight from 0 to beta (k = 1 only).
        eval_samples: importance samples K of the log p(x) estimate used for evaluation.
        eval_chunk: max (example, sample) pairs per decoder pass during evaluation.
        pixel_layers: masked k x k convolutions of the PixelCNN decoder: one mask-A layer on the
            image, then pixel_layers - 1 residual mask-B layers.
        pixel_channels: feature maps of the PixelCNN layers and of the upsampled z-features.
        kernel_size: kernel of the masked convolutions (odd, >= 3).
    """

    arch: str = "conv"
    eval_chunk: int = 256
    pixel_layers: int = 3
    pixel_channels: int = 32
    kernel_size: int = 3


# Gulrajani et al. 2017, binarized MNIST, as far as the paper states it: 5 x 5 masked filters
# ("very few" PixelCNN layers; Fig. 3 varies their number) and the marginal NLL estimated with
# 1000 importance samples per image. Not stated there: the latent size and layer widths (our
# defaults), the gated no-blind-spot stacks of their MNIST model (we use plain residual layers).
PAPER = {"arch": "conv", "kernel_size": 5, "eval_samples": 1000}


@register("pixelvae", "PixelVAE: VAE with a PixelCNN decoder p(x | z) (autoregressive over pixels, "
          "conditioned on upsampled z); importance-sampled log p(x)", presets={"paper": PAPER})
class PixelVAE(VAE):
    """A VAE over discrete images with an autoregressive PixelCNN decoder (module docstring).

    Raises:
        ConfigError: non-image or continuous data, more than 256 levels, ``arch`` other than
            ``conv``, ``decoder`` other than ``auto``, ``pixel_layers`` or ``pixel_channels`` < 1
            (or fewer pixel channels than image channels), an even or < 3 ``kernel_size``, and
            everything :class:`~unsup.models.latent.vae.VAE` rejects.
    """

    Config = PixelVAEConfig
    config: PixelVAEConfig
    bits_back = False  # p(x | z) is autoregressive: coding it needs the decoder's walk (not done)

    def __init__(self, spec: DataSpec, config: PixelVAEConfig | None = None) -> None:
        c = config or self.Config()
        if spec.kind != "image" or len(spec.shape) != 3:
            raise ConfigError(f"PixelVAE expects image data (C, H, W), got {spec.kind} data of "
                              f"shape {spec.shape}")
        if spec.levels is None:
            raise ConfigError("PixelVAE models discrete pixels; use a representation such as "
                              "--represent binary or levels:K (got continuous data)")
        if spec.levels > 256:
            raise ConfigError(f"PixelVAE supports at most 256 levels, data has {spec.levels}")
        if c.arch != "conv":
            raise ConfigError(f"PixelVAE has the conv encoder only: arch must be conv, got {c.arch!r}")
        if c.decoder != "auto":
            raise ConfigError(f"PixelVAE's decoder is its PixelCNN (a categorical over the levels): "
                              f"decoder must be auto, got {c.decoder!r}")
        channels, height, width = spec.shape
        if c.pixel_layers < 1 or c.pixel_channels < 1:
            raise ConfigError(f"pixel_layers and pixel_channels must be >= 1, got {c.pixel_layers}, "
                              f"{c.pixel_channels}")
        if c.pixel_channels < channels:
            raise ConfigError(f"pixel_channels must be >= the image's {channels} channels (one "
                              f"channel group per colour), got {c.pixel_channels}")
        if c.kernel_size < 3 or c.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and >= 3, got {c.kernel_size}")
        # The VAE builds the conv encoder (and validates the shared options) for the image padded
        # to multiples of 4; the model itself describes the real data.
        padded = (channels, -(-height // 4) * 4, -(-width // 4) * 4)
        super().__init__(dataclasses.replace(spec, shape=padded), c)
        self.spec = spec
        self.padded_shape = padded
        self.channels, self.height, self.width = channels, height, width
        self.levels: int = spec.levels
        self.num_logits = logit_width(self.levels)  # per dimension: 1 for binary data
        self.groups = channels  # colours in order within a pixel (1: a grey image)

        f, g, k = c.pixel_channels, self.groups, c.kernel_size
        # z -> (N, F, H', W'): replaces the VAE's conv decoder (its encoder half is not used).
        self.decoder = conv_pair((f, *padded[1:]), self.z_dim, 1, c.channels, c.activation)[1]
        self.gains = nn.Parameter(torch.ones(c.pixel_layers, f))  # g_l: f(z)'s weight in layer l
        self.input_conv = MaskedConv2d(channels, f, k, "A", channel_groups=g)
        self.layers = nn.ModuleList(MaskedConv2d(f, f, k, "B", channel_groups=g)
                                    for _ in range(c.pixel_layers - 1))
        # Output channels laid out (C, L): colour c's logits form channel group c.
        self.output_conv = MaskedConv2d(f, channels * self.num_logits, 1, "B", channel_groups=g)

    # --------------------------------------------------------------------------- networks

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``(N, C, H, W)`` to network inputs in ``[-1, 1]``."""
        return 2.0 * x.float() / (self.levels - 1) - 1.0

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder input: the rescaled image, zero-padded to the encoder's multiple-of-4 size."""
        _, hp, wp = self.padded_shape
        return F.pad(self.scale(x), (0, wp - self.width, 0, hp - self.height))

    def conditioning(self, z: torch.Tensor) -> torch.Tensor:
        """The z-feature maps ``f(z)``, ``(N, F, H, W)``, for latents ``(N, z_dim)``."""
        return self.decoder(z)[:, :, :self.height, :self.width]

    def pixel_logits(self, inputs: torch.Tensor, feats: torch.Tensor,
                     conv: ConvFn = dense) -> torch.Tensor:
        """Logits ``(N, C, H, W, L)`` of rescaled images ``(N, C, H, W)`` given the maps ``f(z)``
        of :meth:`conditioning`; with ``conv = cache.at(i, j)`` and ``feats`` sliced to
        ``(i, j)``, only those at ``(i, j)``, ``(N, C, 1, 1, L)``."""
        gains = self.gains[:, :, None, None]  # (layers, F, 1, 1)
        h = conv(self.input_conv, inputs, source=True) + gains[0] * feats
        for layer, g_l in zip(self.layers, gains[1:], strict=True):
            h = h + conv(layer, F.relu(h)) + g_l * feats
        out = conv(self.output_conv, F.relu(h))  # (N, C L, H, W)
        out = out.view(len(out), self.channels, self.num_logits, *out.shape[-2:])
        return out.permute(0, 1, 3, 4, 2)

    # ------------------------------------------------------------------ p(x | z), replaced

    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` for images ``(N, C, H, W)`` and latents ``(N, z_dim)``: ``(N,)``, in
        one pass over all pixels (each conditional sees only earlier pixels of ``x``)."""
        return categorical_log_prob(self.pixel_logits(self.scale(x), self.conditioning(z)), x)

    @torch.no_grad()
    def decoder_draw(self, z: torch.Tensor, mode: bool = False, *, fast: bool = True) -> torch.Tensor:
        """One ``x ~ p(x | z)`` per latent, pixel by pixel in raster order (``mode``: the argmax
        at each step): long ``(N, C, H, W)``. ``fast=False`` runs the whole network for every
        step instead of the cached evaluation (the same draws for the same seed)."""
        n = len(z)
        cond = self.conditioning(z)
        x = torch.zeros(n, *self.spec.shape, dtype=torch.long, device=z.device)
        cache = ConvCache(n, self.height, self.width) if fast else None
        temperature = 0.0 if mode else 1.0
        for i in range(self.height):
            for j in range(self.width):
                for c in range(self.channels):  # colours in turn (a grey image: one step)
                    inputs = self.scale(x)
                    if cache is None:
                        logits = self.pixel_logits(inputs, cond)[:, c, i, j]  # (n, L)
                    else:
                        here = cond[:, :, i:i + 1, j:j + 1]
                        logits = self.pixel_logits(inputs, here, cache.at(i, j))[:, c, 0, 0]
                    x[:, c, i, j] = sample_categorical(logits, temperature)
        return x
