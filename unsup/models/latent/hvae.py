"""A two-level hierarchical VAE with top-down inference (the Ladder VAE's posterior), or
bottom-up inference (the Bit-Swap posterior).

Generative model, two stochastic levels [1, 2]:

    p(z2) = N(0, I),   p(z1 | z2) = N(mu_p(z2), diag s_p(z2)^2),   p(x | z1)  (a latent.py likelihood),

so ``p(x) = int p(x | z1) p(z1 | z2) p(z2) dz1 dz2``; ``x`` depends on ``z2`` only through ``z1``.

Inference runs the network twice, as in [1] (and the top-down scheme of [2]). A bottom-up pass over
``x`` gives deterministic features ``d1`` (the last hidden layer of the :mod:`~unsup.models.latent.parts`
encoder, MLP or conv) and from them ``d2``:

    q(z2 | x)      = N(mu_2(d2), diag s_2(d2)^2),
    (m, t)         = a bottom-up Gaussian estimate for z1 read off d1 (mean m, scale t),
    q(z1 | z2, x)  = N(mu_q, diag s_q^2),   s_q^-2 = t^-2 + s_p(z2)^-2,
                                            mu_q   = (m t^-2 + mu_p(z2) s_p(z2)^-2) s_q^2,

i.e. the top-down prior of ``z1`` given the sampled ``z2`` and the bottom-up estimate are combined
by precision weighting [1] (the product of the two Gaussian densities, renormalised). The generative
top-down network ``z2 -> (mu_p, s_p)`` is shared between ``p`` and ``q``, so the posterior of the
lower level is a data-driven correction of its prior rather than a separate guess, and ``q`` and
``p`` share the top-down dependence of ``z1`` on ``z2``.

**Bottom-up inference** (``inference="bottom-up"``, [4]): the posterior is a Markov chain that
starts at the data,

    q(z1 | x) = N(m, diag t^2)        (the bottom-up estimate above, alone),
    q(z2 | z1) = N(mu_2(z1), diag s_2(z1)^2),

so ``z2`` is inferred from ``z1`` and not from ``x``. The generative model is the same. The bound
loses the top-down correction of ``q(z1)``, but a coder can then encode ``x`` before it draws
``z2`` (Bit-Swap's ordering of bits-back coding, :mod:`unsup.codec.bitsback`). Neither KL is in
closed form given the other level's draw: ``kl1`` is the one-sample ``log q(z1 | x) - log p(z1 | z2)``
per dimension and ``kl2`` the closed-form ``KL(q(z2 | z1) || N(0, I))`` at the drawn ``z1``.

**Through the VAE's hooks.** The latent is the concatenation ``z = [z1, z2]`` (``z1 + z2``
dimensions): ``draw_posterior`` draws ``z2`` then ``z1`` (both reparameterised) and returns
``log q(z1, z2 | x) = log q(z2 | x) + log q(z1 | z2, x)``; ``prior_log_prob`` is
``log p(z2) + log p(z1 | z2)``; the decoder reads ``z1`` only. The importance weights
``w = p(x | z1) p(z1 | z2) p(z2) / q(z1, z2 | x)``, the ``L_k`` bound, the importance-sampled
``log p^(x)`` with its standard error and the sampler are :class:`~unsup.models.latent.vae.VAE`'s.

**Training.** With ``k = 1`` the ELBO is ``E_q[log p(x | z1)] - KL1 - KL2`` with

    KL2 = KL(q(z2 | x) || N(0, I))                             (closed form),
    KL1 = E_{q(z2 | x)} KL(q(z1 | z2, x) || p(z1 | z2))        (closed form given the sampled z2),

both per latent dimension, so ``beta``, ``kl_anneal_steps`` (the "warm-up" of [1]) and ``free_bits``
(per dimension of either level [2]) act exactly as in the VAE. ``k > 1`` trains ``L_k``. The loss
dict adds ``kl1`` and ``kl2`` in nats per example: a level whose KL goes to 0 has collapsed onto
its prior and carries no information about ``x``.

``active_units_per_level(x)`` counts, per level, the dimensions with ``Var_x(E_q[z_j]) > 0.01``
[3]; the mean of ``z1`` is taken at ``z2`` = its posterior mean. A unit of ``z1`` can count as
active only because its prior mean follows ``z2``; ``kl1`` is the sharper diagnostic of collapse.

References:
    [1] Sønderby, Raiko, Maaløe, Sønderby, Winther. Ladder Variational Autoencoders. NeurIPS 2016.
    [2] Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved Variational Inference
        with Inverse Autoregressive Flow. NeurIPS 2016.
    [3] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
    [4] F. Kingma, Abbeel, Ho. Bit-Swap: Recursive Bits-Back Coding for Lossless Compression with
        Hierarchical Latent Variables. ICML 2019.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.latent.parts import LOG_2PI, mlp
from unsup.models.latent.vae import VAE, VAEConfig


@dataclass
class HVAEConfig(VAEConfig):
    """Hyper-parameters of :class:`HVAE` (the VAE's, with two latent levels).

    Attributes:
        arch: ``mlp`` (any data, flattened) or ``conv`` (images, height and width multiples of 4):
            the bottom-up network of x and the decoder p(x | z1).
        z_dim: not used (give z_dims); must stay unset.
        z_dims: sizes of the two latent levels, [z1, z2] (z1 next to the data).
        hidden: widths of the MLP bottom-up network's hidden layers (the decoder mirrors them).
        top_hidden: widths of the hidden layers of the two networks between the levels:
            d1 -> q(z2 | x) (bottom-up inference: z1 -> q(z2 | z1)) and z2 -> p(z1 | z2).
        inference: ``top-down`` (``q(z2 | x) q(z1 | z2, x)``) or ``bottom-up``
            (``q(z1 | x) q(z2 | z1)``, the order Bit-Swap coding needs).
        channels: channels of the conv encoder's first layer (the second has twice as many).
        activation: ``relu``, ``tanh`` or ``elu``.
        decoder: ``auto`` (by the data), ``bernoulli``, ``gaussian`` or ``logistic``.
        k: importance samples of the training bound (1: the ELBO).
        beta: weight of the KL terms (k = 1 only).
        free_bits: KL floor in nats per latent dimension of either level (k = 1 only; 0: off).
        kl_anneal_steps: steps of linear warm-up of the KL weight from 0 to beta (k = 1 only).
        eval_samples: importance samples K of the log p(x) estimate used for evaluation.
        eval_chunk: max (example, sample) pairs per decoder pass during evaluation.
    """

    z_dims: list[int] = field(default_factory=lambda: [32, 16])
    top_hidden: list[int] = field(default_factory=lambda: [128])
    inference: str = "top-down"


# The first two of the Ladder VAE's five MNIST levels [1]: 512- and 256-unit deterministic blocks,
# 64 and 32 latents, a KL warm-up (there: 200 epochs; here 20k steps), 5000 importance samples.
PAPER = {"arch": "mlp", "hidden": [512, 512], "top_hidden": [256, 256], "z_dims": [64, 32],
         "kl_anneal_steps": 20000, "eval_samples": 5000}


def normal_log_prob(z: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor, per_dim: bool = False
                    ) -> torch.Tensor:
    """``log N(z; mu, diag exp(log_s)^2)`` summed over the last dimension (``per_dim``: not summed)."""
    lp = -0.5 * ((z - mu) * torch.exp(-log_s)).pow(2) - log_s - 0.5 * LOG_2PI
    return lp if per_dim else lp.sum(-1)


def normal_kl(mu_q: torch.Tensor, log_s_q: torch.Tensor, mu_p: torch.Tensor, log_s_p: torch.Tensor
              ) -> torch.Tensor:
    """``KL(N(mu_q, s_q^2) || N(mu_p, s_p^2))`` per dimension (not summed)."""
    return (log_s_p - log_s_q + 0.5 * (torch.exp(2 * (log_s_q - log_s_p))
                                       + ((mu_q - mu_p) * torch.exp(-log_s_p)).pow(2)) - 0.5)


@register("hvae", "Hierarchical VAE: two Gaussian latent levels, top-down (Ladder VAE) inference; "
          "per-level KL; importance-sampled log p(x)", presets={"paper": PAPER})
class HVAE(VAE):
    """Two-level VAE with precision-weighted top-down inference (module docstring).

    Raises:
        ConfigError: everything :class:`~unsup.models.latent.vae.VAE` rejects; ``z_dim`` set; ``z_dims``
            not two positive sizes; ``top_hidden`` not a list of positive widths.
    """

    Config = HVAEConfig
    analytic_kl = False  # the KL of z1 is to a conditional prior, not to N(0, I)

    def __init__(self, spec: DataSpec, config: HVAEConfig | None = None) -> None:
        c = config or self.Config()
        if c.z_dim is not None:
            raise ConfigError(f"hvae sizes its two latent levels with z_dims (e.g. --z-dims 32 16), "
                              f"not z_dim; got z_dim={c.z_dim}")
        zd = list(c.z_dims)
        if len(zd) != 2 or any(not isinstance(d, int) or d < 1 for d in zd):
            raise ConfigError(f"z_dims must be two positive sizes [z1, z2], got {c.z_dims!r}")
        if any(not isinstance(h, int) or h < 1 for h in c.top_hidden):
            raise ConfigError(f"top_hidden must be a list of positive widths, got {c.top_hidden!r}")
        if c.inference not in ("top-down", "bottom-up"):
            raise ConfigError(f"inference must be top-down or bottom-up, got {c.inference!r}")
        # The VAE builds the likelihood, the bottom-up network x -> 2 z1 and the decoder z1 -> x.
        super().__init__(spec, dataclasses.replace(c, z_dim=zd[0]))
        self.config = c
        self.z_dims = (zd[0], zd[1])
        self.z_dim = zd[0] + zd[1]  # the concatenated latent [z1, z2]
        features = self.encoder[-1].in_features  # d1: the bottom-up network's last hidden layer
        self.inference = c.inference
        below = features if c.inference == "top-down" else zd[0]
        self.up = mlp([below, *c.top_hidden, 2 * zd[1]], c.activation)  # d1 (or z1) -> q(z2 | .)
        self.top_down = mlp([zd[1], *c.top_hidden, 2 * zd[0]], c.activation)   # z2 -> p(z1 | z2)

    # ------------------------------------------------------------------------- the levels

    def bottom_up(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The bottom-up pass: ``q(z2 | x)`` (mean, log sd) and the bottom-up estimate of ``z1``
        (mean ``m``, log sd ``log t``), each ``(B, z)``. Bottom-up inference: ``q(z2 | z1 = m)``."""
        d1 = self.encoder[:-1](self._input(x))
        h1 = self.encoder[-1](d1)
        z1 = self.z_dims[0]
        m, log_t = h1[:, :z1], h1[:, z1:]
        mu2, log_s2 = self.posterior2(d1 if self.inference == "top-down" else m)
        return mu2, log_s2, m, log_t

    def posterior2(self, below: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z2 | .)`` from the features ``d1`` (top-down inference) or from ``z1`` (bottom-up)."""
        h = self.up(below)
        return h[..., :self.z_dims[1]], h[..., self.z_dims[1]:]

    def prior1(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(z1 | z2)``: mean and log sd, ``(..., z1)`` for ``z2`` of shape ``(..., z2)``."""
        h = self.top_down(z2)
        return h[..., :self.z_dims[0]], h[..., self.z_dims[0]:]

    @staticmethod
    def combine(m: torch.Tensor, log_t: torch.Tensor, mu_p: torch.Tensor, log_s_p: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Precision-weighted ``q(z1 | z2, x)`` of the bottom-up ``N(m, t^2)`` and the top-down
        ``N(mu_p, s_p^2)``: mean and log sd (computed in log space, no overflow)."""
        log_s_q = -0.5 * torch.logaddexp(-2 * log_t, -2 * log_s_p)
        w = torch.sigmoid(2 * (log_s_p - log_t))  # t^-2 / (t^-2 + s_p^-2)
        return w * m + (1 - w) * mu_p, log_s_q

    def _infer(self, x: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """``k`` reparameterised draws of ``z2 ~ q(z2 | x)`` then ``z1 ~ q(z1 | z2, x)`` (bottom-up
        inference: ``z1 ~ q(z1 | x)`` then ``z2 ~ q(z2 | z1)``) with every distribution's
        parameters: ``z1 (k, B, z1)``, ``z2 (k, B, z2)``, ``log_q1``/``log_q2`` ``(k, B)``,
        ``mu2, log_s2`` (``(B, z2)``; bottom-up ``(k, B, z2)``), ``mu_q, log_s_q, mu_p, log_s_p
        (k, B, z1)``."""
        mu2, log_s2, m, log_t = self.bottom_up(x)
        if self.inference == "bottom-up":  # z1 ~ q(z1 | x), then z2 ~ q(z2 | z1)
            eps1 = torch.randn(k, *m.shape, device=m.device)
            mu_q, log_s_q = m.expand(k, *m.shape), log_t.expand(k, *m.shape)
            z1 = mu_q + torch.exp(log_s_q) * eps1
            mu2, log_s2 = self.posterior2(z1)  # (k, B, z2)
            eps2 = torch.randn_like(mu2)
            z2 = mu2 + torch.exp(log_s2) * eps2
            mu_p, log_s_p = self.prior1(z2)
        else:
            eps2 = torch.randn(k, *mu2.shape, device=mu2.device)
            z2 = mu2 + torch.exp(log_s2) * eps2
            mu_p, log_s_p = self.prior1(z2)
            mu_q, log_s_q = self.combine(m, log_t, mu_p, log_s_p)
            eps1 = torch.randn_like(mu_q)
            z1 = mu_q + torch.exp(log_s_q) * eps1
        log_q1 = -0.5 * (eps1.pow(2) + LOG_2PI).sum(-1) - log_s_q.sum(-1)
        log_q2 = -0.5 * (eps2.pow(2) + LOG_2PI).sum(-1) - log_s2.sum(-1)
        return {"z1": z1, "z2": z2, "log_q1": log_q1, "log_q2": log_q2, "mu2": mu2,
                "log_s2": log_s2, "mu_q": mu_q, "log_s_q": log_s_q, "mu_p": mu_p, "log_s_p": log_s_p}

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[z1, z2] -> (z1, z2)`` along the last dimension."""
        return z[..., :self.z_dims[0]], z[..., self.z_dims[0]:]

    # ------------------------------------------------------------------------------ hooks

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A point summary of ``q(z1, z2 | x)``: means and log sds of ``[z1, z2]``, ``(B, z1 + z2)``
        each, those of ``z1`` taken at ``z2`` = its posterior mean."""
        mu2, log_s2, m, log_t = self.bottom_up(x)
        if self.inference == "bottom-up":
            return torch.cat([m, mu2], -1), torch.cat([log_t, log_s2], -1)
        mu1, log_s1 = self.combine(m, log_t, *self.prior1(mu2))
        return torch.cat([mu1, mu2], -1), torch.cat([log_s1, log_s2], -1)

    def latent_levels(self) -> tuple[int, ...]:
        """``(z2, z1)``: ``p`` draws ``z2`` first (and so does ``q`` with top-down inference)."""
        return self.z_dims[1], self.z_dims[0]

    def posterior_level(self, x: torch.Tensor | None, drawn: list[torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """In the order of inference. Top-down: ``q(z2 | x)``, or given ``drawn = [z2]`` the
        precision-weighted ``q(z1 | z2, x)``. Bottom-up: ``q(z1 | x)``, or given ``drawn = [z1]``
        ``q(z2 | z1)`` (``x`` unused, may be None)."""
        if self.inference == "bottom-up" and drawn:
            return self.posterior2(drawn[0])
        mu2, log_s2, m, log_t = self.bottom_up(x)
        if self.inference == "bottom-up":
            return m, log_t
        return (mu2, log_s2) if not drawn else self.combine(m, log_t, *self.prior1(drawn[0]))

    def prior_level(self, drawn: list[torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(z2) = N(0, I)``, or given ``drawn = [z2]`` the top-down ``p(z1 | z2)``."""
        if drawn:
            return self.prior1(drawn[0])
        zeros = torch.zeros(n, self.z_dims[1], device=self.device)
        return zeros, zeros

    def draw_posterior(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` draws ``[z1, z2] ~ q(z2 | x) q(z1 | z2, x)`` and ``log q(z1, z2 | x)``:
        ``(k, B, z1 + z2)`` and ``(k, B)``."""
        r = self._infer(x, k)
        return torch.cat([r["z1"], r["z2"]], -1), r["log_q1"] + r["log_q2"]

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z2) + log p(z1 | z2)`` of ``z = [z1, z2]``, over the last dimension."""
        z1, z2 = self.split(z)
        return -0.5 * (z2.pow(2) + LOG_2PI).sum(-1) + normal_log_prob(z1, *self.prior1(z2))

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """Ancestral ``z2 ~ N(0, T^2 I)``, ``z1 ~ N(mu_p(z2), T^2 s_p(z2)^2)``: ``(n, z1 + z2)``."""
        z2 = torch.randn(n, self.z_dims[1], device=self.device) * temperature
        mu_p, log_s_p = self.prior1(z2)
        z1 = mu_p + torch.exp(log_s_p) * torch.randn_like(mu_p) * temperature
        return torch.cat([z1, z2], -1)

    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z1)`` for latents ``[z1, z2]`` of shape ``(N, z1 + z2)``: ``(N,)``."""
        return super().decoder_log_prob(x, self.split(z)[0])

    def decoder_draw(self, z: torch.Tensor, mode: bool = False) -> torch.Tensor:
        """One ``x ~ p(x | z1)`` (``mode``: the most likely) per latent ``[z1, z2]``."""
        return super().decoder_draw(self.split(z)[0], mode)

    # --------------------------------------------------------------------------- training

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The negative training bound in nats/dim with per-level KLs (module docstring)."""
        c = self.config
        x = batch["x"]
        self.check_input(x)
        x = x.to(self.device)
        r = self._infer(x, c.k)
        b = len(x)
        xs = x.unsqueeze(0).expand(c.k, *x.shape).reshape(c.k * b, *x.shape[1:])
        log_px_z = super().decoder_log_prob(xs, r["z1"].reshape(c.k * b, -1)).view(c.k, b)
        if self.inference == "top-down":  # both in closed form given the drawn z2
            mu2, log_s2 = r["mu2"], r["log_s2"]
            kl1_j = normal_kl(r["mu_q"][0], r["log_s_q"][0], r["mu_p"][0], r["log_s_p"][0])  # (B, z1)
        else:  # KL2 closed form given the drawn z1; KL1 one-sample
            mu2, log_s2 = r["mu2"][0], r["log_s2"][0]
            z1 = r["z1"][0]
            kl1_j = (normal_log_prob(z1, r["mu_q"][0], r["log_s_q"][0], per_dim=True)
                     - normal_log_prob(z1, r["mu_p"][0], r["log_s_p"][0], per_dim=True))
        kl2_j = 0.5 * (mu2.pow(2) + torch.exp(2 * log_s2) - 1.0) - log_s2  # (B, z2)
        if c.k == 1:
            log_w = log_px_z  # unused by the ELBO
        else:
            log_p = (-0.5 * (r["z2"].pow(2) + LOG_2PI).sum(-1)
                     + normal_log_prob(r["z1"], r["mu_p"], r["log_s_p"]))
            log_w = log_px_z + log_p - r["log_q1"] - r["log_q2"]
        return self.training_terms(log_w, log_px_z, {"kl1": kl1_j, "kl2": kl2_j})

    # ------------------------------------------------------------------------------ codes

    @torch.no_grad()
    def active_units_per_level(self, x: torch.Tensor, threshold: float = 1e-2) -> tuple[int, int]:
        """Active units of ``z1`` and of ``z2``: dimensions with ``Var_x(mean) > threshold``."""
        mu = torch.cat([self.encode(xb) for xb in x.split(1024)]).double()  # (N, z1 + z2)
        active = mu.var(0) > threshold
        return int(active[:self.z_dims[0]].sum()), int(active[self.z_dims[0]:].sum())

    def active_units(self, x: torch.Tensor, threshold: float = 1e-2) -> int:
        """Active units of both levels together."""
        return sum(self.active_units_per_level(x, threshold))
