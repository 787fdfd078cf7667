"""One training loop for every model.

Nothing here knows any particular model: a model is anything with ``loss(batch) -> {"loss": ...}``
(see :mod:`unsup.models.base`), a dataset anything with ``batch(index, generator)``.

The loop is deterministic given ``seed`` on CPU: the order of examples in epoch ``e`` is a
permutation drawn from a generator seeded with ``(seed, e)``, and per-batch randomness of the data
(dynamic binarisation) from a generator seeded with ``(seed, step)``. The position in the data is
therefore a function of the step, and a checkpoint that stores the step, the model, the optimiser,
the scheduler, the gradient scaler and the global RNG states resumes *exactly*: N steps in one go
and k + (N - k) steps with a restart in between give identical weights.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import os
import random
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsup.data.base import Dataset
from unsup.errors import ConfigError, Interrupted, TrainingDiverged
from unsup.memory import chunk_size
from unsup.models.base import LikelihoodModel, Model, Selection, nats_to_bits_per_dim, prepare_eager
from unsup.progress import progress
from unsup.train import distributed
from unsup.train.checkpoint import (
    copy_checkpoint,
    load_state,
    merge_two_way_logits,
    merge_two_way_moments,
    remove_stale_temporaries,
    save_state,
    two_way_binary_logits,
)
from unsup.train.feed import BatchFeeder
from unsup.train.lock import run_lock

LAST, BEST = "last.safetensors", "best.safetensors"
STEP_FILE = re.compile(r"step-(\d+)\.safetensors")  # kept checkpoints (--keep-last N > 1)
OPTIMIZERS = ("adamw", "sgd", "lars")
POSTFIX_METRICS = 6  # metrics beside the progress bar; metrics.csv and TensorBoard keep them all


@dataclass
class TrainConfig:
    """Options of the training loop (all models share them).

    Attributes:
        steps: stop after this many optimiser steps.
        epochs: stop after this many passes over the training set (may be fractional).
        time: stop after this many seconds of wall-clock training (its periodic validations
            included; the end of a ``unsup train`` run has its own budget, ``--eval-time``).
            At least one budget is required; training stops at the first one reached.
        batch_size: examples per step; under torchrun the global batch, which the processes
            split among themselves (see :mod:`unsup.train.distributed`).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD, LARS) weight decay.
        optimizer: ``adamw``; ``sgd`` with ``momentum``; or ``lars``, SGD whose step for each
            weight matrix is scaled by the trust ratio ``eta ||w|| / ||g + wd w||`` (You et al.
            2017; biases and norm scales are left unscaled and undecayed), which keeps the very
            large batches of contrastive learning stable (SimCLR: batch 4096, lr 0.3 x batch/256).
        momentum: momentum of ``sgd`` and ``lars``.
        warmup: steps of linear learning-rate warm-up from 0.
        schedule: ``constant`` after warm-up, or ``cosine`` decay to 0 at the end of the step or
            epoch budget.
        clip: clip the global gradient norm to this value (0 disables).
        ema: decay of an exponential moving average of the weights used for validation,
            checkpoint selection and sampling (0 disables; 0.999 is typical).
        amp: mixed precision: ``auto`` (bf16 or fp16 on CUDA, off elsewhere), ``off``, ``bf16``,
            ``fp16``. ``bf16`` also runs on the CPU, where it pays only if the CPU has bf16
            instructions (AVX512-BF16, AMX); ``fp16`` adds a gradient scaler.
        compile: run the model's loss (forward and backward) through ``torch.compile``. The
            module itself is not wrapped, so checkpoints hold its plain ``state_dict``; a
            compiler that cannot run (no C++ compiler on CPU, no Triton on CUDA) is a
            :class:`ConfigError`, never a silent fall-back to eager mode.
        channels_last: store 4-D weights and image batches channels-last (NHWC), the layout
            convolutions on CUDA tensor cores prefer.
        prefetch: draw the next step's batch on a worker thread during the current step, in pinned
            memory on CUDA (:mod:`unsup.train.feed`): ``auto`` (on for CUDA), ``on`` or ``off``.
            The batches are the same either way.
        device: ``auto`` (cuda, then mps, then cpu) or a torch device string.
        seed: seeds data order, initialisation and all randomness.
        eval_every: validate (and checkpoint) every this many steps (0: only at the end).
        eval_batches: validate on at most this many batches (0: the whole validation set).
        log_every: write training metrics every this many steps.
        progress: show a progress bar.
        tensorboard: write TensorBoard event files next to the CSV log.
        sync_bn: under torchrun, turn ``torch.nn`` batch-norm layers into
            :class:`torch.nn.SyncBatchNorm` (statistics of the global batch; CUDA only). A single
            process has nothing to synchronise: a no-op with a warning.
        keep_last: keep this many of the most recent checkpoints: with more than 1, every
            checkpoint is also kept as ``step-NNNNNN.safetensors`` and older step files beyond
            this many are deleted (1: only ``last.safetensors`` and ``best.safetensors``).
        on_divergence: on a NaN or infinite loss, ``stop`` with :class:`TrainingDiverged`, or
            ``rollback``: reload the last checkpoint (in memory when there is no run directory),
            multiply the learning rate by ``rollback_lr_factor`` and go on.
        rollback_lr_factor: learning-rate multiplier per rollback, in (0, 1]; the product is
            stored in checkpoints, so a resumed run keeps the lowered rate.
        max_rollbacks: rollbacks allowed in the whole run; the next divergence stops it.
        final_eval_time: seconds allowed to the validation after the last step (``None``: the
            whole validation set): past it the score is that of a random subset
            (:func:`evaluate`'s ``time_limit``), so a short budget is not followed by a long wait.
    """

    # ``metadata`` tells the command line (which generates an option per field) what a value looks
    # like: ``choices``, a ``duration`` (90s, 10m), or ``cli=False`` for a field it sets itself.
    steps: int | None = None
    epochs: float | None = None
    time: float | None = field(default=None, metadata={"duration": True})
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = field(default="adamw", metadata={"choices": OPTIMIZERS})
    momentum: float = 0.9
    warmup: int = 0
    schedule: str = field(default="constant", metadata={"choices": ("constant", "cosine")})
    clip: float = 0.0
    ema: float = 0.0
    amp: str = field(default="auto", metadata={"choices": ("auto", "off", "bf16", "fp16")})
    compile: bool = False
    channels_last: bool = False
    prefetch: str = field(default="auto", metadata={"choices": ("auto", "on", "off")})
    device: str = "auto"
    seed: int = 0
    eval_every: int = 500
    eval_batches: int = 0
    log_every: int = 20
    progress: bool = True
    tensorboard: bool = True
    sync_bn: bool = False
    keep_last: int = 1
    on_divergence: str = field(default="stop", metadata={"choices": ("stop", "rollback")})
    rollback_lr_factor: float = 0.5
    max_rollbacks: int = 3
    final_eval_time: float | None = field(default=None, metadata={"cli": False})  # --eval-time

    def validate(self, n_train: int | None = None) -> None:
        """Raise a :class:`ConfigError` for inconsistent options (and an empty training set)."""
        if self.steps is None and self.epochs is None and self.time is None:
            raise ConfigError("no training budget: give --steps, --epochs or --time")
        for name in ("steps", "epochs", "time"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"--{name} must be positive, got {v}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if n_train is not None and n_train == 0:
            raise ConfigError("the training set is empty")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"--schedule must be constant or cosine, got {self.schedule!r}")
        if self.schedule == "cosine" and self.steps is None and self.epochs is None:
            raise ConfigError("--schedule cosine needs --steps or --epochs to know where it ends")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ConfigError(f"--amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema must be in [0, 1), got {self.ema}")
        if not self.lr > 0:  # `not >` also refuses NaN
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.final_eval_time is not None and not self.final_eval_time > 0:
            raise ConfigError(f"--eval-time must be positive, got {self.final_eval_time}")
        for name in ("weight_decay", "warmup", "clip", "eval_every", "eval_batches"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            raise ConfigError(f"--log-every must be >= 1, got {self.log_every}")
        if self.keep_last < 1:
            raise ConfigError(f"--keep-last must be >= 1 (1: only last and best), got {self.keep_last}")
        if self.prefetch not in ("auto", "on", "off"):
            raise ConfigError(f"--prefetch must be auto, on or off, got {self.prefetch!r}")
        if self.on_divergence not in ("stop", "rollback"):
            raise ConfigError(f"--on-divergence must be stop or rollback, got {self.on_divergence!r}")
        if not 0 < self.rollback_lr_factor <= 1:
            raise ConfigError(f"--rollback-lr-factor must be in (0, 1], got {self.rollback_lr_factor}")
        if self.max_rollbacks < 0:
            raise ConfigError(f"--max-rollbacks must be >= 0, got {self.max_rollbacks}")



def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one of every trained parameter (a momentum encoder's are
    not), or one per :class:`~unsup.models.base.Phase` of a model trained by several updates,
    with that phase's learning-rate multiplier and Adam betas.

    Raises:
        ValueError: a model's phases leave out a trained parameter or name one twice.
    """
    trained = [p for p in model.parameters() if p.requires_grad]
    phases = model.phases() if isinstance(model, Model) else ()
    if not phases:
        return [{"params": trained}]
    groups, seen = [], set()
    for phase in phases:
        params = [p for p in phase.params if p.requires_grad]
        if seen & {id(p) for p in params}:
            raise ValueError(f"{type(model).__name__}: phase {phase.name!r} names parameters "
                             f"an earlier phase has")
        seen |= {id(p) for p in params}
        group: dict[str, Any] = {"params": params, "lr": config.lr * phase.lr, "phase": phase.name}
        if phase.betas is not None and config.optimizer == "adamw":
            group["betas"] = tuple(float(b) for b in phase.betas)
        groups.append(group)
    left = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if left:
        raise ValueError(f"{type(model).__name__}: parameters {', '.join(left[:5])} are in no phase")
    return groups


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` over :func:`parameter_groups`."""
    params = parameter_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "lars":
        from pytorch_optimizer import LARS

        return LARS(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    # torch's fused AdamW updates every tensor in one kernel, faster than its default per-tensor
    # loop (on the CPU 0.4 ms of a 8 ms MLP-VAE step: benchmarks/loop_overhead.py)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                for g in params for p in g["params"])
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                             fused=fused or None)


def phase_round(model: torch.nn.Module) -> list[str]:
    """The phase of each step of a round (``[]`` for a model trained by one update): step ``s``
    runs ``round[s % len(round)]``, a function of the step alone, so a resumed run goes on with
    the right phase."""
    phases = model.phases() if isinstance(model, Model) else ()
    return [phase.name for phase in phases for _ in range(phase.steps)]


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; anything else is passed to torch."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA device")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _mix(*ints: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    h = 1469598103934665603
    for i in ints:
        h = ((h ^ (i & 0xFFFFFFFFFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


class BatchSchedule:
    """Which examples make up step ``s``: a pure function of (seed, s)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.batch_size = min(batch_size, n)
        self.steps_per_epoch = n // self.batch_size  # drop the ragged last batch
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def index(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(_mix(self.seed, 7, step))


def iterate(ds: Dataset, batch_size: int, max_batches: int = 0, rank: int = 0,
            world_size: int = 1, order: torch.Tensor | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``ds`` in order, or in ``order`` (a permutation of its indices), for evaluation.

    With ``world_size`` > 1 only batches ``rank, rank + world_size, ...`` of the (at most
    ``max_batches``) batches: the ranks' shares cover the same examples as one process, once each.
    """
    n = len(ds)
    order = torch.arange(n) if order is None else order
    for i, start in enumerate(range(0, n, batch_size)):
        if max_batches and i >= max_batches:
            return
        if i % world_size == rank:
            yield ds.batch(order[start:start + batch_size])


def _to(batch: dict[str, torch.Tensor], device: torch.device,
        memory_format: torch.memory_format = torch.preserve_format) -> dict[str, torch.Tensor]:
    """``batch`` on ``device``; ``memory_format`` applies to its 4-D (image) tensors only."""
    if device.type == "cpu" and memory_format == torch.preserve_format:
        return batch  # (batches are drawn on the CPU)
    return {k: v.to(device, non_blocking=True,
                    memory_format=memory_format if v.dim() == 4 else torch.preserve_format)
            for k, v in batch.items()}


def compile_loss(model: Model) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """``model.loss`` through ``torch.compile``; a compiler that cannot run is an error.

    Compiling the bound method rather than wrapping the module keeps ``model.state_dict()`` free
    of the ``_orig_mod.`` prefix an ``OptimizedModule`` adds. Compilation happens at the first
    call (again when shapes or train/eval mode change), so the first steps are slow.

    Raises:
        ConfigError: torch.compile does not support this Python, or its backend failed (on CPU,
            for instance, there is no working C++ compiler).
    """
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ConfigError(f"--compile: torch {torch.__version__} cannot compile under Python "
                          f"{sys.version.split()[0]}; train without --compile")
    prepare_eager()
    compiled = torch.compile(model.loss)

    def loss(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        try:
            return compiled(batch)
        except torch._dynamo.exc.BackendCompilerFailed as e:
            reason = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ConfigError(f"--compile: torch.compile failed: {reason} (on CPU it needs a working "
                              f"C++ compiler, on CUDA Triton); train without --compile") from e

    return loss


def _match_param_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give per-parameter optimiser state the memory layout of its parameter again.

    ``load_state_dict`` keeps the layout of the loaded (contiguous) tensors; after resuming a
    ``channels_last`` model the moments would differ in strides from their parameters, which
    sends CUDA's multi-tensor update kernels down their slow per-tensor path.
    """
    for p, state in optimizer.state.items():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                state[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


@torch.no_grad()
def evaluate(model: Model, ds: Dataset, batch_size: int = 256, max_batches: int = 0,
             device: torch.device | None = None, validation: bool = False,
             desc: str | None = None, time_limit: float | None = None,
             chunked: bool = True) -> dict[str, Any]:
    """Average metrics of ``model`` over ``ds``.

    For likelihood models the result holds ``nll`` (nats per example), ``bpd`` (bits per
    dimension), ``exact`` (False when ``log_prob`` is a bound) and ``n`` (examples); otherwise the
    example-weighted mean of each entry of ``model.loss``. With ``validation`` the score is the
    model's ``validation_log_prob`` (a cheaper bound for latent-variable models). Models whose
    ``log_prob_with_se`` gives standard errors (importance-sampled estimates) also report ``nll_se``: the
    Monte-Carlo
    standard error of the mean NLL on these examples, ``sqrt(sum_i se_i^2) / n``.

    Under torch.distributed every rank must call it: each evaluates its share of the batches
    (:func:`iterate`) and all get the sums over all ranks, hence the same result. A model whose
    loss gathers across processes (``loss_gathers``) is evaluated on the full batches only, as
    many on every process (a few examples fewer than one process would score). With ``desc``
    the main process reports progress under that name (:func:`unsup.progress.progress`).

    With ``time_limit`` (seconds) the examples are taken in a fixed random order
    (seed 0) and evaluation stops after the batch that passes the limit: the figures are then those
    of a uniform random subset, and ``partial`` says how many of how many examples they cover,
    with the standard error of the mean NLL (or loss) over that subset.

    With ``chunked`` (the default) a likelihood model on the CPU scores each batch in chunks
    whose largest activation is about :data:`unsup.memory.CHUNK_BYTES`: the same scores, without
    the page faults of large fresh activations (:mod:`unsup.memory`).
    """
    device = device or model.device
    ranks = distributed.current()
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    if ranks.enabled and getattr(model, "loss_gathers", False):
        # every process calls the loss, and its gather, on a batch of the same size
        full = len(ds) // batch_size if not max_batches else min(len(ds) // batch_size, max_batches)
        max_batches = full - full % ranks.world_size
        if max_batches == 0:
            raise ConfigError(f"{type(model).__name__} gathers every process's batch in its loss, so "
                              f"distributed evaluation takes equal full batches of {batch_size}: "
                              f"{len(ds)} examples give none for each of {ranks.world_size} processes; "
                              f"use a smaller --batch-size or more validation examples")
    n_batches = math.ceil(len(ds) / batch_size)
    n_batches = min(n_batches, max_batches) if max_batches else n_batches
    bar = progress(math.ceil(n_batches / ranks.world_size), desc or "", "batch",
                   disable=desc is None or not ranks.is_main, leave=False)
    limited = time_limit is not None
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)) if limited else None
    deadline = time.perf_counter() + time_limit if limited else math.inf
    mine = iterate(ds, batch_size, max_batches, ranks.rank, ranks.world_size, order)
    chunk: int | None = None
    try:
        # rounds of one batch per rank; with a time limit the ranks agree after each round whether
        # to stop (a rank whose share is used up still takes part)
        for _ in range(math.ceil(n_batches / ranks.world_size)):
            batch = next(mine, None)
            if batch is not None:
                batch = _to(batch, device)
                if chunk is None:
                    chunk = _chunk(model, batch, validation, device) if chunked else len(batch["x"])
                for start in range(0, len(batch["x"]), chunk):
                    n += _accumulate(model, {k: v[start:start + chunk] for k, v in batch.items()},
                                     validation, totals)
                bar.update(1)
            if limited and (ranks.any(time.perf_counter() >= deadline) if ranks.enabled
                            else time.perf_counter() >= deadline):
                break
    finally:
        bar.close()
        model.train(was_training)
    return _summarise(model, ds, totals, n, limited, batch_size, max_batches)


def _chunk(model: Model, batch: dict[str, torch.Tensor], validation: bool,
           device: torch.device) -> int:
    """Examples per pass of :func:`evaluate`: on the CPU, a likelihood model scores a batch in
    chunks whose largest activation is about :data:`unsup.memory.CHUNK_BYTES` (per-example scores
    do not depend on the chunk; a loss over a batch, such as a contrastive one, does, so other
    models take whole batches, as do GPUs with their caching allocator)."""
    b = len(batch["x"])
    if device.type != "cpu" or not isinstance(model, LikelihoodModel):
        return b
    one = {k: v[:1] for k, v in batch.items()}
    return chunk_size(model, lambda: _accumulate(model, one, validation, {}), b)


def _accumulate(model: Model, batch: dict[str, torch.Tensor], validation: bool,
                totals: dict[str, float]) -> int:
    """Add one batch's sums to ``totals`` (NLL and its square, or each loss term and the squared
    batch loss; the squared standard errors of estimates); returns the batch size."""
    b = len(batch["x"])
    if isinstance(model, LikelihoodModel):
        if validation:
            lp, se = model.validation_log_prob(batch["x"], batch.get("y")), None
        else:  # se: None for exact or deterministic scores
            lp, se = model.log_prob_with_se(batch["x"], batch.get("y"))
        lp = lp.double()
        totals["nll"] = totals.get("nll", 0.0) + float(-lp.sum())
        totals["nll_sq"] = totals.get("nll_sq", 0.0) + float(lp.pow(2).sum())
        if se is not None:
            totals["se_sq"] = totals.get("se_sq", 0.0) + float(se.double().pow(2).sum())
        return b
    losses = model.loss(batch)
    for k, v in losses.items():
        totals[k] = totals.get(k, 0.0) + float(v) * b
    # batch means, for the standard error of a partial evaluation
    totals["loss_sq"] = totals.get("loss_sq", 0.0) + float(losses["loss"]) ** 2 * b
    return b


def _summarise(model: Model, ds: Dataset, totals: dict[str, float], n: int, limited: bool,
               batch_size: int, max_batches: int) -> dict[str, Any]:
    """Means over the ``n`` examples (summed over the ranks), and what :func:`evaluate` reports."""
    ranks = distributed.current()
    if ranks.enabled:  # sums (of nll, se_sq, loss terms, n) over the ranks' shares
        totals = ranks.sum({**totals, "n": float(n)})
        n = int(totals.pop("n"))
    out: dict[str, Any] = {k: v / max(n, 1) for k, v in totals.items()}
    key = "nll" if "nll" in out else "loss"
    spread = out.pop(f"{key}_sq") - out[key] ** 2 if key in out else 0.0  # E[v^2] - E[v]^2
    if limited and n < (min(len(ds), max_batches * batch_size) if max_batches else len(ds)):
        # a uniform random subset: its mean and the mean's standard error (batch means for losses)
        out["partial"] = {"n": n, "of": len(ds),
                          f"{key}_se": math.sqrt(max(spread, 0.0) / max(n - 1, 1)
                                                 * (batch_size if key == "loss" else 1))}
    if "se_sq" in out:  # independent estimates: Var(mean) = sum_i se_i^2 / n^2
        se = math.sqrt(out.pop("se_sq") / max(n, 1))
        if math.isfinite(se):  # NaN: the estimator could not measure its own error (one sample)
            out["nll_se"] = se
    if isinstance(model, LikelihoodModel):
        out["loss"] = out["nll"] / model.spec.dims
        out["bpd"] = nats_to_bits_per_dim(out["nll"], model.spec.dims)
        out["exact"] = bool(model.exact_likelihood)
        out["likelihood"] = "exact" if model.exact_likelihood else model.inexact_kind
    out["n"] = n
    return out


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: Model, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: Model) -> None:
        ema_p = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _jsonable(random.getstate()),
        "numpy": _jsonable(np.random.get_state(legacy=True)),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, list)):
        return [_jsonable(o) for o in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _cpu_copy(obj: Any) -> Any:
    """A copy of a nested state whose tensors are cloned to the CPU (a rollback point)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Trains a model on a dataset under a budget, with validation, logs and checkpoints.

    Args:
        model: any :class:`~unsup.models.base.Model`.
        train: the training set.
        val: the validation set (``None``: no validation; the last weights are the best).
        config: loop options.
        out: run directory for ``last.safetensors``, ``best.safetensors``, ``metrics.csv`` and
            ``tb/``; ``None`` keeps everything in memory (for tests and benchmarks).
        meta: JSON-able description stored in every checkpoint (the CLI stores the model name,
            its config and the data arguments so that ``unsup eval DIR`` can rebuild the run).
    """

    def __init__(self, model: Model, train: Dataset, val: Dataset | None, config: TrainConfig,
                 out: str | Path | None = None, meta: dict[str, Any] | None = None) -> None:
        config.validate(len(train))
        self.cfg, self.train_set, self.val_set = config, train, val
        self.out = Path(out) if out is not None else None
        self.meta = meta or {}
        # under torchrun: joins the process group once; CUDA means cuda:LOCAL_RANK
        self.dist, self.device = distributed.setup(select_device(config.device))
        seed_everything(config.seed)
        self.model = model.to(self.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        if config.channels_last:  # 4-D weights here, 4-D batches as they are drawn
            self.model.to(memory_format=torch.channels_last)
        self.batches = BatchSchedule(len(train), config.batch_size, config.seed)
        self.total_steps = self._total_steps()
        self.optimizer = make_optimizer(model, config)
        # a model trained by alternating updates: the phase of each step, and each phase's
        # parameters, which alone receive gradients (and updates) in its steps
        self.round = phase_round(model)
        self._phase_params = {g["phase"]: g["params"] for g in self.optimizer.param_groups
                              if "phase" in g}
        self.lr_scale, self.rollbacks = 1.0, 0  # lowered by rollbacks after a divergence
        self._rollback_point: dict[str, Any] | None = None  # in-memory state to roll back to
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._scaled_lr_factor)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loss_fn = compile_loss(self.model) if config.compile else self.model.loss
        self.ema = EMA(model, config.ema) if config.ema > 0 else None
        self.step = 0
        self._saved_step: int | None = None  # step held by last.safetensors, when one is written
        self.eval_seconds = 0.0  # time spent validating in this process
        self.eval_cpu_seconds = 0.0  # and the CPU time it took (process time, every thread)
        self.best_val = math.inf
        self.elapsed = 0.0  # training seconds before this process (for --time across resumes)
        self._t0: float | None = None
        self.history: list[dict[str, Any]] = []
        # torchrun: DDP around the loss (None in a single process); DDP gives every rank rank 0's
        # initial weights, and ranks > 0 their own noise (_seed_rank)
        self.parallel = distributed.wrap(self.model, self.loss_fn, self.dist, self.device,
                                         self.batches.batch_size, config.sync_bn,
                                         same_graph=not self.round)
        if self.parallel is not None:
            self.loss_fn = self.parallel.loss
            if self.ema:  # copied before DDP made rank 0's weights everyone's
                self.ema.model.load_state_dict(self.model.state_dict())
        self._seed_rank()
        self.last_metrics: dict[str, Any] = {}  # the latest validation's (stored in checkpoints)

    # --- schedule and budget -------------------------------------------------------------
    def _total_steps(self) -> int | None:
        c = self.cfg
        budgets = []
        if c.steps is not None:
            budgets.append(int(c.steps))
        if c.epochs is not None:
            budgets.append(max(1, math.ceil(c.epochs * self.batches.steps_per_epoch)))
        return min(budgets) if budgets else None

    def _lr_factor(self, step: int) -> float:
        c = self.cfg
        if c.warmup and step < c.warmup:
            return (step + 1) / c.warmup
        if c.schedule == "cosine" and self.total_steps:
            progress = (step - c.warmup) / max(1, self.total_steps - c.warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    def _scaled_lr_factor(self, step: int) -> float:
        return self._lr_factor(step) * self.lr_scale

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.cfg.amp
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp in ("auto", "bf16"):
            if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
                return torch.float16
            return torch.bfloat16
        return torch.float16

    # --- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "step": self.step,
            "best_val": self.best_val,
            "elapsed": self.seconds(),
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            # lr_lambdas holds [None] for plain functions: nothing to store, restored as is
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "train_config": asdict(self.cfg),
            "meta": self.meta,
            "metrics": self.last_metrics,  # of the latest validation
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
        }

    def save(self, name: str) -> None:
        if self.out is not None and self.dist.is_main:  # one writer under torchrun
            save_state(self.out / name, self.state())

    def resume(self, path: str | Path) -> None:
        """Restore everything from a checkpoint so training continues exactly where it stopped."""
        s = load_state(path, device="cpu")
        self._restore(s)
        self.elapsed = s["elapsed"]
        self._saved_step = self.step
        if self.dist.is_main:  # a process killed mid-write leaves its temporary file behind
            remove_stale_temporaries(Path(path).parent)

    def _restore(self, s: dict[str, Any]) -> None:
        """Load a :meth:`state` (all but the elapsed time, which a rollback does not undo)."""
        older = two_way_binary_logits(self.model, s["model"])
        self.model.load_state_dict(merge_two_way_logits(self.model, s["model"]))
        if self.ema and s["ema"] is not None:
            self.ema.model.load_state_dict(merge_two_way_logits(self.ema.model, s["ema"]))
        self.optimizer.load_state_dict(s["optimizer"])
        if older:
            merge_two_way_moments(self.optimizer)
            if self.dist.is_main:
                print("resume: this run gave binary data two logits per dimension (an older "
                      "unsup); it continues with one Bernoulli logit each, the same distribution "
                      "(its moments merged), not the older version's exact continuation",
                      file=sys.stderr)
        _match_param_layout(self.optimizer)
        self.scheduler.load_state_dict(s["scheduler"])
        self.scaler.load_state_dict(s["scaler"])
        _set_rng_state(s["rng"])
        self.step, self.best_val = s["step"], s["best_val"]
        self.lr_scale, self.rollbacks = s.get("lr_scale", 1.0), s.get("rollbacks", 0)
        self.last_metrics = s.get("metrics") or {}
        self._seed_rank()

    def _seed_rank(self) -> None:
        """Give ranks > 0 of a distributed run their own noise (dropout, latent samples).

        Their RNGs restart from ``(seed, rank, step)`` here (at the start, at every checkpoint
        and on resume), so a resumed run repeats them from the step alone, without a checkpoint
        holding every rank's RNG state; rank 0 keeps the single-process RNG the checkpoint stores.
        """
        if self.dist.rank > 0:
            seed_everything(_mix(self.cfg.seed, 0x72616E6B, self.dist.rank, self.step))

    def seconds(self) -> float:
        """Wall-clock seconds of training so far, across resumes."""
        return self.elapsed + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def _keep_step_checkpoint(self) -> None:
        """``--keep-last N``: keep this checkpoint as ``step-NNNNNN.safetensors`` (a hard link to
        ``last``, written atomically) and delete the step files older than the N most recent."""
        assert self.out is not None
        copy_checkpoint(self.out / LAST, self.out / f"step-{self.step:06d}.safetensors")
        kept = sorted((int(m.group(1)), p) for p in self.out.iterdir()
                      if (m := STEP_FILE.fullmatch(p.name)))
        for _, path in kept[:-self.cfg.keep_last]:
            path.unlink(missing_ok=True)

    # --- divergence -----------------------------------------------------------------------
    def _mark_rollback_point(self, saved: bool) -> None:
        """Remember where a rollback returns to: ``last.safetensors`` when it holds the current
        state (``saved``), else a copy of the state in CPU memory."""
        if self.cfg.on_divergence != "rollback":
            return
        self._rollback_point = None if saved else _cpu_copy(self.state())

    def _roll_back(self, error: TrainingDiverged) -> None:
        """After a NaN/inf loss: reload the rollback point with a lower learning rate, or raise.

        The learning-rate factor and the count of rollbacks survive the reload (and are written to
        ``last.safetensors`` at once, so a restart keeps them); the elapsed time is not undone.
        """
        c = self.cfg
        if c.on_divergence != "rollback":
            raise TrainingDiverged(f"{error.args[0]}. {self._kept()}") from None
        if self.rollbacks >= c.max_rollbacks:
            raise TrainingDiverged(f"{error} (after {self.rollbacks} rollback(s) to the last "
                                   f"checkpoint, the learning rate x{self.lr_scale:g}; "
                                   f"--max-rollbacks {c.max_rollbacks})") from None
        diverged_at = self.step + 1
        if self._rollback_point is not None:
            where, state = "the state kept in memory", _cpu_copy(self._rollback_point)
        else:
            assert self.out is not None
            where, state = str(self.out / LAST), load_state(self.out / LAST)
        scale, rollbacks = self.lr_scale * c.rollback_lr_factor, self.rollbacks + 1
        self._restore(state)
        self.lr_scale, self.rollbacks = scale, rollbacks
        # the restored optimiser holds the old rate until the scheduler's next step: set it now
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self._scaled_lr_factor(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        warnings.warn(f"{error.args[0].split(';')[0]}: rolled back to step {self.step} ({where}) "
                      f"with the learning rate x{scale:g} (rollback {rollbacks} of "
                      f"{c.max_rollbacks})", RuntimeWarning, stacklevel=2)
        self._log("rollback", {"diverged_at": float(diverged_at), "lr_scale": scale})
        self.save(LAST)

    # --- logging --------------------------------------------------------------------------
    def _open_logs(self) -> None:
        self._csv = self._tb = None
        if self.out is None or not self.dist.is_main:  # rank 0 alone logs under torchrun
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "metrics.csv"
        rows: list[dict[str, str]] = []
        if path.exists() and self.step > 0:  # drop rows written after the checkpoint we resume
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        self._csv_file = open(path, "w", newline="")
        self._csv = csv.DictWriter(self._csv_file, ["step", "split", "metric", "value", "time"])
        self._csv.writeheader()
        self._csv.writerows(rows)
        if self.cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)

    def _log(self, split: str, metrics: dict[str, float]) -> None:
        row = {"step": self.step, "split": split, **metrics}
        self.history.append(row)
        for k, v in metrics.items():
            if self._csv is not None:
                self._csv.writerow({"step": self.step, "split": split, "metric": k,
                                    "value": f"{v:.6g}", "time": f"{time.time():.3f}"})
            if self._tb is not None:
                self._tb.add_scalar(f"{split}/{k}", v, self.step)
        if self._csv is not None:
            self._csv_file.flush()  # so that `tail -f metrics.csv` shows progress

    def _close_logs(self) -> None:
        if self._csv is not None:
            self._csv_file.close()
        if self._tb is not None:
            self._tb.close()

    # --- the loop -------------------------------------------------------------------------
    def validate(self, time_limit: float | None = None) -> dict[str, Any] | None:
        """Score the validated weights (the EMA copy under ``--ema``) on the validation set: the
        averaged loss terms (:func:`evaluate`, within ``time_limit``) and the model's own
        :meth:`~unsup.models.base.Model.validation_scores` (a kNN probe of a representation
        model's features, always whole), logged under ``val``. ``None`` without a validation set.
        """
        if self.val_set is None:
            return None
        model = self.ema.model if self.ema else self.model
        # Validation draws its noise (latent samples, a GAN's samples) from an RNG of its own, the
        # same at every validation: scores of checkpoints are comparable, and training's random
        # stream does not depend on when validation ran (a resumed run validates where the
        # uninterrupted one did not).
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(_mix(self.cfg.seed, 0x76616C, self.dist.rank))
            # at the training batch size: memory is bounded by training's, whatever the model
            metrics = evaluate(model, self.val_set, self.cfg.batch_size, self.cfg.eval_batches,
                               self.device, validation=True, time_limit=time_limit,
                               desc="validation" if self.cfg.progress and self.dist.is_main else None)
            scores = (model.validation_scores(self.val_set, self.cfg.batch_size)
                      if isinstance(model, Model) else {})
        if self.dist.enabled:  # rank 0's scores for all: every rank selects the same checkpoint
            shared = [scores]
            torch.distributed.broadcast_object_list(shared, src=0)
            scores = shared[0]
        metrics.update({k: float(v) for k, v in scores.items()})
        if "partial" in metrics:
            p = metrics["partial"]
            print(f"validation: {p['n']} of {p['of']} random examples in the {time_limit:.0f} s "
                  f"allowed", file=sys.stderr)
        self._log("val", {k: v for k, v in metrics.items() if isinstance(v, float)})
        return metrics

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        phase = self.round[self.step % len(self.round)] if self.round else None
        with self._only_phase(phase):
            with (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                  else contextlib.nullcontext()):  # (a disabled autocast still costs its context)
                out = self.loss_fn(batch) if phase is None else self.loss_fn(batch, phase)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{f'the {phase} ' if phase else ''}loss is {float(loss.detach())} at step "
                    f"{self.step + 1}; lower --lr, add --clip 1 or --warmup 500, or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        if self.cfg.clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.scaler.step(self.optimizer)  # parameters without a gradient are left as they are
        self.scaler.update()
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        if phase is None:
            return out
        return {(f"{phase}_loss" if k == "loss" else k): v for k, v in out.items()}

    @contextlib.contextmanager
    def _only_phase(self, phase: str | None) -> Iterator[None]:
        """During a step of ``phase``, the other phases' parameters are frozen: no gradient is
        computed for them (the generator's forward pass in a critic step builds no graph), so
        the optimiser step leaves them unchanged."""
        if phase is None:
            yield
            return
        frozen = [p for name, params in self._phase_params.items() if name != phase for p in params]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)
                p.grad = None

    def _draw(self, step: int) -> dict[str, torch.Tensor]:
        """The training batch of ``step`` (this rank's slice of it under torchrun)."""
        batch = self.train_set.batch(self.batches.index(step), self.batches.generator(step))
        return self.dist.local(batch)

    def fit(self, resume: bool = True) -> dict[str, Any]:
        """Train until the budget is spent; returns a summary.

        With ``resume`` and an existing ``last.safetensors`` in the run directory, training
        continues from it. The run directory is locked for the duration (:mod:`unsup.train.lock`).

        Raises:
            Interrupted: SIGINT or SIGTERM arrived; a resumable ``last.safetensors`` was written
                at the next step boundary (a second signal stops at once).
            TrainingDiverged: the loss, a validation score or a weight became NaN or infinite;
                that state was not saved.
        """
        with contextlib.ExitStack() as stack:
            if self.out is not None and self.dist.is_main:
                stack.enter_context(run_lock(self.out))
            stack.enter_context(self._signals_stop_at_step_boundary())
            return self._fit(resume)

    def _fit(self, resume: bool) -> dict[str, Any]:
        c = self.cfg
        self.dist.barrier()  # torchrun: no rank looks for checkpoints while rank 0 writes one
        if resume and self.out is not None and (self.out / LAST).exists():
            self.resume(self.out / LAST)
        self._open_logs()
        self.model.train()
        self._mark_rollback_point(saved=resume and self.out is not None and (self.out / LAST).exists())
        start_step = self.step
        t0 = self._t0 = time.perf_counter()
        cpu0 = time.process_time()
        self.eval_seconds = self.eval_cpu_seconds = 0.0
        bar = progress(self.total_steps, "train", "step", initial=self.step,
                       disable=not c.progress or not self.dist.is_main)
        running: dict[str, float] = {}
        latest: dict[str, torch.Tensor] = {}
        cuda = self.device.type == "cuda"
        feed = BatchFeeder(self._draw, prefetch=c.prefetch == "on" or (c.prefetch == "auto" and cuda),
                           pin=cuda)
        try:
            while True:
                if self.total_steps is not None and self.step >= self.total_steps:
                    break
                # ranks measure their own time, so they agree to stop (at the same step)
                if c.time is not None and self.dist.any(self.seconds() >= c.time):
                    break
                if self._stop_requested():
                    self._stop_for_signal()
                batch = feed(self.step)
                try:
                    out = self._train_step(_to(batch, self.device, self.memory_format))
                    self.step += 1
                    bar.update(1)
                    latest.update(out)  # alternating phases: each phase's latest values
                    if self.step % c.log_every == 0:
                        running = {k: float(v.detach()) for k, v in latest.items()}
                        running["lr"] = self.scheduler.get_last_lr()[0]
                        self._log("train", running)
                        shown = [k for k in running if k != "lr"][:POSTFIX_METRICS]  # the rest: logs
                        bar.set_postfix({k: f"{running[k]:.4g}" for k in shown})
                    if c.eval_every and self.step % c.eval_every == 0:
                        self._checkpoint()
                except TrainingDiverged as e:
                    self._roll_back(e)  # raises unless --on-divergence rollback has rollbacks left
                    bar.n = self.step
                    bar.refresh()
        finally:
            feed.close()
            bar.close()
        step_seconds = time.perf_counter() - t0 - self.eval_seconds  # the loop less its validations
        step_cpu_seconds = time.process_time() - cpu0 - self.eval_cpu_seconds
        final_validation = time.perf_counter()
        if self.step > start_step and (not c.eval_every or self.step % c.eval_every):
            self._checkpoint(time_limit=c.final_eval_time)
        final_validation = time.perf_counter() - final_validation
        self.dist.barrier()  # the final checkpoint is on disk for every rank to read
        self._close_logs()
        total_seconds = self.seconds()
        self.elapsed, self._t0 = total_seconds, None
        steps_run = self.step - start_step
        rule = self._selection()
        return {
            "steps": self.step,
            "best_val": self.best_val,  # lower-is-better (Selection.key); selected_by says what
            "selected_by": {"metric": rule.metric, "higher_is_better": rule.higher_is_better,
                            "value": rule.value(self.best_val) if math.isfinite(self.best_val)
                            and rule.metric is not None else None},
            "train_seconds": total_seconds,
            "step_seconds": step_seconds,  # this process's steps alone
            "step_cpu_seconds": step_cpu_seconds,  # this process's CPU time in them (all threads)
            "validation_seconds": self.eval_seconds,
            "final_validation_seconds": final_validation,
            "examples_per_second": steps_run * self.batches.batch_size
            / max(step_seconds, 1e-9),
            "last_train": running,
        }

    # --- signals --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _signals_stop_at_step_boundary(self) -> Iterator[None]:
        """SIGINT/SIGTERM set a flag that the loop reads between steps (:meth:`_stop_for_signal`);
        the first one restores the previous handlers, so a second signal acts at once (Ctrl-C:
        ``KeyboardInterrupt``; SIGTERM: the process ends). Checkpoint writes are atomic, so
        neither can leave a damaged file. Outside the main thread signals cannot be caught and
        this does nothing."""
        self._signal: int | None = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def handler(signum: int, frame: Any) -> None:
            self._signal = signum
            for sig, old in previous.items():
                signal.signal(sig, old)
            if self.dist.is_main:
                os.write(2, f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of "
                            f"this step (send it again to stop at once)\n".encode())

        for sig in signals:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _stop_requested(self) -> bool:
        """A signal arrived (in any process under torchrun: they stop at the same step)."""
        flag = self._signal is not None
        return self.dist.any(flag) if self.dist.enabled else flag

    def _stop_for_signal(self) -> None:
        """Write ``last`` (no validation, ``best`` unchanged) and raise :class:`Interrupted`."""
        signum = self._signal or signal.SIGINT
        name = signal.Signals(signum).name
        bad = self._non_finite()
        if bad is None:
            self.save(LAST)
            self._saved_step = self.step
        self.dist.barrier()
        self._close_logs()
        if self.out is None:
            kept = "nothing was saved (no run directory)"
        elif bad is not None:
            kept = f"{bad}, so it was not saved; {self._last_good()}"
        else:
            kept = (f"{self.out / LAST} holds step {self.step}; continue exactly from there with the "
                    f"same command and --resume")
        raise Interrupted(f"{name} at step {self.step}: {kept}", 128 + int(signum))

    def _checkpoint(self, time_limit: float | None = None) -> None:
        """Validate, keep the best weights, and write ``last`` (the resume point).

        ``best`` is kept by the rule the model declares, :meth:`~unsup.models.base.Model.
        checkpoint_selection` (default: the lowest validation loss; a representation model's
        highest ``knn_accuracy``, or the last checkpoint without labels); without a validation set
        every checkpoint is the best. ``best_val`` holds the kept checkpoint's score as a
        lower-is-better number (:meth:`~unsup.models.base.Selection.key`: negated when higher is
        better; ``inf``: nothing compared), and checkpoints store it with the latest validation's
        metrics, so a resumed run goes on comparing exactly. A stored ``best_val`` whose
        checkpoint's metrics lack the selected metric was chosen by another rule (a run from
        before it): the next validation starts the comparison afresh.

        A NaN or infinite validation loss or weight is never written: it raises
        :class:`TrainingDiverged` naming the checkpoint that holds the last good state.
        """
        t0, cpu0 = time.perf_counter(), time.process_time()
        metrics = self.validate(time_limit)
        self.eval_seconds += time.perf_counter() - t0
        self.eval_cpu_seconds += time.process_time() - cpu0
        bad = self._non_finite(metrics)
        if bad is not None:
            raise TrainingDiverged(f"{bad} at step {self.step}, so it was not saved; {self._last_good()}")
        keep = True  # without validation (or a metric to compare) the last is the best
        if metrics is not None:
            previous = self.last_metrics
            self.last_metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            selection = self._selection()
            metric = selection.metric
            if metric is None:
                self.best_val = math.inf
            else:
                if metric not in metrics:
                    raise ValueError(f"{type(self.model).__name__} selects checkpoints by validation "
                                     f"{metric!r}, which its validation does not report "
                                     f"(it reports {', '.join(map(str, metrics))})")
                # best_val, if any, was chosen by another rule (checkpoints without metrics are
                # older still: their rule was the loss)
                if metric not in previous and (previous or metric != "loss"):
                    self.best_val = math.inf
                value = float(metrics[metric])
                key = selection.key(value)
                keep = key < self.best_val
                self.best_val = key if keep else self.best_val
        if keep:
            self.save(BEST)
        self.save(LAST)
        self._saved_step = self.step
        saved = self.out is not None and (self.out / LAST).exists()
        if saved and self.cfg.keep_last > 1 and self.dist.is_main:
            self._keep_step_checkpoint()
        self._mark_rollback_point(saved=saved)
        self._seed_rank()

    def _selection(self) -> Selection:
        """How ``best`` is chosen: the model's rule (:meth:`~unsup.models.base.Model.
        checkpoint_selection`; the lowest loss for a plain module), or the last checkpoint when
        there is no validation set."""
        if self.val_set is None:
            return Selection(metric=None, reason="no validation set")
        if isinstance(self.model, Model):
            return self.model.checkpoint_selection(self.val_set)
        return Selection()

    def _non_finite(self, metrics: dict[str, Any] | None = None) -> str | None:
        """What is NaN or infinite: the validation loss or a weight (``None``: all finite)."""
        if metrics is not None and not math.isfinite(float(metrics["loss"])):
            return f"the validation loss is {float(metrics['loss'])}"
        models = [("", self.model)] + ([("EMA ", self.ema.model)] if self.ema else [])
        for kind, model in models:
            for name, p in model.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    return f"{kind}weight {name} is not finite"
        return None

    def _kept(self) -> str:
        """Where the last good state is kept (after a divergence), for an error message."""
        if self.out is not None and self._saved_step is not None:
            return (f"{self.out / LAST} holds the last good state (step {self._saved_step}); "
                    f"--resume continues from it, --on-divergence rollback would have gone on")
        return "No checkpoint was written yet"

    def _last_good(self) -> str:
        """Where the last good state is, for an error message."""
        hint = "lower --lr, add --clip 1 or --warmup 500, or check the data"
        if self.out is not None and self._saved_step is not None:
            return (f"{self.out / LAST} still holds the last good state (step {self._saved_step}; "
                    f"{self.out / BEST} the best); {hint} and continue with --resume")
        return f"no checkpoint holds a good state yet; {hint}"
