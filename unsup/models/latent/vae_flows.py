"""VAEs with normalizing flows: a MAF prior ``p(z)``, and an IAF posterior ``q(z | x)``.

Both models are :class:`~unsup.models.latent.vae.VAE` subclasses that replace one piece of the model (the
prior or the approximate posterior) and inherit everything else: the decoders, the training bound
``L_k`` (ELBO for ``k = 1``), the importance-sampled ``log p^(x)`` with its standard error, and the
sampler. Neither KL has a closed form, so both set ``analytic_kl = False`` and the ELBO's KL is the
one-sample Monte-Carlo estimate ``log q(z | x) - log p(z)`` at the reparameterised ``z``.

**Flow prior** (``vae-flow-prior``). The prior is a masked autoregressive flow [1] over the
``z_dim`` latents: ``u = f(z) = f_K(.. f_1(z))`` with each ``f_k`` a MAF layer
(:class:`~unsup.models.flows.maf.MAFLayer`, a Gaussian MADE [4] of two hidden layers; orderings alternate
natural / reversed), ``u ~ N(0, I)``. By the change of variables,

    log p(z) = log N(f(z); 0, I) + log |det df/dz| = log N(f(z); 0, I) - sum_k sum_j alpha^(k)_j,

one MADE pass per layer. Sampling inverts the flow, ``z = f^-1(T u)`` with the base noise scaled by
the temperature ``T`` (``z_dim`` sequential passes per layer; ``T = 0`` gives ``f^-1(0)``, a fixed
latent, then the decoder's mode). Each MADE's output layer starts at zero, so the prior starts as
``N(0, I)``, i.e. as the plain VAE. The KL is invariant under the bijection ``f``, so
``KL(q(z | x) || p(z)) = KL(q_f(u | x) || N(0, I))`` with ``q_f`` the posterior pushed through
``f``: for the bound, an autoregressive prior does what an inverse autoregressive transform of the
posterior would, and in addition it shapes the latents the decoder sees when sampling [2].

**IAF posterior** (``vae-iaf``). The encoder emits a mean, a log standard deviation and a context
vector ``h`` of ``context`` units. With ``eps ~ N(0, I)`` [3],

    z_0 = mu(x) + sigma(x) * eps,
    [m_t, s_t] = MADE_t(z_{t-1}; h),   sigma_t = sigmoid(s_t + b),
    z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,                  t = 1 .. T (= iaf_steps),

where ``MADE_t`` is autoregressive in ``z_{t-1}`` (so ``m_{t,j}, s_{t,j}`` depend on
``z_{t-1,<j}`` only) and sees ``h`` through an unmasked map into its first hidden layer. The
update is a convex combination of the old value and ``m_t`` (the gated form [3] recommends for
numerical stability), and ``b = 1`` starts every gate open towards ``z_{t-1}`` (``sigma_t`` near
0.73 while the MADE's output layer is still zero). Each step's Jacobian is triangular with
diagonal ``sigma_t``, so

    log q(z_T | x) = log N(eps; 0, I) - sum_j log sigma_j(x) - sum_t sum_j log sigma_{t,j},

with ``log sigma_t`` computed as ``logsigmoid(s_t + b)``. Consecutive steps use reversed orderings,
so the composition is not triangular and every coordinate can depend on every other. Drawing
``z`` and its density is one pass per step; the posterior's density at an arbitrary ``z`` is
never needed. :meth:`IAFVAE.encode` returns the image of ``eps = 0`` (the transformed mean of
``q_0``), not ``E_q[z]``, which has no closed form.

**Free bits** with a sampled KL: the base class floors each latent dimension's batch-averaged KL
at ``free_bits``; without a per-dimension KL the whole KL counts as one term, so ``free_bits`` is
a floor on the total KL in nats per example, ``max(lambda, E_x KL)`` ([3] floors groups of
latents; here the group is the whole latent vector).

References:
    [1] Papamakarios, Pavlakou, Murray. Masked Autoregressive Flow for Density Estimation.
        NeurIPS 2017.
    [2] Chen, Kingma, Salimans, Duan, Dhariwal, Schulman, Sutskever, Abbeel. Variational Lossy
        Autoencoder. ICLR 2017.
    [3] Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved Variational Inference
        with Inverse Autoregressive Flow. NeurIPS 2016.
    [4] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for Distribution
        Estimation. ICML 2015.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.flows.layers import Sequential
from unsup.models.flows.maf import GaussianMADE, MAFLayer, ordering
from unsup.models.latent.parts import LOG_2PI
from unsup.models.latent.vae import PAPER, VAE, VAEConfig

MADE_HIDDEN_LAYERS = 2  # hidden layers of every MADE here (prior layers and IAF steps)
GATE_BIAS = 1.0  # b in sigma_t = sigmoid(s_t + b) (module docstring)


def _check_sizes(name: str, **sizes: object) -> None:
    """Raise a :class:`ConfigError` unless every size is an integer >= 1."""
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise ConfigError(f"{name} needs {', '.join(sizes)} to be integers >= 1; got "
                          + ", ".join(f"{k}={v!r}" for k, v in bad.items()))


def _config_doc(model: str, extra: str) -> str:
    """:class:`VAEConfig`'s docstring for ``model``, free bits described for a sampled KL, with
    ``extra`` attribute lines appended (the CLI builds ``--help`` from ``Attributes:``)."""
    doc = (VAEConfig.__doc__ or "").replace(":class:`VAE`", f":class:`{model}`")
    per_dim = "KL floor in nats per latent dimension"
    assert per_dim in doc  # keep the CLI help true for a KL without per-dimension terms
    doc = doc.replace(per_dim, "floor in nats on the whole sampled KL, counted as one term")
    return doc.rstrip() + "\n" + extra


def _log_normal(u: torch.Tensor) -> torch.Tensor:
    """``log N(u; 0, I)`` over the last dimension."""
    return -0.5 * (u.pow(2) + LOG_2PI).sum(-1)


# ----------------------------------------------------------------------------- flow prior


@dataclass
class FlowPriorVAEConfig(VAEConfig):
    prior_layers: int = 2
    prior_hidden: int = 128


FlowPriorVAEConfig.__doc__ = _config_doc("FlowPriorVAE", """\
        prior_layers: MAF layers of the prior over z (orderings alternate natural / reversed).
        prior_hidden: units per hidden layer (two layers) of each prior MADE.
