"""Building blocks shared by the likelihood models: masked layers and output distributions.

Masked layers make a network autoregressive by zeroing weights, so that output ``i`` never sees
input ``j >= i`` in the model's ordering [1, 2]:

* :class:`MaskedLinear` -- a linear layer ``y = (W * M) x + b`` with a 0/1 mask buffer ``M``
  (MADE [1]; the mask is set by the model from its connectivity degrees).
* :class:`MaskedConv2d` -- a convolution whose kernel sees only the pixels above and to the left of
  the centre (PixelCNN [2]). Mask ``A`` also hides the centre pixel (first layer: the output at a
  pixel must not see that pixel's own value); mask ``B`` shows it (later layers: the centre of
  a feature map only carries information about earlier pixels). With ``channel_groups = G`` the
  channels are split into ``G`` ordered groups (R, G, B for colour images) and at the centre
  pixel output group ``g`` sees input groups ``< g`` (mask A) or ``<= g`` (mask B) [2, Fig. 2].
* :class:`CausalConv1d` -- a left-padded (dilated) 1-D convolution: output ``t`` sees inputs
  ``<= t`` (ByteNet, WaveNet), with a one-step evaluation for samplers.

Output distributions over ``L`` discrete levels, as (log-)likelihood functions so that every model
reuses and the tests check one implementation:

* :func:`categorical_log_prob` / :func:`sample_categorical` -- softmax over ``L`` logits, with
  sampling at temperature ``T`` (logits divided by ``T``; ``T = 0`` is the argmax).
* :func:`discretized_logistic_mixture_log_prob` -- the PixelCNN++ likelihood [3]: a mixture of
  ``K`` logistics on the value rescaled to ``[-1, 1]``, each level taking the probability mass of
  its bin ``[v - 1/(L-1), v + 1/(L-1)]``, the first level all mass below and the last all above::

      P(x | mu, s) = sigmoid((v + h - mu) / s) - sigmoid((v - h - mu) / s),  v = 2x/(L-1) - 1,
      h = 1/(L-1);   P(0) = sigmoid((-1 + h - mu)/s);   P(L-1) = 1 - sigmoid((1 - h - mu)/s).

  The difference of sigmoids is computed in log space with the identity
  ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))``, so it never cancels
  catastrophically and needs none of the reference code's fallbacks.

References:
    [1] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for Distribution
        Estimation. ICML 2015.
    [2] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
    [3] Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN with Discretized
        Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from unsup.errors import ConfigError

# ----------------------------------------------------------------------------- masked layers


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask.

    The mask is a buffer of shape ``(out_features, in_features)``, initially all ones; set it with
    :meth:`set_mask` (outside any autograd graph that used the old mask). A model that switches
    between several masks passes one to :meth:`forward` instead, which leaves the buffer and any
    pending backward pass untouched.

    Args:
        in_features: input size.
        out_features: output size.
        bias: add a learned bias.
        persistent_mask: save the mask in the state dict; a model that rebuilds its masks from
            smaller saved state (MADE's degrees) turns this off to keep checkpoints small.
    """

    mask: torch.Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 persistent_mask: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features),
                             persistent=persistent_mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Copy ``mask`` (any dtype, shape ``(out_features, in_features)``) into the buffer."""
        if tuple(mask.shape) != tuple(self.mask.shape):
            raise ValueError(f"mask of shape {tuple(mask.shape)} for a layer of weight "
                             f"shape {tuple(self.mask.shape)}")
        self.mask.copy_(mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(W * M) x + b``; ``mask`` overrides the buffer for this call (mask ensembles)."""
        return F.linear(x, self.weight * (self.mask if mask is None else mask), self.bias)


def channel_group(num_channels: int, groups: int) -> torch.Tensor:
    """Group index of each of ``num_channels`` channels split into ``groups`` contiguous blocks.

    Channel ``i`` is in group ``floor(i * groups / num_channels)``, so any
    ``num_channels >= groups`` works (blocks differ in size by at most one) and an output laid out
    as ``(groups, k)`` --
    e.g. ``(C, levels)`` logits -- puts each colour's block in its own group.
    """
    if num_channels < groups:
        raise ConfigError(f"{num_channels} channels cannot be split into {groups} colour groups")
    return torch.arange(num_channels) * groups // num_channels


