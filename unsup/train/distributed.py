"""Data-parallel training on ``torch.distributed``, launched with ``torchrun``.

``torchrun --nproc-per-node W -m unsup.cli train ...`` starts W copies of the same command with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in their environment. :func:`setup` sees them and joins
the process group once (NCCL when training on CUDA, each rank on ``cuda:LOCAL_RANK``; gloo on the
CPU); without them nothing here does anything and a run is exactly the single-process run.

The semantics are those of one process with the same options:

* ``batch_size`` is the *global* batch. Every rank draws the whole batch of the step that
  :class:`~unsup.train.trainer.BatchSchedule` gives (an in-memory index, cheap) and keeps its
  contiguous slice (:meth:`Distributed.local`), so the examples *and* the dynamic-binarisation
  draws of a step are those of the single-process run.
* The gradient is that of the loss averaged over the global batch. DDP averages the ranks'
  gradients, and each rank's loss is a mean over its slice; a slice of ``b_r`` of ``B`` examples
  therefore gets the weight ``b_r W / B`` (1 when ``W`` divides ``B``), which makes
  ``(1/W) sum_r (b_r W / B) grad mean_r = grad mean`` hold for uneven slices too. The only
  requirement is ``B >= W`` (no empty slice).
* The logged training metrics are global means (one small all-reduce per step), and so is the
  loss the divergence check looks at: a NaN on one rank stops every rank at the same step instead
  of leaving the others waiting in the gradient all-reduce.
* Evaluation shards the batches round-robin (rank ``r`` takes batches ``r, r + W, ...``) and sums
  the per-rank totals (:meth:`Distributed.sum`): every example counts once, whatever the size of
  the last batch.

Models that draw noise during training (dropout, the reparameterisation of VAEs, dequantisation)
get a different random stream on every rank (the trainer reseeds ranks > 0 from
``(seed, rank, step)``), so no two ranks share noise; such runs are repeatable but are *not* the
single-process run. Two model-side statistics are not synchronised: buffers updated in the forward
pass (RealNVP/MAF ``BatchNormFlow`` running statistics, the VQ-VAE's EMA codebook) are broadcast
from rank 0 before every step (DDP's default), so they follow rank 0's slice, and
``BatchNormFlow`` normalises with per-rank batch statistics. ``--sync-bn`` converts
``torch.nn`` batch-norm layers only (torch synchronises them on GPUs only).

References:
    [1] Li et al., PyTorch Distributed: Experiences on Accelerating Data Parallel Training,
        VLDB 2020 (DistributedDataParallel).
    [2] Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour, 2017 (the global
        batch as the unit of the optimisation semantics).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from unsup.errors import ConfigError
from unsup.nn.distributed import Batch, Distributed, current, is_main_process

__all__ = ["DataParallel", "Distributed", "current", "is_main_process", "setup", "wrap"]


def setup(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, once per process.

    Args:
        device: the device the run asked for (``select_device``).

    Returns:
        This process's place in the group and the device it trains on: ``cuda:LOCAL_RANK`` for
        any CUDA device under more than one process, ``device`` otherwise.

    Raises:
        ConfigError: a device that torch cannot train data-parallel on (MPS), or fewer GPUs than
            processes on this machine.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not (dist.is_available() and dist.is_initialized()):
        if world <= 1:
            return Distributed(), device
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"data-parallel training runs on CUDA (NCCL) or the CPU (gloo), not "
                              f"{device.type}; pass --device cpu or cuda")
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if local >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {local}, but torch sees {torch.cuda.device_count()} "
                                  f"GPU(s); start at most that many processes per machine")
            torch.cuda.set_device(local)
        # init_method env://: MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE come from torchrun.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_shutdown)
    ctx = current()
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    return ctx, device


def _shutdown() -> None:
    """At exit: wait for every rank, then tear the group down. Without the barrier, the rank that
    hosts the rendezvous store (rank 0) can tear down while another is still inside its own
    teardown, which then aborts ("terminate called without an active exception")."""
    if not dist.is_initialized():
        return
    # A rank that died makes the barrier raise (gloo's monitored barrier: no hang); that rank's
    # own error is the one to report, so this one only tears down.
    with contextlib.suppress(RuntimeError):
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    dist.destroy_process_group()


class _Loss(nn.Module):
    """The trainer's loss function as ``forward``: DDP only prepares its gradient all-reduce in
    ``forward``, and the trainer never calls a model's ``forward``."""

    def __init__(self, model: nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.model = model  # a submodule, so that DDP finds (and synchronises) its parameters
        self.loss_fn = loss_fn  # model.loss, or a compiled version of it

    def forward(self, batch: Batch, *phase: str) -> dict[str, torch.Tensor]:
        return self.loss_fn(batch, *phase)


class DataParallel:
    """A model's loss under DistributedDataParallel, weighted and reduced as the module docstring
    explains (one small all-reduce of the loss terms per step, besides DDP's gradient all-reduce).

    Args:
        model: the (unwrapped) model; checkpoints keep storing its own ``state_dict``.
        loss_fn: what computes the model's loss on a batch (``model.loss`` or a compiled version).
        ctx: this process's place in the group (more than one process).
        device: the device the model is on.
        batch_size: the global batch size.
        same_graph: every step uses the same parameters (``False`` for a model trained by
            alternating phases, each of which updates some of them).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]],
                 ctx: Distributed, device: torch.device, batch_size: int,
                 same_graph: bool = True) -> None:
        if batch_size < ctx.world_size:
            raise ConfigError(f"--batch-size {batch_size} is the global batch: it must be at least "
                              f"the number of processes ({ctx.world_size})")
        self.ctx, self.batch_size = ctx, batch_size
        lo, hi = ctx.local_range(batch_size)
        self.share = (hi - lo) / batch_size  # b_r / B
        self.weight = self.share * ctx.world_size  # b_r W / B: 1 when W divides B
        # static_graph: the set of parameters a loss uses is the same at every step, which lets
        # DDP cope with parameters that get no gradient at all (NICE's unused scales) without
        # the per-step graph search of find_unused_parameters. Alternating phases change the set
        # from step to step: they need that search.
        self.ddp = nn.parallel.DistributedDataParallel(
            _Loss(model, loss_fn), device_ids=[device.index] if device.type == "cuda" else None,
            static_graph=same_graph, find_unused_parameters=not same_graph)

    def loss(self, batch: Batch, *phase: str) -> dict[str, torch.Tensor]:
        """The model's loss on this rank's slice (in ``phase``, for a model trained by several
        updates): the gradient of ``"loss"`` is ``b_r W / B`` times the local mean's, its value
        (and every other entry) the global-batch mean."""
        out = self.ddp(batch, *phase)
        names = list(out)
        local = torch.stack([out[k].detach().float().reshape(()) for k in names]) * self.share
        dist.all_reduce(local)  # sum_r (b_r / B) m_r: the means over the global batch
        means = dict(zip(names, local.unbind(), strict=True))
        loss = out["loss"] * self.weight if self.weight != 1 else out["loss"]
        means["loss"] = loss + (means["loss"] - loss).detach()  # value: global; gradient: local
        return means


def wrap(model: nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]], ctx: Distributed,
         device: torch.device, batch_size: int, sync_bn: bool = False,
         note: Callable[[str], Any] = warnings.warn, same_graph: bool = True) -> DataParallel | None:
    """DDP around ``model`` and its ``loss_fn`` under more than one process (``None`` for a
    single process).

    With ``sync_bn`` the ``torch.nn`` batch-norm layers become :class:`torch.nn.SyncBatchNorm`
    (in place: same parameters and buffers, so the optimiser and the checkpoint keys are
    unchanged), which normalise with the statistics of the global batch.

    Raises:
        ConfigError: ``sync_bn`` on the CPU for a model with batch norm (torch synchronises batch
            norm on GPUs only), or a global batch smaller than the number of processes.
    """
    if not ctx.enabled:
        if sync_bn:
            note("--sync-bn: a single process has nothing to synchronise; batch norm is unchanged")
        return None
    if sync_bn:
        n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if n_bn == 0:
            if ctx.is_main:
                note("--sync-bn: the model has no torch.nn batch-norm layer; nothing to synchronise")
        elif device.type != "cuda":
            raise ConfigError("--sync-bn: torch synchronises batch norm on GPUs only; drop it on "
                              "the CPU")
        else:  # a Model is never itself a batch-norm layer, so its children are swapped in place
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DataParallel(model, loss_fn, ctx, device, batch_size, same_graph)