""")

# Neither [1] nor [2] trained this MLP model: Burda et al.'s MNIST MLP (the vae paper preset) with
# a prior of MAF's MNIST shape, 5 MADEs of two 1024-unit layers [1]. Our combination.
_FLOW_PRIOR_PAPER = {**PAPER, "prior_layers": 5, "prior_hidden": 1024}


@register("vae-flow-prior", "VAE with a MAF prior p(z) over the latents (sampled KL, "
          "importance-sampled log p(x))", presets={"paper": _FLOW_PRIOR_PAPER})
class FlowPriorVAE(VAE):
    """A VAE whose prior is a masked autoregressive flow (module docstring).

    Raises:
        ConfigError: as :class:`VAE`; ``prior_layers`` or ``prior_hidden`` not an integer >= 1.
    """

    Config = FlowPriorVAEConfig
    analytic_kl = False
    bits_back = False  # p(z) is a flow, not a Gaussian level

    def __init__(self, spec: DataSpec, config: FlowPriorVAEConfig | None = None) -> None:
        c = config or self.Config()
        super().__init__(spec, c)
        _check_sizes("vae-flow-prior", prior_layers=c.prior_layers, prior_hidden=c.prior_hidden)
        d = self.z_dim
        self.prior_flow = Sequential(*(
            MAFLayer(GaussianMADE(d, c.prior_hidden, MADE_HIDDEN_LAYERS, ordering(d, k % 2 == 1), seed=k))
            for k in range(c.prior_layers)))

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log N(f(z); 0, I) + log |det df/dz|`` over the last dimension of ``z``."""
        u, logdet = self.prior_flow(z.reshape(-1, self.z_dim))  # (N, z), (N,)
        return (_log_normal(u) + logdet).view(z.shape[:-1])

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``z = f^-1(T u)``, ``u ~ N(0, I)``: ``(n, z_dim)`` (``z_dim`` passes per layer)."""
        w = next(self.prior_flow.parameters())
        u = torch.randn(n, self.z_dim, device=w.device, dtype=w.dtype) * temperature
        return self.prior_flow.inverse(u)


# -------------------------------------------------------------------------- IAF posterior


class IAFStep(nn.Module):
    """``z -> sigma * z + (1 - sigma) * m`` with ``[m, s] = MADE(z; h)``, ``sigma = sigmoid(s + b)``;
    ``forward`` also returns ``sum_j log sigma_j``, the step's ``log |det|`` (module docstring)."""

    def __init__(self, dims: int, hidden: int, context: int, reverse: bool, seed: int) -> None:
        super().__init__()
        self.made = GaussianMADE(dims, hidden, MADE_HIDDEN_LAYERS, ordering(dims, reverse), seed=seed,
                                 context=context)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self.made(z, h)
        s = s + GATE_BIAS
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(-1)


