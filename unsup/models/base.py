"""The model interface every family implements.

A model is an :class:`torch.nn.Module` built from a :class:`~unsup.data.DataSpec` and a typed
dataclass config. The training loop only ever calls :meth:`Model.loss`; what else a model offers
depends on its family:

* likelihood models (:class:`LikelihoodModel`) add ``log_prob(x, y=None)`` -- log p(x) in nats per
  example, exact unless ``exact_likelihood`` is False (then it is a lower bound) -- and
  ``sample(n, y=None, temperature=1.0)``;
* implicit models (GANs) sample without a likelihood (``samples`` is True);
* representation models add ``encode(x)``.

A model trained by several alternating updates (a GAN's discriminator and generator) lists them
as :class:`Phase` objects from :meth:`Model.phases`; the training loop then runs one phase per step
and calls ``loss(batch, phase)``. It needs to know nothing else about the model.

Which checkpoint a run keeps as ``best.safetensors`` is the model's to say too: at every validation
the loop adds :meth:`Model.validation_scores` to the averaged validation losses and compares the
metric that :meth:`Model.checkpoint_selection` names (a :class:`Selection`; by default the lowest
validation loss).

Bits per dimension of a dataset is ``E[-log p(x)] / (D ln 2)`` with ``D = spec.dims``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from unsup.data.base import Dataset, DataSpec
from unsup.errors import ConfigError

Batch = dict[str, torch.Tensor]
LN2 = math.log(2.0)


_EAGER: dict[Callable[..., Any], Callable[..., Any] | None] = {}


def eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``fn`` runs eagerly, outside the graph, under ``torch.compile``.

    The same as ``torch.compiler.disable`` without importing the compiler (2 s of CPU) when the
    module is imported: :func:`prepare_eager`, called before compiling, makes the disabled twins.
    """
    _EAGER[fn] = None

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            return _EAGER[fn](*args, **kwargs)  # type: ignore[misc]  # set by prepare_eager
        return fn(*args, **kwargs)

    return wrapper


def prepare_eager() -> None:
    """Make the ``torch.compiler.disable`` twins of every :func:`eager` function (before compiling)."""
    for fn, twin in _EAGER.items():
        if twin is None:
            _EAGER[fn] = torch.compiler.disable(fn)


def nats_to_bits_per_dim(nats_per_example: float | torch.Tensor, dims: int) -> Any:
    """Convert a negative log-likelihood in nats per example to bits per dimension."""
    return nats_per_example / (dims * LN2)


def check_labels(
    y: torch.Tensor | None, num_classes: int, batch_size: int, name: str
) -> torch.Tensor:
    """Validate class labels for a class-conditional model and return them as a long tensor.

    Raises:
        ConfigError: ``y`` missing, not a 1-D integer tensor of length ``batch_size``, or out of
            ``[0, num_classes)``.
    """
    if y is None:
        raise ConfigError(f"{name} is class-conditional: pass labels y (the data must be labelled)")
    if y.is_floating_point() or y.dim() != 1 or len(y) != batch_size:
        raise ConfigError(f"{name} expects y as {batch_size} integer labels, got {y.dtype} "
                          f"of shape {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"{name} expects labels in [0, {num_classes - 1}], "
                          f"got [{int(y.min())}, {int(y.max())}]")
    return y.long()


@dataclass(frozen=True)
class Phase:
    """One of the alternating updates of a model trained by several (:meth:`Model.phases`).

    Attributes:
        name: what the phase is called in logs (``"critic"``, ``"generator"``) and what
            ``loss(batch, phase)`` receives.
        params: the parameters this phase updates; every trained parameter is in exactly one phase.
        steps: consecutive optimiser steps of this phase per round (WGAN's ``n_critic``).
        lr: multiplier of the run's ``--lr`` for these parameters (two time-scale updates).
        betas: Adam's ``(beta1, beta2)`` for these parameters (``None``: torch's default); ignored
            by the SGD and LARS optimisers.
    """

    name: str
    params: Sequence[nn.Parameter]
    steps: int = 1
    lr: float = 1.0
    betas: tuple[float, float] | None = None


