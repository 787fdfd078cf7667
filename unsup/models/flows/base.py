"""Normalizing flows over images and vectors: dequantisation, the logit transform, and bits/dim.

A flow model is an invertible network ``z = f(v)`` with a simple prior ``p_Z = N(0, I)`` (or
``N(mu_y, I)`` for a class-conditional model), so that a continuous ``v`` has the exact density

    log p(v) = log p_Z(f(v)) + log |det df/dv|                              (change of variables)

and sampling is one pass, ``v = f^{-1}(z)``, ``z ~ N(0, T^2 I)`` at temperature ``T``.

**Discrete data** (``x`` in ``{0, .., L-1}^D``, e.g. 8-bit pixels) has no density; the flow models
a dequantised ``v`` and every term that maps it back to ``x`` is accounted for:

1. *Uniform dequantisation* [1, 2]: ``y = (x + u) / L`` with ``u ~ U[0, 1)^D``. For any density
   ``p`` on ``[0, 1)^D``, ``P(x) = int_{[0,1)^D} p((x + u) / L) L^{-D} du``, and by Jensen

       log P(x) >= E_u [ log p((x + u) / L) ] - D log L,

   so the model's ``log_prob`` (one draw of ``u``) is an unbiased estimate of a lower bound on
   the discrete log-likelihood; its bits/dim is an upper bound on the true codelength, and
   ``exact_likelihood`` is False. The ``- D log L`` term is the "1/256 scaling" of 8-bit images.
2. *Logit transform* [2, Sec. 4.1]: ``p = alpha + (1 - 2 alpha) y`` keeps away from 0 and 1, then
   ``v = logit(p) = log p - log(1 - p)`` maps to the real line. Its Jacobian is diagonal:

       log |dv/dy| = sum_d [ log(1 - 2 alpha) - log p_d - log(1 - p_d) ].

So, in nats, ``log_prob(x) = log p_Z(f(v)) + log|det df/dv| + log|dv/dy| - D log L``, and the
bits/dim reported everywhere is ``-log_prob / (D ln 2)``: every term included, nothing dropped.
The logit range is the box ``|v_d| <= logit(1 - alpha)``; the prior's mass outside it belongs to
no ``x``, so the discrete distribution the model defines sums to slightly less than one and the
bound is conservative (a test integrates it on a small case).
Continuous data (``--represent float`` or the 2-D toys) is modelled as it is (no dequantisation,
no logit), and then ``log_prob`` is the exact log-density.

Sampling inverts the chain: ``v = f^{-1}(z)``, ``y = (sigmoid(v) - alpha) / (1 - 2 alpha)``,
``x = floor(L y)`` clipped to ``[0, L-1]``.

Subclasses (:mod:`unsup.models.flows.realnvp`, :mod:`unsup.models.flows.glow`, :mod:`unsup.models.flows.nice`)
build :attr:`FlowModel.flow`, an invertible map from the preprocessed ``v`` (shape of one example)
to ``z`` of the same shape. :meth:`FlowModel.encode` / :meth:`FlowModel.decode` give the latent
code of an image (dequantised at the bin centres, ``u = 1/2``) and back, for interpolation.

References:
    [1] Theis, van den Oord, Bethge. A note on the evaluation of generative models. ICLR 2016.
    [2] Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP. ICLR 2017.
    [3] Ho, Chen, Srinivas, Duan, Abbeel. Flow++. ICML 2019 (variational dequantisation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.base import LikelihoodModel
from unsup.models.flows.layers import Flow
from unsup.nn.layers import check_temperature

LOG_2PI = math.log(2 * math.pi)


class FlowModel(LikelihoodModel):
    """Base of the flow models: preprocessing, Gaussian prior, likelihood and sampling.

    Subclasses set ``self.flow`` in ``__init__`` after calling ``super().__init__`` and read
    ``self.config.alpha`` and ``self.config.conditional`` (with defaults below if absent).

    Raises:
        ConfigError: a conditional model on unlabelled data.
    """

    supports_fast_sampling = False  # sampling is already one pass
    interpolates = True
    encodes = True
    latent_map = True
    flow: Flow

    def __init__(self, spec: DataSpec, config) -> None:
        super().__init__(spec, config)
        self.require(kinds=("image", "vector"), labels=getattr(config, "conditional", False))
        self.alpha = float(getattr(config, "alpha", 0.05))
        if not 0 <= self.alpha < 0.5:
            raise ConfigError(f"alpha must be in [0, 0.5), got {self.alpha}")
        self.discrete = spec.levels is not None
        self.exact_likelihood = not self.discrete  # a dequantisation bound on discrete data
        self.num_classes = spec.num_classes if getattr(config, "conditional", False) else None
        if self.num_classes is not None:  # class-conditional prior N(mu_y, I)
            self.prior_mean = nn.Embedding(self.num_classes, spec.dims)
            nn.init.zeros_(self.prior_mean.weight)

    # ----------------------------------------------------------------------- preprocessing

    def preprocess(self, x: torch.Tensor, u: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` -> ``(v, log |dv/dx|)`` with every dequantisation and logit term (nats, ``(B,)``).

        ``u``: the dequantisation noise in ``[0, 1)`` (default: uniform draws); continuous data
        passes unchanged.
        """
        if not self.discrete:
            return x.float(), x.new_zeros(len(x), dtype=torch.float)
        levels = self.spec.levels
        assert levels is not None
        if u is None:
            u = torch.rand(x.shape, device=x.device)
        y = (x.float() + u) / levels
        p = self.alpha + (1 - 2 * self.alpha) * y
        v = torch.log(p) - torch.log1p(-p)
        dims = self.spec.dims
        logdet = (-torch.log(p) - torch.log1p(-p)).flatten(1).sum(1) + \
            dims * (math.log1p(-2 * self.alpha) - math.log(levels))
        return v, logdet

    def postprocess(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`preprocess`, rounded down to levels (continuous data: unchanged)."""
        if not self.discrete:
            return v
        levels = self.spec.levels
        assert levels is not None
        y = (torch.sigmoid(v) - self.alpha) / (1 - 2 * self.alpha)
        return torch.floor(y * levels).clamp(0, levels - 1).long()

    # ------------------------------------------------------------------------- likelihood

    def _prior_mean(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if self.num_classes is None:
            return None
        return self.prior_mean(y).view(-1, *self.spec.shape)

    def log_prior(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        mean = self._prior_mean(y)
        d = z if mean is None else z - mean
        return -0.5 * (d.pow(2).flatten(1).sum(1) + self.spec.dims * LOG_2PI)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) in nats, ``(B,)``: exact for continuous data; for discrete data one draw of
        the uniform-dequantisation lower bound (module docstring)."""
        self.check_input(x)
        x = x.to(self.device)
        y = self.labels(y, len(x))
        v, ld_pre = self.preprocess(x)
        z, ld = self.flow(v)
        return self.log_prior(z, y) + ld + ld_pre

    # --------------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` samples in one pass: ``z ~ N(mu_y, T^2 I)``, ``x = post(f^{-1}(z))``."""
        check_temperature(temperature)
        y = self.sample_labels(y, n)
        z = torch.randn(n, *self.spec.shape, device=self.device) * temperature
        mean = self._prior_mean(y)
        if mean is not None:
            z = z + mean
        return self.decode(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent code ``z = f(v)`` of data ``x``, dequantised at the bin centres: also the
        representation ``unsup probe`` judges (a flow's code has the data's dimension)."""
        self.check_input(x)
        x = x.to(self.device)
        u = torch.full(x.shape, 0.5, device=self.device) if self.discrete else None
        return self.flow(self.preprocess(x, u)[0])[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Data ``x`` of latent codes ``z``."""
        return self.postprocess(self.flow.inverse(z.to(self.device)))

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """``steps`` decodings along the line from ``encode(a)`` to ``encode(b)`` (single
        examples ``a``, ``b``): shape ``(steps, *spec.shape)``."""
        za, zb = self.encode(a[None]), self.encode(b[None])
        w = torch.linspace(0, 1, steps, device=self.device).view(-1, *[1] * len(self.spec.shape))
        return self.decode(za * (1 - w) + zb * w)

