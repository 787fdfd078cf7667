"""Variational autoencoders: the ELBO, the importance-weighted bound, and an honest log p(x).

A VAE is a latent-variable model ``p(x) = int p(x | z) p(z) dz`` with ``p(z) = N(0, I)`` in
``z_dim`` dimensions and a decoder likelihood ``p(x | z)`` (:mod:`unsup.models.latent.parts`). An encoder
gives an approximate posterior ``q(z | x) = N(mu(x), diag sigma(x)^2)``, and with importance
weights ``w_i = p(x, z_i) / q(z_i | x)``, ``z_i ~ q(z | x)`` independently [1, 2],

    L_k(x) = E[ log (1/k) sum_{i=1..k} w_i ]  <=  log p(x),
    L_1 = ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z)),   L_1 <= L_k <= L_{k'} for k <= k'.

The ELBO is trained with the reparameterisation ``z = mu + sigma eps`` and the closed-form
Gaussian KL ``sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) / 2`` [1]; ``k > 1`` (the ``iwae``
model, default ``k = 5``) trains the Monte-Carlo ``L_k`` itself [2]. Three modifications of the
ELBO's KL term (``k = 1`` only: the ``L_k`` of ``k > 1`` has no separate KL term):

* ``beta``: weight ``beta`` on the KL (beta-VAE [3]; ``beta > 1`` trades likelihood for a more
  factorised code);
* ``kl_anneal_steps = S``: the weight rises linearly from 0 to ``beta`` over the first ``S``
  training steps (a step counter buffer, so resuming a checkpoint continues the schedule);
* ``free_bits = lambda``: each latent dimension's KL, averaged over the batch, counts as at least
  ``lambda`` nats, ``sum_j max(lambda, E_x KL_j)`` [4, Sec. C.8], so the optimiser has no reason to
  push it below ``lambda`` (against posterior collapse).

The training loss is the objective in nats per data dimension; ``bpd`` is the unmodified bound
(``beta = 1``, no floor) in bits/dim, and ``kl``/``recon`` are the KL and ``-log p(x | z)`` in nats
per example.

**Evaluation.** :meth:`VAE.log_prob` is the importance-sampled estimate
``log p^(x) = log (1/K) sum_i w_i`` with ``K = eval_samples`` (1000; [2] used 5000), computed in
chunks of at most ``eval_chunk`` (example, sample) pairs so memory is bounded. ``p^(x)`` is an
unbiased estimate of ``p(x)``, so ``E log p^(x) = L_K <= log p(x)``: the reported bits/dim is a
(tight, stochastic) upper bound and ``exact_likelihood`` is False. :meth:`VAE.log_prob_with_se`
also returns the delta-method standard error of ``log p^``: with ``m`` and ``s`` the mean and the
(unbiased) standard deviation of the ``K`` weights, ``se = s / (m sqrt K)``, computed from running
log-sum-exps of ``log w`` and ``2 log w`` so it never overflows.

Validation during training scores the cheap training bound ``L_k`` instead
(:meth:`VAE.validation_log_prob`); ``unsup eval --importance-samples K`` sets ``K`` after training.

``active_units(x)`` counts the latent dimensions whose posterior mean varies over the data,
``Cov_x(E_q[z_j]) > 0.01`` [2, Sec. 5.2].

References:
    [1] Kingma, Welling. Auto-Encoding Variational Bayes. ICLR 2014.
    [2] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
    [3] Higgins et al. beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
        Framework. ICLR 2017.
    [4] Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved Variational Inference
        with Inverse Autoregressive Flow. NeurIPS 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, LikelihoodModel
from unsup.models.latent.parts import ACTIVATIONS, LOG_2PI, conv_pair, make_likelihood, mlp_pair
from unsup.nn.layers import check_temperature


@dataclass
class VAEConfig:
    """Hyper-parameters of :class:`VAE`.

    Attributes:
        arch: ``mlp`` (any data, flattened) or ``conv`` (images, height and width multiples of 4).
        z_dim: latent dimensions (None: 32, or D for vectors of fewer than 32 dimensions).
        hidden: widths of the MLP encoder's hidden layers (the decoder mirrors them).
        channels: channels of the conv encoder's first layer (the second has twice as many).
        activation: ``relu``, ``tanh`` or ``elu``.
        decoder: ``auto`` (by the data), ``bernoulli``, ``gaussian`` or ``logistic``.
        k: importance samples of the training bound (1: the ELBO).
        beta: weight of the KL term (beta-VAE; k = 1 only).
        free_bits: KL floor in nats per latent dimension (k = 1 only; 0: off).
        kl_anneal_steps: steps of linear warm-up of the KL weight from 0 to beta (k = 1 only).
        eval_samples: importance samples K of the log p(x) estimate used for evaluation.
        eval_chunk: max (example, sample) pairs per decoder pass during evaluation.
    """

    arch: str = "mlp"
    z_dim: int | None = None
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    channels: int = 32
    activation: str = "relu"
    decoder: str = "auto"
    k: int = 1
    beta: float = 1.0
    free_bits: float = 0.0
    kl_anneal_steps: int = 0
    eval_samples: int = 1000
    eval_chunk: int = 8192


# Burda et al. 2016, MNIST, one stochastic layer: 2 x 200 tanh units, 50 latents, K = 5000 at test.
PAPER = {"arch": "mlp", "hidden": [200, 200], "z_dim": 50, "activation": "tanh",
         "eval_samples": 5000}


@register("vae", "VAE: Gaussian latents, MLP or conv encoder/decoder, ELBO (beta, free bits, "
          "KL annealing); importance-sampled log p(x)", presets={"paper": {**PAPER, "k": 1}})
class VAE(LikelihoodModel):
    """A VAE over data of any shape (module docstring).

    Raises:
        ConfigError: unknown arch, activation or decoder; a decoder that does not suit the data;
            conv on non-images or sizes not divisible by 4; non-positive sizes or sample counts;
            ``beta``/``free_bits``/``kl_anneal_steps`` with ``k > 1``.
    """

    Config = VAEConfig
    exact_likelihood = False
    encodes = True
    step: torch.Tensor

    def __init__(self, spec: DataSpec, config: VAEConfig | None = None) -> None:
        c = config or self.Config()
        super().__init__(spec, c)
        self.likelihood = make_likelihood(c.decoder, spec)
        if c.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {c.activation!r}")
        self.z_dim = c.z_dim if c.z_dim is not None else min(32, spec.dims) \
            if spec.kind == "vector" else 32
        if self.z_dim < 1 or c.k < 1 or c.eval_samples < 1 or c.eval_chunk < 1:
            raise ConfigError(f"z_dim, k, eval_samples and eval_chunk must be >= 1; got {self.z_dim}, "
                              f"{c.k}, {c.eval_samples}, {c.eval_chunk}")
        if c.beta < 0 or c.free_bits < 0 or c.kl_anneal_steps < 0:
            raise ConfigError(f"beta, free_bits and kl_anneal_steps must be >= 0; got {c.beta}, "
                              f"{c.free_bits}, {c.kl_anneal_steps}")
        if c.k > 1 and (c.beta != 1 or c.free_bits or c.kl_anneal_steps):
            raise ConfigError(f"beta, free_bits and kl_anneal_steps reweight the ELBO's KL term; the "
                              f"k = {c.k} importance-weighted bound has none -- use k = 1")
        p = self.likelihood.num_params
        if c.arch == "mlp":
            if any(not isinstance(h, int) or h < 1 for h in c.hidden):
                raise ConfigError(f"hidden must be a list of positive widths, got {c.hidden!r}")
            self.encoder, self.decoder = mlp_pair(spec.dims, self.z_dim, p, list(c.hidden), c.activation)
        elif c.arch == "conv":
            self.require(kinds=("image",))
            if spec.shape[1] % 4 or spec.shape[2] % 4:
                raise ConfigError(f"arch conv halves the image twice and needs height and width "
                                  f"divisible by 4, got {spec.shape}; use --arch mlp")
            if c.channels < 1:
                raise ConfigError(f"channels must be >= 1, got {c.channels}")
            self.encoder, self.decoder = conv_pair(spec.shape, self.z_dim, p, c.channels, c.activation)
        else:
            raise ConfigError(f"arch must be mlp or conv, got {c.arch!r}")
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training steps (KL warm-up)

    # --------------------------------------------------------------------------- networks

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Network input: discrete levels rescaled to [-1, 1]; MLPs get flat vectors."""
        levels = self.spec.levels
        v = x.float() if levels is None else 2.0 * x.float() / (levels - 1) - 1.0
        return v.flatten(1) if self.config.arch == "mlp" else v

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x)``: mean and log standard deviation, each ``(B, z_dim)``."""
        h = self.encoder(self._input(x))  # (B, 2 z)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def decoder_params(self, z: torch.Tensor) -> torch.Tensor:
        """Parameters of ``p(x | z)`` for latents ``(N, z_dim)``: ``(N, P, *spec.shape)``."""
        return self.decoder(z).view(len(z), self.likelihood.num_params, *self.spec.shape)

    # ------------------------------------------------- the pieces a richer VAE replaces
    # q(z | x), p(z) and p(x | z) each sit behind one method, so that a flow prior, an IAF
    # posterior, a PixelCNN decoder or a second latent layer is a subclass overriding one or two of
    # them; the bounds, the importance-sampled estimate and the sampler are written once, here.

    analytic_kl: bool = True  # q and p are the diagonal and the standard Gaussian of this class
    bits_back = True  # Gaussian latent levels, a decoder over levels: unsup.codec.bitsback
    inference = "top-down"  # the order posterior_level infers the levels in
    continuous_latents: bool = True  # codes can be swept coordinate by coordinate (traversals)
    reconstructs = True
    interpolates = True

    def use_importance_samples(self, k: int) -> None:
        if k < 1:
            raise ConfigError(f"--importance-samples must be >= 1, got {k}")
        self.config.eval_samples = k

    def pictures(self) -> tuple[str, ...]:
        """Samples, interpolations between test images and (continuous codes) latent traversals
        for images; for 2-D continuous data the decoder means, the density and, with a 2-D code,
        the latent space."""
        s = self.spec
        if s.kind == "image":
            return ("reconstructions", "interpolations",
                    *(("traversal",) if self.continuous_latents else ()), "samples")
        if s.shape == (2,) and s.levels is None:
            return ("decoder-means", "samples", "density", *(("latents",) if self.z_dim == 2 else ()))
        return super().pictures()

    def draw_posterior(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` reparameterised draws ``z ~ q(z | x)`` per example and their ``log q(z | x)``:
        ``(k, B, z_dim)`` and ``(k, B)``."""
        return self.reparameterise(*self.posterior(x), k)

    @staticmethod
    def reparameterise(mu: torch.Tensor, log_s: torch.Tensor, k: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` draws ``z = mu + exp(log_s) eps`` per row of the diagonal Gaussian ``(mu, log_s)``,
        ``(B, d)`` each, and their log-densities: ``(k, B, d)`` and ``(k, B)``."""
        eps = torch.randn(k, *mu.shape, device=mu.device)
        z = mu + torch.exp(log_s) * eps
        return z, -0.5 * (eps.pow(2) + LOG_2PI).sum(-1) - log_s.sum(-1)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` over the last dimension: ``N(0, I)``."""
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` latents from the prior, its noise scaled by ``temperature``: ``(n, z_dim)``."""
        return torch.randn(n, self.z_dim, device=self.device) * temperature

    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` for data ``(N, *shape)`` and latents ``(N, z_dim)``: ``(N,)``."""
        return self.likelihood.log_prob(self.decoder_params(z), x)

    def decoder_draw(self, z: torch.Tensor, mode: bool = False) -> torch.Tensor:
        """One ``x ~ p(x | z)`` (``mode``: the most likely ``x``) per latent: ``(N, *shape)``."""
        params = self.decoder_params(z)
        return self.likelihood.mode(params) if mode else self.likelihood.sample(params)

    def log_weights(self, x: torch.Tensor, k: int,
                    drawn: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``k`` draws ``z ~ q(z | x)`` per example: ``(log w, log p(x | z), log q(z | x) - log p(z))``,
        each ``(k, B)``, with ``log w = log p(x | z) + log p(z) - log q(z | x)``; ``drawn``: those
        draws and their ``log q`` already made (:meth:`draw_posterior`), so ``q`` is not run twice."""
        b = len(x)
        z, log_qz = self.draw_posterior(x, k) if drawn is None else drawn  # (k, B, ...), (k, B)
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])  # (k B, *shape)
        log_px_z = self.decoder_log_prob(xs, z.reshape(k * b, *z.shape[2:])).view(k, b)
        kl_sample = log_qz - self.prior_log_prob(z)
        return log_px_z - kl_sample, log_px_z, kl_sample

    # ------------------------------------------------------------------ the levels one by one
    # Bits-back coding (unsup.codec.bitsback) draws the latents level by level, top-down, from q
    # and from p, and needs each level's Gaussian parameters given the levels above it.

    def latent_levels(self) -> tuple[int, ...]:
        """Sizes of the Gaussian latent levels in the order ``p`` draws them (top-down; the
        decoder reads the last). ``posterior_level`` infers them in this order too, unless
        ``inference`` is ``"bottom-up"`` (the reverse order, as a Markov chain from ``x``)."""
        return (self.z_dim,)

    def posterior_level(self, x: torch.Tensor, drawn: list[torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``q`` of the next level in the order of inference, given ``x`` and the levels ``drawn``
        before it: mean and log sd, ``(B, size)`` each."""
        return self.posterior(x)

    def prior_level(self, drawn: list[torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``p`` of level ``len(drawn)`` given the levels ``drawn`` above it, for ``n`` examples."""
        zeros = torch.zeros(n, self.z_dim, device=self.device)
        return zeros, zeros

    def decoder_table(self, drawn: list[torch.Tensor]) -> torch.Tensor:
        """``log p(x_d = v | z)`` for every dimension and level given all levels ``drawn``:
        ``(N, *shape, L)`` (discrete data)."""
        return self.likelihood.table(self.decoder_params(drawn[-1]))

    # ----------------------------------------------------------------------------- training

    def kl_weight(self) -> float:
        """The current KL weight: ``beta``, linearly warmed up over ``kl_anneal_steps``."""
        c = self.config
        if c.kl_anneal_steps <= 0:
            return float(c.beta)
        return float(c.beta) * min(1.0, int(self.step) / c.kl_anneal_steps)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The negative training bound in nats/dim (module docstring); counts training steps."""
        c = self.config
        x = batch["x"]
        self.check_input(x)
        x = x.to(self.device)
        if self.analytic_kl:  # the KL of two Gaussians in closed form, per latent dimension
            mu, log_s = self.posterior(x)  # (one encoder pass for the draws and the KL)
            log_w, log_px_z, _ = self.log_weights(x, c.k, self.reparameterise(mu, log_s, c.k))
            kl_j = 0.5 * (mu.pow(2) + torch.exp(2 * log_s) - 1.0) - log_s  # (B, z)
        else:  # a one-sample Monte-Carlo KL, as one "dimension"
            log_w, log_px_z, kl_sample = self.log_weights(x, c.k)
            kl_j = kl_sample[0][:, None]
        return self.training_terms(log_w, log_px_z, {"kl": kl_j})

    def training_terms(self, log_w: torch.Tensor, log_px_z: torch.Tensor,
                       kls: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss dictionary from the ``(k, B)`` log-weights and decoder terms and the KL per
        latent dimension of each level, ``{name: (B, d)}``: with ``k = 1`` the (beta-weighted,
        annealed, free-bits floored) ELBO, else ``-L_k``; reports each level's KL under its name and
        their sum as ``kl``. Counts training steps."""
        c = self.config
        kl = sum(kl_j.sum(1) for kl_j in kls.values())
        weight = self.kl_weight()
        if c.k == 1:
            bound = log_px_z[0] - kl  # the ELBO
            kl_term = (sum(kl_j.mean(0).clamp(min=c.free_bits).sum() for kl_j in kls.values())
                       if c.free_bits else kl.mean())
            objective = -log_px_z[0].mean() + weight * kl_term
        else:
            bound = torch.logsumexp(log_w, 0) - math.log(c.k)
            objective = -bound.mean()
        if self.training:
            self.step += 1
        dims = self.spec.dims
        nll = -bound.mean().detach()
        levels = {name: kl_j.sum(1).mean().detach() for name, kl_j in kls.items()} if len(kls) > 1 else {}
        return {"loss": objective / dims, "bpd": nll / (dims * math.log(2)),
                "kl": kl.mean().detach(), **levels, "recon": -log_px_z[0].mean().detach(),
                "kl_weight": torch.tensor(weight)}

    # --------------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """One Monte-Carlo draw of the ``k``-sample bound per example, ``(B,)`` (``k = 1``: the
        ELBO with a sampled KL), in chunks of ``eval_chunk`` pairs."""
        lse, _ = self._log_mean_weights(x, k)
        return lse - math.log(k)

    @torch.no_grad()
    def log_prob_with_se(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance-sampled ``log p^(x)`` with ``k`` (default ``eval_samples``) samples and its
        delta-method standard error ``s / (m sqrt k)`` (module docstring); each ``(B,)``. One
        sample cannot estimate its own spread: with ``k = 1`` the error is NaN (not estimable)."""
        k = k or self.config.eval_samples  # y is ignored: the VAE family is unconditional
        lse, lse2 = self._log_mean_weights(x, k)
        if k == 1:
            return lse.float(), torch.full_like(lse, math.nan).float()
        # s^2 / m^2 (unbiased variance) from sum w = e^lse and sum w^2 = e^lse2:
        # (k sum w^2 / (sum w)^2 - 1) k / (k - 1); the standard error is sqrt of that over k.
        rel_var = (k * torch.exp(lse2 - 2 * lse) - 1.0).clamp(min=0) * k / (k - 1)
        return (lse - math.log(k)).float(), torch.sqrt(rel_var / k).float()

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The importance-sampled estimate of log p(x) in nats, ``(B,)`` (no gradient; ``y`` is
        ignored). Its expectation is the ``eval_samples``-sample bound, below log p(x)."""
        return self.log_prob_with_se(x)[0]

    def validation_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The training bound ``L_k`` (``k = config.k``): cheap enough to validate with; the
        ``eval_samples`` estimate is kept for the final test."""
        return self.iwae_bound(x, self.config.k).float()

    def _log_mean_weights(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``log sum_i w_i`` and ``log sum_i w_i^2`` over ``k`` draws, float64 ``(B,)`` each."""
        self.check_input(x)
        x = x.to(self.device)
        chunk = self.config.eval_chunk
        out1, out2 = [], []
        for xb in x.split(chunk):  # example blocks; then sample blocks of <= chunk pairs
            per = max(1, chunk // len(xb))
            lw = [self.log_weights(xb, min(per, k - i))[0].double() for i in range(0, k, per)]
            log_w = torch.cat(lw)  # (k, b)
            out1.append(torch.logsumexp(log_w, 0))
            out2.append(torch.logsumexp(2 * log_w, 0))
        return torch.cat(out1), torch.cat(out2)

    # ------------------------------------------------------------------ sampling and codes

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``z ~ N(0, T^2 I)``, then ``x ~ p(x | z)``; ``T = 0`` gives the mode of ``p(x | 0)``."""
        t = check_temperature(temperature)
        self.sample_labels(y, n)  # unconditional: y must be None
        return self.decoder_draw(self.sample_prior(n, t), mode=t == 0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean ``E_q[z | x]``, ``(B, z_dim)``, differentiable (``unsup probe
        --finetune-steps`` trains the encoder through it)."""
        self.check_input(x)
        return self.posterior(x.to(self.device))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mode of ``p(x | z)`` (the mean for a Gaussian), ``(N, *spec.shape)``."""
        return self.decoder_draw(z.to(self.device), mode=True)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decodings of ``steps`` points on the line between the codes of single examples ``a``
        and ``b``: ``(steps, *spec.shape)``."""
        za, zb = self.encode(a[None]), self.encode(b[None])
        w = torch.linspace(0, 1, steps, device=self.device)[:, None]
        return self.decode(za * (1 - w) + zb * w)

    @torch.no_grad()
    def active_units(self, x: torch.Tensor, threshold: float = 1e-2) -> int:
        """Latent dimensions with ``Var_x(E_q[z_j | x]) > threshold`` over the examples ``x``."""
        mu = torch.cat([self.encode(xb) for xb in x.split(1024)])  # (N, z)
        return int((mu.double().var(0) > threshold).sum())

    @torch.no_grad()
    def latent_report(self, x: torch.Tensor, batch_size: int = 256) -> dict[str, float | int]:
        """What the latents carry on the examples ``x``: mean KL(q(z|x) || p(z)) in nats (and
        each level's, for models that report them), mean reconstruction term ``-E_q log p(x|z)``,
        active units out of ``latent_dims``. Posterior collapse shows as KL near 0."""
        was_training = self.training
        self.eval()
        try:
            sums: dict[str, float] = {}
            for xb in x.split(batch_size):
                terms = self.loss({"x": xb})
                for key, v in terms.items():
                    if key == "recon" or (key.startswith("kl") and key != "kl_weight"):
                        sums[key] = sums.get(key, 0.0) + float(v) * len(xb)
        finally:
            self.train(was_training)
        report: dict[str, float | int] = {k: v / len(x) for k, v in sums.items()}
        return {**report, "active_units": self.active_units(x), "latent_dims": self.z_dim}


@dataclass
class IWAEConfig(VAEConfig):
    """Hyper-parameters of :class:`IWAE`: :class:`VAEConfig` with ``k = 5``."""

    k: int = 5


IWAEConfig.__doc__ = (VAEConfig.__doc__ or "").replace(":class:`VAE`", ":class:`IWAE`")  # CLI help


@register("iwae", "IWAE: the VAE trained with the k-sample importance-weighted bound "
          "(default k = 5)", presets={"paper": {**PAPER, "k": 50}})
class IWAE(VAE):
    """The :class:`VAE` network trained on ``L_k`` (Burda et al. 2016); only the default ``k``
    differs."""

    Config = IWAEConfig