def conv_mask(in_channels: int, out_channels: int, kernel_size: int, mask_type: str,
              channel_groups: int = 1) -> torch.Tensor:
    """The 0/1 PixelCNN mask of a ``kernel_size`` convolution, shape ``(out, in, k, k)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size ``k``.
        mask_type: ``"A"`` (centre hidden) or ``"B"`` (centre shown), per channel group.
        channel_groups: number of ordered channel groups (1: all channels of a pixel together).
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"masked convolutions need an odd kernel size, got {kernel_size}")
    c = kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, kernel_size, kernel_size)
    mask[:, :, :c, :] = 1  # rows above the centre
    mask[:, :, c, :c] = 1  # left of the centre in its row
    g_out = channel_group(out_channels, channel_groups)[:, None]  # (out, 1)
    g_in = channel_group(in_channels, channel_groups)[None, :]  # (1, in)
    centre = g_out > g_in if mask_type == "A" else g_out >= g_in
    mask[:, :, c, c] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution that only sees pixels before the centre in raster order.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        mask_type: ``"A"`` for the first layer (the centre pixel is hidden), ``"B"`` after it.
        channel_groups: ordered channel groups for colour autoregression (see module docstring);
            1 treats the channels of a pixel as one step.
        bias: add a learned bias.
    """

    mask: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str,
                 *, channel_groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=bias)
        self.mask_type = mask_type
        self.channel_groups = channel_groups
        self.register_buffer(
            "mask", conv_mask(in_channels, out_channels, kernel_size, mask_type, channel_groups)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, groups={self.channel_groups}"


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution whose output at ``t`` sees inputs ``t - (k-1) d, .., t - d, t`` only.

    ``(k - 1) d`` zeros are padded on the left, so the output has the input's length (the
    "masked" convolution of ByteNet and WaveNet). :meth:`step` evaluates one time step from a
    queue of the last ``(k - 1) d`` inputs, for samplers that generate one element at a time.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: taps ``k >= 1``.
        dilation: spacing ``d >= 1`` of the taps.
        bias: add a learned bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.history = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T) -> (B, C_out, T)``."""
        return super().forward(F.pad(x, (self.history, 0)))

    def step(self, x_t: torch.Tensor, queue: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The output at one time step.

        Args:
            x_t: the input at ``t``, ``(B, C_in)``.
            queue: the inputs at ``t - (k-1) d .. t - 1``, ``(B, C_in, (k-1) d)``, as returned by
                the previous call; None at ``t = 0`` (zeros, like the padding).

        Returns:
            The output at ``t``, ``(B, C_out)``, and the queue for ``t + 1``.
        """
        if queue is None:
            queue = x_t.new_zeros(len(x_t), x_t.shape[1], self.history)
        window = torch.cat([queue, x_t[:, :, None]], dim=2)  # (B, C_in, (k-1) d + 1)
        out = super().forward(window)[:, :, 0]  # (B, C_out): the one valid output position
        return out, window[:, :, 1:]


# ------------------------------------------------------------------------ categorical outputs


def logit_width(levels: int) -> int:
    """Logits per dimension of a categorical output over ``levels`` levels.

    Binary data get one logit ``l`` per dimension, read as the two-way logits ``(0, l)``: since
    ``softmax((0, l))_1 = 1 / (1 + e^-l) = sigmoid(l)`` it is exactly the same family of
    distributions, at half the output layer and with a Bernoulli log-likelihood (one softplus)
    in place of a two-way log-softmax. Every other level count gets one logit per level.
    """
    return 1 if levels == 2 else levels


def level_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log p(v)`` for every level ``v``, shape ``(..., L)``, from logits ``(..., L)`` or from
    one binary logit ``(..., 1)`` (:func:`logit_width`); in the logits' dtype."""
    if logits.shape[-1] == 1:
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], -1)
    return F.log_softmax(logits, dim=-1)


def categorical_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of categorical log-likelihoods over all dimensions of each example.

    Args:
        logits: unnormalised log-probabilities, shape ``(B, *dims, L)``, or one binary logit
            per dimension, ``(B, *dims, 1)`` (:func:`logit_width`).
        x: long tensor of levels in ``[0, L)``, shape ``(B, *dims)``.

    Returns:
        ``sum_dims log softmax(logits)[x]``, shape ``(B,)``.
    """
    if logits.shape[-1] == 1:  # log sigmoid(+-l) = -BCE(l, x)
        picked = -F.binary_cross_entropy_with_logits(
            logits.float().squeeze(-1), x.float(), reduction="none")
    else:
        logp = F.log_softmax(logits.float(), dim=-1)
        picked = logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)  # (B, *dims)
    return picked.reshape(len(x), -1).sum(1)


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise a :class:`ConfigError` if it is negative."""
    t = float(temperature)
    if not t >= 0 or math.isinf(t):
        raise ConfigError(f"temperature must be a finite number >= 0, got {temperature}")
    return t