@dataclass(frozen=True)
class Selection:
    """Which checkpoint ``unsup train`` keeps as ``best.safetensors`` (:meth:`Model.checkpoint_selection`).

    At every validation the loop compares ``metric`` of the validation results -- an averaged loss
    term such as ``loss``, or a score of :meth:`Model.validation_scores` -- with the best so far and
    writes ``best`` when it is strictly better (of equal scores the earlier checkpoint stays).

    Attributes:
        metric: the validation metric compared; ``None``: nothing to compare, ``best`` is always
            the last checkpoint.
        higher_is_better: the direction of ``metric`` (False: a loss, lower is better).
        reason: why ``metric`` is ``None``, for messages.
    """

    metric: str | None = "loss"
    higher_is_better: bool = False
    reason: str = ""

    def key(self, value: float) -> float:
        """``value`` of :attr:`metric` as a lower-is-better number (negated when higher is
        better): what the trainer's ``best_val`` and checkpoints store."""
        return -float(value) if self.higher_is_better else float(value)

    def value(self, key: float) -> float:
        """The metric's value back from :meth:`key`'s number."""
        return -float(key) if self.higher_is_better else float(key)

    def describe(self, key: float) -> str:
        """What the kept checkpoint is, for a summary line (``key`` from :meth:`key`)."""
        if self.metric is None:
            return f"best = last checkpoint ({self.reason or 'no metric to select by'})"
        if not math.isfinite(key):
            return f"best by validation {self.metric}: none yet"
        way = "highest" if self.higher_is_better else "lowest"
        return f"best ({way}) val {self.metric} {self.value(key):.4f}"


