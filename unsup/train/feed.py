"""Feeding training batches: drawn one step ahead on a worker thread, pinned for CUDA copies.

The batch of step ``s`` is a function of ``s`` alone (the permutation of its epoch and the
generator of its step, :class:`~unsup.train.trainer.BatchSchedule`), so it can be drawn while step
``s - 1`` still runs without changing a single number: the worker calls the same draw function
with the same step. On CUDA the host copy is placed in pinned (page-locked) memory, from which
``tensor.to(device, non_blocking=True)`` is an asynchronous DMA that overlaps the running kernels;
from ordinary memory that copy is synchronous.

Every dataset here lives in memory (JPEGs are decoded once, at load), so drawing a batch is an
indexing operation of well under a millisecond (``benchmarks/speed.py`` measures it at under 0.1 %
of a CPU step). A thread is enough to hide it: indexing releases the GIL, and nothing is copied
between processes. On a GPU, where a step is 50-100 times shorter, that fraction grows, which is
what the prefetch is for.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

Batch = dict[str, torch.Tensor]


class BatchFeeder:
    """Batches by step: ``feeder(step)``, with the next step's drawn in the background.

    Args:
        draw: ``step -> batch``; must depend on the step only (no global RNG).
        prefetch: draw step ``s + 1`` on a worker thread while the caller trains on step ``s``.
        pin: put batches in pinned memory (for asynchronous host-to-GPU copies).

    Asking for a step other than the one drawn ahead (after a rollback, say) discards the early
    draw and draws the step asked for: the result is always ``draw(step)``.
    """

    def __init__(self, draw: Callable[[int], Batch], prefetch: bool = False, pin: bool = False) -> None:
        self.draw, self.pin = draw, pin
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="unsup-batches") if prefetch else None
        self._ahead: tuple[int, Future[Batch]] | None = None

    def _make(self, step: int) -> Batch:
        batch = self.draw(step)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin else batch

    def __call__(self, step: int) -> Batch:
        if self._ahead is not None and self._ahead[0] == step:
            batch = self._ahead[1].result()
        else:
            if self._ahead is not None:
                self._ahead[1].cancel()
            batch = self._make(step)
        self._ahead = (step + 1, self._pool.submit(self._make, step + 1)) if self._pool else None
        return batch

    def close(self) -> None:
        """Stop the worker (an early draw still running is waited for and dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._ahead = None, None
