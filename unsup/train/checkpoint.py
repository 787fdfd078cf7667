"""Checkpoints that are written atomically and read without unpickling anything.

A checkpoint is one `safetensors <https://github.com/huggingface/safetensors>`_ file: tensors under
prefixed names (``model.``, ``ema.``, ``optim.``, ``rng.``) and everything else (step, optimiser
hyper-parameters, scheduler and RNG states of Python and NumPy, configs) as JSON in the file's
metadata. safetensors parses a fixed header and raw buffers, so loading a file from an untrusted
source cannot execute code, unlike ``torch.load`` of a pickle.

Writes go to a temporary file in the same directory, are flushed to disk, and replace the old file
with :func:`os.replace`, so a crash mid-write never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from unsup.errors import CheckpointError

_META_KEY = "unsup"
_TENSOR_MARK = "__tensor__"


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor inside a nested structure by a reference; collect the tensors."""
    if isinstance(obj, torch.Tensor):
        name = prefix
        tensors[name] = obj.detach().cpu().contiguous()
        return {_TENSOR_MARK: name}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError(f"cannot store dict keys of {prefix}")
        # JSON keys are strings; remember which were ints (optimizer state is keyed by int).
        return {"__dict__": [[k, _split(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        kind = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {kind: [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a checkpoint")


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if _TENSOR_MARK in obj:
            return tensors[obj[_TENSOR_MARK]]
        if "__dict__" in obj:
            return {k: _join(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_join(v, tensors) for v in obj["__tuple__"])
        if "__list__" in obj:
            return [_join(v, tensors) for v in obj["__list__"]]
        raise CheckpointError(f"unexpected structure in checkpoint metadata: {sorted(obj)}")
    return obj


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically write a nested state (dicts/lists/tuples of tensors and JSON scalars)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    structure = _split(state, "s", tensors)
    # safetensors refuses tensors that share memory; clone the (rare) aliases.
    seen: dict[int, str] = {}
    for name, t in list(tensors.items()):
        key = t.untyped_storage().data_ptr() if t.numel() else -1
        if key in seen and key != -1:
            tensors[name] = t.clone()
        seen[key] = name
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_META_KEY: json.dumps(structure)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a state written by :func:`save_state`.

    Raises:
        CheckpointError: the file is missing, not a safetensors file, or not an unsup checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        tensors = load_file(str(path), device=str(device))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable unsup checkpoint (safetensors): {e}") from None
    if _META_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not an unsup checkpoint")
    return _join(json.loads(meta[_META_KEY]), tensors)