class Model(nn.Module):
    """Base class. Subclasses set ``Config`` and implement :meth:`loss`.

    Besides :meth:`loss`, a model declares here what else it can do; the command line and the
    reports ask these attributes and methods and never test for a class. The defaults say "no".

    Attributes:
        Config: the dataclass holding the model's hyper-parameters.
        spec: the data the model was built for.
        config: the model's config instance.
        encodes: ``representation(x)`` gives ``(B, D)`` features that ``unsup probe`` can judge (by
            default ``encode(x)`` flattened; what each family calls its representation is in
            its ``representation`` or ``encode`` docstring).
        reconstructs: ``reconstruct(x)`` maps examples to their reconstructions (autoencoders).
        embeds_words: ``neighbours(i, k)`` and ``analogy(a, b, c, k)`` answer word queries and
            ``export(vocab, path)`` writes the vectors (``unsup words``).
        num_classes: classes of a class-conditional model (``None``: unconditional).
        samples: ``sample(n, y=None, temperature=1.0)`` draws new examples.
        supports_fast_sampling: ``sample(..., fast=False)`` is the naive sampler.
        completes: ``complete(x, known, ...)`` fills in hidden pixels of images.
        codes: ``walk(z, y, choose)`` visits every element in the model's autoregressive order,
            ``to_walk(x)`` / ``from_walk(z)`` convert examples to the tensor it fills and back
            (lossless coding, :mod:`unsup.codec`).
        bits_back: a latent-variable model with Gaussian latent levels and a discrete decoder,
            coded by bits-back (:mod:`unsup.codec.bitsback`) through ``latent_levels()``,
            ``posterior_level(x, drawn)``, ``prior_level(drawn, n)`` and ``decoder_table(drawn)``.
        interpolates: ``interpolate(a, b, steps)`` walks between two examples.
        variable_length: ``sample(..., length=T)`` draws sequences of any length.
        sampling_options: keyword options of ``sample`` choosing and tuning the sampler
            (``sampler``, ``steps``, ``eta``, ``guidance``: diffusion and flow models).
        loss_gathers: ``loss`` gathers tensors from every process under torch.distributed
            (contrastive negatives), so every process must call it on a batch of the same size:
            distributed evaluation then takes equal full batches only.
    """

    Config: ClassVar[type]
    encodes: ClassVar[bool] = False
    reconstructs: ClassVar[bool] = False
    embeds_words: ClassVar[bool] = False
    samples: ClassVar[bool] = False
    supports_fast_sampling: ClassVar[bool] = False
    completes: ClassVar[bool] = False
    codes: ClassVar[bool] = False
    bits_back: ClassVar[bool] = False
    interpolates: ClassVar[bool] = False
    variable_length: ClassVar[bool] = False
    sampling_options: ClassVar[tuple[str, ...]] = ()
    loss_gathers: ClassVar[bool] = False
    num_classes: int | None = None

    def phases(self) -> tuple[Phase, ...]:
        """The alternating updates this model is trained by, in the order of a round; the loop
        runs ``phase.steps`` optimiser steps of each in turn, one batch per step, and calls
        ``loss(batch, phase.name)``. Default ``()``: one update of all parameters, ``loss(batch)``.
        """
        return ()

    def checkpoint_selection(self, val: Dataset | None) -> Selection:
        """How ``unsup train`` chooses the checkpoint it keeps as ``best.safetensors``, given the
        validation set (``None``: no validation, every checkpoint is the best). Asked at every
        validation, so it must depend on ``val`` and the model's class and config only. Default:
        the lowest validation ``loss``."""
        return Selection()

    def validation_scores(self, val: Dataset, batch_size: int) -> dict[str, float]:
        """Scores of the model on the validation set besides the averaged loss terms (a probe of
        its features), logged with them and selectable by :meth:`checkpoint_selection`.

        The loop calls it at every validation on the validated weights (the EMA copy under
        ``--ema``) under a fixed seed of its own and outside the time budget of ``--eval-time``, so
        it must be cheap; the model sets (and restores) eval mode itself. Under torch.distributed
        every rank calls it and rank 0's result is everyone's. ``batch_size`` bounds the examples
        per forward pass. Default: none.
        """
        return {}

    @classmethod
    def fit_config(cls, config: Any, data: Any) -> None:
        """Fill in options that depend on the training set before the model is built (a memory
        bank's row count); called by :func:`unsup.models.create` with a dataset. Default: none."""

    def prepare(self, data: Any) -> None:
        """Keep statistics of the training set (word counts); called by
        :func:`unsup.models.create` with a dataset. Default: nothing to keep."""

    def pictures(self) -> tuple[str, ...]:
        """Which of the pictures of :data:`unsup.plots.PICTURES` suit this model and its data,
        drawn by ``unsup train`` from test examples (``samples``, ``density``,
        ``reconstructions``, ``interpolations``, ...). Default: test images beside their
        reconstructions for a model that ``reconstructs`` images, and a grid (or for 1-D and 2-D
        vectors a histogram or scatter plot) of samples from a model that ``samples``."""
        s = self.spec
        pictures = ("reconstructions",) if self.reconstructs and s.kind == "image" else ()
        if self.samples and (s.kind == "image" or self.low_dimensional):
            pictures += ("samples",)
        return pictures

    @property
    def low_dimensional(self) -> bool:
        """1-D or 2-D vectors, which pictures show as a histogram or a scatter plot."""
        return self.spec.kind == "vector" and tuple(self.spec.shape) in ((1,), (2,))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The representation of examples ``x`` judged by ``unsup probe``: ``(B, D)`` floats,
        differentiable in the weights (fine-tuning trains through it). Default: ``encode(x)``
        flattened, for a model that ``encodes``."""
        if not self.encodes:
            raise ConfigError(f"{type(self).__name__} has no representation to probe")
        return self.encode(x).flatten(1).float()  # type: ignore[attr-defined]

    def illustrations(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Pictures of what the model does to examples ``x``: ``{name: rows}``, each row a
        ``(B, C, H, W)`` float tensor in ``[0, 1]``; ``unsup train`` saves each as ``NAME.png``.
        Default: nothing to show."""
        return {}

    def charts(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, dict]:
        """Charts measured on test examples: ``{name: {"title", "xlabel", "ylabel", "series":
        {label: (xs, ys)}}}``; ``unsup train`` draws each as ``NAME.png``. Default: none."""
        return {}

    def latent_report(self, x: torch.Tensor) -> dict[str, Any]:
        """Numbers about the model's latent code on examples ``x`` (KL, active units), reported
        with test and ``unsup eval`` results. Default: none."""
        return {}

    def labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Checked labels on the model's device for a conditional model; None otherwise."""
        if self.num_classes is None:
            return None
        return check_labels(y, self.num_classes, n, f"conditional {type(self).__name__}").to(
            self.device)

    def sample_labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Labels to sample with: ``y``, or ``arange(n) % num_classes`` (one class per column of
        a grid) for a conditional model.

        Raises:
            ConfigError: ``y`` given to an unconditional model, or invalid labels.
        """
        if self.num_classes is None and y is not None:
            raise ConfigError(f"this {type(self).__name__} is not class-conditional; train it with "
                              f"--conditional to sample given a label")
        if self.num_classes is not None and y is None:
            y = torch.arange(n) % self.num_classes
        return self.labels(y, n)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of ``x`` (models with ``reconstructs``)."""
        raise ConfigError(f"{type(self).__name__} does not reconstruct its input")

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Draw ``n`` samples, shape ``(n, *spec.shape)``, using torch's global RNG (models with
        ``samples``)."""
        raise ConfigError(f"{type(self).__name__} cannot sample")

    def __init__(self, spec: DataSpec, config: Any) -> None:
        super().__init__()
        self.spec = spec
        self.config = config

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Training objective on one batch (``loss(batch, phase)`` for a model with
        :meth:`phases`; without a phase, what validation reports).

        Returns:
            A dict with the scalar ``"loss"`` to minimise and any other scalars worth logging
            (likelihood models add ``"bpd"``).
        """
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @eager  # data-dependent checks (int(x.min())): run eagerly under --compile
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for data of the wrong shape, dtype or range.

        Discrete data: any integer dtype (uint8 included) with values in ``[0, levels)``.
        Continuous data: a floating-point dtype and finite values.
        """
        s = self.spec
        name = type(self).__name__
        if tuple(x.shape[1:]) != tuple(s.shape):
            raise ConfigError(f"{name} expects examples of shape {s.shape}, "
                              f"got a batch of shape {tuple(x.shape)}")
        if s.levels is not None:
            if x.is_floating_point() or x.is_complex():
                raise ConfigError(f"{name} expects integer levels, got {x.dtype}")
            if x.numel():
                # compared as Python ints: in uint8, `x >= 256` would wrap 256 to 0
                lo, hi = (int(v) for v in torch.aminmax(x))  # one pass over the batch
                if lo < 0 or hi >= s.levels:
                    raise ConfigError(f"{name} expects values in [0, {s.levels - 1}], got [{lo}, {hi}]")
        else:
            if not x.is_floating_point():
                raise ConfigError(f"{name} models continuous data: expects floating-point values, "
                                  f"got {x.dtype} (discrete data needs a model built for levels)")
            if x.numel() and not bool(torch.isfinite(x).all()):
                raise ConfigError(f"{name} expects finite values, got NaN or infinity")

    def require(self, *, levels: bool | None = None, kinds: tuple[str, ...] | None = None,
                max_levels: int | None = None, labels: bool = False) -> None:
        """Raise a :class:`ConfigError` if the data does not suit this model."""
        name = type(self).__name__
        s = self.spec
        if levels is True and s.levels is None:
            raise ConfigError(f"{name} models discrete data; use a representation such as "
                              f"--represent binary or levels:K (got continuous data)")
        if levels is False and s.levels is not None:
            raise ConfigError(f"{name} models continuous data; use --represent float")
        if max_levels is not None and s.levels is not None and s.levels > max_levels:
            raise ConfigError(f"{name} supports at most {max_levels} levels, data has {s.levels}; "
                              f"use --represent levels:K with a smaller K")
        if kinds is not None and s.kind not in kinds:
            raise ConfigError(f"{name} expects {' or '.join(kinds)} data, got {s.kind} data "
                              f"of shape {s.shape}")
        if labels and s.num_classes is None:
            raise ConfigError(f"{name} with class conditioning needs labelled data; "
                              f"this dataset has no labels")


class LikelihoodModel(Model):
    """A model with a (log-)likelihood and a sampler.

    Subclasses implement :meth:`log_prob` and :meth:`sample`; the loss is the negative
    log-likelihood in nats per dimension, so its scale does not depend on the image size.
    """

    exact_likelihood: ClassVar[bool] = True
    # what log_prob is when it is not exact: "bound" (a lower bound, or an unbiased estimate of
    # one) or "estimate" (of log p itself, e.g. by an ODE solve; neither above nor below for sure)
    inexact_kind: ClassVar[str] = "bound"
    samples: ClassVar[bool] = True
    latent_map: ClassVar[bool] = False  # encode(x) maps data to latents of its own shape (flows)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | y)) in nats, shape ``(B,)``."""
        raise NotImplementedError

    def log_prob_with_se(self, x: torch.Tensor, y: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``log_prob(x, y)`` and the Monte-Carlo standard error of each estimate (``None`` for
        an exact or deterministic score, the default); what final evaluation reports."""
        return self.log_prob(x, y), None

    # config fields of the likelihood estimator that evaluation may change without retraining
    # (``unsup eval`` / ``unsup ood --estimator KEY=VALUE``): its cost against its accuracy
    estimator_options: ClassVar[tuple[str, ...]] = ()

    def set_estimator(self, options: dict[str, str]) -> dict[str, Any]:
        """Set the estimator options ``{name: text}`` (each converted to its config field's type,
        then checked by :meth:`check_estimator`) and return them typed.

        Raises:
            ConfigError: an option the model's estimator does not take, or a value its field's
                type cannot hold or :meth:`check_estimator` refuses.
        """
        typed: dict[str, Any] = {}
        for name, text in options.items():
            if name not in self.estimator_options:
                takes = ", ".join(self.estimator_options) or "none (its likelihood is computed one way)"
                raise ConfigError(f"{type(self).__name__} has no estimator option {name!r}; it takes {takes}")
            kind = type(getattr(self.config, name))
            try:
                typed[name] = kind(text)
            except ValueError:
                raise ConfigError(f"estimator option {name} takes a {kind.__name__}, got {text!r}") from None
        for name, value in typed.items():
            setattr(self.config, name, value)
        self.check_estimator()
        return typed

    def check_estimator(self) -> None:
        """Raise a :class:`ConfigError` if an estimator option is out of range. Default: none."""

    def use_importance_samples(self, k: int) -> None:
        """Score with ``k`` importance samples from now on (``unsup eval --importance-samples``).

        Raises:
            ConfigError: the model's score is exact or deterministic (the default).
        """
        raise ConfigError(f"--importance-samples applies to latent-variable models (vae, iwae, "
                          f"...); {type(self).__name__} has an exact or deterministic score")

    def pictures(self) -> tuple[str, ...]:
        """Besides samples (:meth:`Model.pictures`): for 1-D/2-D data the learned density, and for
        continuous ones the latent space of a model with a ``latent_map``. Sequences have none:
        ``unsup sample DIR --out FILE.wav|.txt``."""
        if not self.low_dimensional:
            return super().pictures()
        latents = ("latents",) if self.latent_map and self.spec.levels is None else ()
        return super().pictures() + ("density", *latents)

    def validation_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """What validation during training scores, ``(B,)``: :meth:`log_prob` unless that is too
        costly to run every few hundred steps (a latent-variable model's importance-sampled
        estimate), in which case a cheaper lower bound. Final evaluation always uses ``log_prob``.
        """
        return self.log_prob(x, y)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.nll_loss(self.log_prob(batch["x"], batch.get("y")))

    def nll_loss(self, log_prob: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training loss of per-example log-likelihoods: NLL in nats/dim, and bits/dim."""
        per_dim = -log_prob.mean() / self.spec.dims
        return {"loss": per_dim, "bpd": per_dim / LN2}