def sample_categorical(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Draw from ``softmax(logits / T)`` along the last axis with torch's global RNG.

    Args:
        logits: shape ``(..., L)``, or ``(..., 1)``: one binary logit ``l`` standing for
            ``(0, l)`` (:func:`logit_width`), drawn as ``u < sigmoid(l / T)``.
        temperature: ``T > 0`` sharpens (``< 1``) or flattens (``> 1``) the distribution;
            ``T = 0`` returns the argmax.

    Returns:
        Long tensor of shape ``(...)``.
    """
    t = check_temperature(temperature)
    if logits.shape[-1] == 1:
        logit = logits[..., 0].float()
        if t == 0:
            return (logit > 0).long()
        return (torch.rand_like(logit) < torch.sigmoid(logit / t)).long()
    if t == 0:
        return logits.argmax(-1)
    probs = F.softmax(logits.float() / t, dim=-1)
    # argmax p / E with E ~ Exp(1) draws from p (the Gumbel-max trick in probability space). It is
    # what torch.multinomial(p, 1) computes on the CPU -- the same draws for the same seed -- minus
    # its input checks, which cost more than the draw for a few rows (a sampler's every step).
    return (probs / torch.empty_like(probs).exponential_()).argmax(-1)


# --------------------------------------------------------- discretized logistic mixture output


def log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-d))`` for ``d > 0``, accurate for small and large ``d`` (Maechler 2012)."""
    ln2 = math.log(2.0)
    # Each branch gets inputs clamped to its own range so the unused one cannot produce inf/NaN
    # gradients through torch.where.
    small = torch.log(-torch.expm1(-d.clamp(max=ln2)))
    large = torch.log1p(-torch.exp(-d.clamp(min=ln2)))
    return torch.where(d < ln2, small, large)


def discretized_logistic_mixture_log_prob(
    x: torch.Tensor, logit_pi: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor, levels: int
) -> torch.Tensor:
    """log P(x) under a discretized mixture of logistics (PixelCNN++), stably in log space.

    Locations and scales live on the value rescaled to ``[-1, 1]`` (``v = 2x/(L-1) - 1``), as in
    PixelCNN++, so a network predicts them independently of ``levels``.

    Args:
        x: long tensor of levels in ``[0, levels)``, shape ``S``.
        logit_pi: mixture logits, shape ``S + (K,)`` (or broadcastable to it).
        mu: component locations on the ``[-1, 1]`` scale, same shape.
        log_s: component log-scales, same shape (clamped below at -7, as PixelCNN++ does).
        levels: number of levels ``L >= 2``.

    Returns:
        log-probabilities of shape ``S``.
    """
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    half = 1.0 / (levels - 1)  # half a bin on the [-1, 1] scale
    v = (2.0 * x.to(mu.dtype) / (levels - 1) - 1.0).unsqueeze(-1)  # S + (1,)
    log_s = log_s.clamp(min=-7.0)
    inv_s = torch.exp(-log_s)
    a = (v - mu + half) * inv_s  # upper edge of the bin, standardised
    b = (v - mu - half) * inv_s  # lower edge
    log_cdf_a = F.logsigmoid(a)  # log P(X <= upper edge): the first level's mass
    log_sf_b = F.logsigmoid(-b)  # log P(X >  lower edge): the last level's mass
    # log(sigmoid(a) - sigmoid(b)) = logsig(a) + logsig(-b) + log(1 - exp(-(a - b)))
    width = (2.0 * half * inv_s).clamp(min=1e-12)  # a - b, always > 0
    log_mid = log_cdf_a + log_sf_b + log1mexp(width)
    xe = x.unsqueeze(-1)
    log_comp = torch.where(xe == 0, log_cdf_a, torch.where(xe == levels - 1, log_sf_b, log_mid))
    return torch.logsumexp(F.log_softmax(logit_pi, dim=-1) + log_comp, dim=-1)


def discretized_logistic_mixture_table(
    logit_pi: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor, levels: int
) -> torch.Tensor:
    """log P(x) for every level ``x``: shape ``S + (levels,)`` for parameters of shape ``S + (K,)``.

    Sampling at temperature ``T`` draws from ``softmax(table / T)``; at ``T = 1`` that is exact.
    """
    x = torch.arange(levels, device=mu.device)  # (L,)
    shape = mu.shape[:-1]
    x = x.view((levels,) + (1,) * len(shape)).expand((levels,) + tuple(shape))  # (L, *S)
    table = discretized_logistic_mixture_log_prob(
        x, logit_pi.unsqueeze(0), mu.unsqueeze(0), log_s.unsqueeze(0), levels
    )  # (L, *S)
    return table.movedim(0, -1)  # (*S, L)
