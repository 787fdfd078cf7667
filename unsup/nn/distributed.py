"""Where this process sits in a ``torch.distributed`` process group: what models need to know.

Methods that share negatives across processes (SimCLR, MoCo, CPC) ask :func:`current` for their
rank and the world size; the trainer uses the same :class:`Distributed` to slice batches, agree on
stopping and sum evaluation totals. Joining the group and wrapping a model in
DistributedDataParallel belong to the training loop (:mod:`unsup.train.distributed`); this module
only reads the group, so models can import it without importing training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in the process group (``world_size`` 1: no process group).

    Attributes:
        rank: this process's index in ``[0, world_size)``; rank 0 writes files and logs.
        local_rank: its index on this machine (the GPU it uses).
        world_size: number of processes.
        device: where collectives put their tensors (a CUDA device under NCCL).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has written a checkpoint the others read)."""
        if self.enabled:
            dist.barrier()

    def local_range(self, n: int) -> tuple[int, int]:
        """This rank's contiguous part ``[lo, hi)`` of ``n`` positions (sizes differ by at most 1)."""
        return n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size

    def local(self, batch: Batch) -> Batch:
        """This rank's slice of a global batch (the batch itself in a single process)."""
        if not self.enabled:
            return batch
        lo, hi = self.local_range(len(batch["x"]))
        return {k: v[lo:hi] for k, v in batch.items()}

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on some rank (a decision all ranks must share,
        such as stopping on a wall-clock budget that each rank measures itself)."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def sum(self, totals: dict[str, float]) -> dict[str, float]:
        """Sum per-rank totals over the ranks (keys missing on a rank count as 0).

        The totals travel as Python floats (float64) and are added in rank order, so every rank
        gets the same result; a rank that evaluated no batch contributes an empty dict.
        """
        if not self.enabled:
            return totals
        parts: list[dict[str, float] | None] = [None] * self.world_size
        dist.all_gather_object(parts, totals)
        out: dict[str, float] = {}
        for part in parts:
            for k, v in (part or {}).items():
                out[k] = out.get(k, 0.0) + v
        return out


def current() -> Distributed:
    """The process group this process belongs to (a single process if none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return Distributed(rank, local, world, device)


def is_main_process() -> bool:
    """Rank 0, or a single process; usable before :func:`setup` (reads ``RANK`` set by torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