@dataclass
class IAFVAEConfig(VAEConfig):
    iaf_steps: int = 2
    iaf_hidden: int = 128
    context: int = 32


IAFVAEConfig.__doc__ = _config_doc("IAFVAE", """\
        iaf_steps: IAF steps applied to the Gaussian posterior draw (orderings alternate).
        iaf_hidden: units per hidden layer (two layers) of each IAF step's MADE.
        context: size of the context vector h the encoder passes to every IAF step.
""")

# [3] on MNIST, from memory: 32 latents, 2 IAF steps whose MADEs have 320 hidden units ("depth 2,
# width 320"), with ResNet encoders/decoders that we approximate by the conv pair. The context size
# is our choice.
_IAF_PAPER = {"arch": "conv", "z_dim": 32, "iaf_steps": 2, "iaf_hidden": 320, "context": 64}


@register("vae-iaf", "VAE with an inverse autoregressive flow posterior q(z|x) (context-"
          "conditioned MADE steps; sampled KL)", presets={"paper": _IAF_PAPER})
class IAFVAE(VAE):
    """A VAE whose approximate posterior is a Gaussian followed by IAF steps (module docstring).

    Raises:
        ConfigError: as :class:`VAE`; ``iaf_steps``, ``iaf_hidden`` or ``context`` not an integer
            >= 1.
    """

    Config = IAFVAEConfig
    analytic_kl = False
    bits_back = False  # q(z | x) is a flow, not a Gaussian level

    def __init__(self, spec: DataSpec, config: IAFVAEConfig | None = None) -> None:
        c = config or self.Config()
        super().__init__(spec, c)
        _check_sizes("vae-iaf", iaf_steps=c.iaf_steps, iaf_hidden=c.iaf_hidden, context=c.context)
        last = self.encoder[-1]  # the linear map to (mu, log sigma) of both the mlp and conv arch
        self.encoder[-1] = nn.Linear(last.in_features, 2 * self.z_dim + c.context)
        self.steps = nn.ModuleList(IAFStep(self.z_dim, c.iaf_hidden, c.context, t % 2 == 1, seed=t)
                                   for t in range(c.iaf_steps))

    def encoder_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mu``, ``log sigma`` of ``q_0`` (each ``(B, z_dim)``) and the context ``h``,
        ``(B, context)``."""
        out = self.encoder(self._input(x))
        z = self.z_dim
        return out[:, :z], out[:, z:2 * z], out[:, 2 * z:]

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian ``q_0(z_0 | x)`` before the IAF steps: mean and log standard deviation."""
        mu, log_s, _ = self.encoder_outputs(x)
        return mu, log_s

    def transform(self, eps: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor, h: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise ``eps`` ``(k, B, z_dim)`` to ``z_T``, with ``log |det dz_T/d eps|`` ``(k, B)``, for
        encoder outputs of ``B`` examples."""
        k, b, d = eps.shape
        z = (mu + torch.exp(log_s) * eps).reshape(k * b, d)
        hh = h.expand(k, *h.shape).reshape(k * b, h.shape[-1])
        logdet = log_s.sum(-1).expand(k, b).reshape(k * b)
        for step in self.steps:
            z, ld = step(z, hh)
            logdet = logdet + ld
        return z.view(k, b, d), logdet.view(k, b)

    def draw_posterior(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` draws ``z_T ~ q(z | x)`` per example and their ``log q(z_T | x)``: ``(k, B, z_dim)``
        and ``(k, B)``."""
        mu, log_s, h = self.encoder_outputs(x)
        eps = torch.randn(k, *mu.shape, device=mu.device, dtype=mu.dtype)
        z, logdet = self.transform(eps, mu, log_s, h)
        return z, _log_normal(eps) - logdet

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The IAF image of ``eps = 0`` (not ``E_q[z]``, which has no closed form), ``(B, z_dim)``."""
        self.check_input(x)
        mu, log_s, h = self.encoder_outputs(x.to(self.device))
        return self.transform(torch.zeros_like(mu)[None], mu, log_s, h)[0][0]
