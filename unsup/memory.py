"""Memory behaviour on the CPU: keep freed memory for reuse, and evaluate in bounded chunks.

Two measured problems (``benchmarks/memory.py``, ``docs/results.md``), one cause: PyTorch's CPU
tensors come from glibc's ``malloc``, which serves blocks above its *mmap threshold* (at most
32 MB by default) with a fresh ``mmap`` and returns them to the kernel when freed. Every
large activation is then a new mapping that the kernel zero-fills page by page on first touch:
evaluating a Gated PixelCNN at batch 256 spent more CPU in the kernel than in arithmetic.

* :func:`keep_freed_memory` raises the mmap and trim thresholds (``mallopt``), so freed blocks
  stay in the heap and the next step reuses them without page faults. The process keeps its peak
  memory instead of returning it between steps -- the usual trade of a training process. The
  ``unsup`` command calls it at start; ``UNSUP_KEEP_FREED_MEMORY=0`` turns it off. It does
  nothing where the C library is not glibc (said by its return value).
* :func:`chunk_size` picks how many examples one evaluation pass takes so that the largest
  activation stays near ``budget`` bytes (a cache-sized working set): it runs the scoring
  function on one example with forward hooks that record every module's output size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap; up to 1 GiB free stays mapped
CHUNK_BYTES = 8 << 20  # largest activation of one evaluation chunk (see benchmarks/memory.py)


def keep_freed_memory(enable: bool | None = None) -> bool:
    """Make glibc keep freed blocks (up to :data:`KEEP_BYTES`) for reuse instead of unmapping them.

    Args:
        enable: None reads ``UNSUP_KEEP_FREED_MEMORY`` (default on; ``0`` turns it off).

    Returns:
        True when the thresholds were set; False when disabled or the C library is not glibc.
    """
    if enable is None:
        enable = os.environ.get("UNSUP_KEEP_FREED_MEMORY", "1") != "0"
    if not enable:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only: musl's mallopt does nothing
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))


def largest_activation(model: nn.Module, call: Callable[[], Any]) -> int:
    """Bytes of the largest tensor any submodule of ``model`` returns while ``call()`` runs."""
    largest = 0

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal largest
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                largest = max(largest, t.numel() * t.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        call()
    finally:
        for h in handles:
            h.remove()
    return largest


def chunk_size(model: nn.Module, score_one: Callable[[], Any], batch_size: int,
               budget: int | None = None) -> int:
    """Examples per pass so that the largest activation of a pass is about ``budget`` bytes.

    Args:
        model: the module whose submodules' outputs are measured.
        score_one: scores one example (what the evaluation does per batch, on a batch of one).
        batch_size: the most examples a pass may take.
        budget: bytes allowed for the largest activation (None: :data:`CHUNK_BYTES`).

    Returns:
        A size in ``[1, batch_size]``; ``batch_size`` when no module returned a tensor. It runs
        ``score_one`` under :func:`torch.random.fork_rng`, so a stochastic score (importance
        samples) draws the same numbers afterwards as without this measurement.
    """
    with torch.random.fork_rng(devices=[]):
        per_example = largest_activation(model, score_one)
    if per_example == 0:
        return batch_size
    return max(1, min(batch_size, (CHUNK_BYTES if budget is None else budget) // per_example))
