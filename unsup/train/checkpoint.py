"""Checkpoints that are written atomically and read without unpickling anything.

A checkpoint is one `safetensors <https://github.com/huggingface/safetensors>`_ file: tensors under
prefixed names (``model.``, ``ema.``, ``optim.``, ``rng.``) and everything else (step, optimiser
hyper-parameters, scheduler and RNG states of Python and NumPy, configs) as JSON in the file's
metadata. safetensors parses a fixed header and raw buffers, so loading a file from an untrusted
source cannot execute code, unlike ``torch.load`` of a pickle.

Writes go to a temporary file in the same directory, are flushed to disk, and replace the old file
with :func:`os.replace`, so a crash mid-write never leaves a truncated checkpoint behind.

safetensors itself does not checksum anything, so the metadata also holds a SHA-256 digest of
the other metadata and of every tensor (name, dtype, shape, bytes), checked on load: a truncated
file, flipped bits in the tensor data or an edited header are refused with a
:class:`~unsup.errors.CheckpointError` naming the file and the problem, instead of resuming from
silently wrong weights. The unsup and torch versions that wrote the file are stored next to it
(``unsup.version``, ``torch.version``), readable by any safetensors tool.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from unsup.errors import CheckpointError
from unsup.version import __version__

_META_KEY = "unsup"
def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a state written by :func:`save_state` stores beside its tensors (step, configs,
    ``meta``), read from the safetensors header alone: no tensor is read or checked (the checksum
    covers them; :func:`load_state` verifies it), and each appears as ``None``.

    Raises:
        CheckpointError: the file has no safetensors header or is not an unsup checkpoint.
    """
    try:
        meta = _header(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable unsup checkpoint: safetensors cannot parse "
                              f"its header ({e})") from None
    return _join(_structure(path, meta), _NoTensors())


def _header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors metadata of the unsup checkpoint ``path`` (refused without unsup's entry)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if _META_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not an unsup checkpoint (its "
                              f"metadata has no {_META_KEY!r} entry)")
    return meta


def _structure(path: str | os.PathLike[str], meta: dict[str, str]) -> Any:
    """The nested state of a checkpoint's header, tensors still references."""
    try:
        return json.loads(meta[_META_KEY])
    except ValueError as e:
        raise CheckpointError(f"{path} is not a readable unsup checkpoint: its {_META_KEY!r} metadata "
                              f"is not valid JSON ({e})") from None


class _NoTensors(dict):
    """The tensors of :func:`read_metadata`: none read, every reference ``None``."""

    def __missing__(self, key: str) -> None:
        return None


_DIGEST_KEY = "unsup.sha256"
_TENSOR_MARK = "__tensor__"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


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

    metadata = {_META_KEY: json.dumps(structure), "unsup.version": __version__,
                "torch.version": torch.__version__}
    metadata[_DIGEST_KEY] = _digest(metadata, tensors)

    def write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=metadata)
        _fsync(tmp)

    _write_atomically(path, write)


def _fsync(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path`` (atomic on
    POSIX): a reader sees the old file or the new one, never a part; a failed write leaves none."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of writes that a killed process never finished; returns them.

    Only call it when no other process writes checkpoints into ``directory``.
    """
    stale = [p for p in Path(directory).glob(".*.safetensors.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def copy_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Atomically make ``dst`` a copy of the checkpoint ``src``.

    A hard link where the file system allows it (no extra disk space; :func:`save_state` replaces
    files rather than rewriting them, so the copy never changes), a byte copy otherwise.
    """
    src = Path(src)

    def write(tmp: str) -> None:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            _fsync(tmp)

    _write_atomically(Path(dst), write)


def _digest(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the metadata (but the digest) and of each tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps(sorted((k, v) for k, v in metadata.items() if k != _DIGEST_KEY)).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"\n{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _layout_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a complete safetensors file, read from its first bytes and header;
    ``None`` if the layout is sound (the data may still be altered: the digest tells)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if size == 0:
            return "the file is empty (a write that never finished, or a copy that failed)"
        if head.startswith(b"PK\x03\x04"):
            return ("it is a zip archive, most likely a torch.save pickle (.pt/.pth); unsup "
                    "checkpoints are safetensors files, and pickles are never loaded because "
                    "unpickling can run arbitrary code")
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            return ("it is a Python pickle; unsup checkpoints are safetensors files, and pickles "
                    "are never loaded because unpickling can run arbitrary code")
        if size < 8:
            return f"it is truncated: {size} bytes, less than the 8-byte header length"
        n = int.from_bytes(head, "little")
        if n > _MAX_HEADER:
            return (f"it is not a safetensors file: its first 8 bytes announce a header of {n} "
                    f"bytes")
        if 8 + n > size:
            return f"it is truncated: the header alone should be {n} bytes, the file has {size - 8}"
        raw = f.read(n)
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        return f"its header is garbled (not the JSON safetensors writes: {e})"
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        return (f"it is truncated: {size} of {expected} bytes are present (tensor data is "
                f"missing at the end)")
    if size > expected:
        return f"it has {size - expected} unexpected bytes after the tensor data"
    return None


def load_state(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a state written by :func:`save_state`, verifying its checksum.

    Checkpoints written before checksums were stored load with a warning that they could not be
    verified.

    Raises:
        CheckpointError: the file is missing, not a safetensors file (a pickle is refused, never
            unpickled), truncated, garbled, altered since it was written (checksum mismatch), or
            not an unsup checkpoint. The message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    bad = f"{path} is not a readable unsup checkpoint"
    try:
        problem = _layout_problem(path)
        if problem is not None:
            raise CheckpointError(f"{bad}: {problem}")
        tensors = load_file(str(path), device="cpu")
        meta = _header(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{bad}: safetensors cannot parse it ({e})") from None
    if _DIGEST_KEY in meta:
        if _digest(meta, tensors) != meta[_DIGEST_KEY]:
            raise CheckpointError(
                f"{bad}: its contents do not match the SHA-256 checksum stored when it was written "
                f"(tensor data or header altered or damaged since); resume from another "
                f"checkpoint (best.safetensors, a step-*.safetensors) or start afresh")
    else:
        warnings.warn(f"{path} carries no checksum (written by an unsup before checkpoints had "
                      f"one): loaded without verifying its integrity", stacklevel=2)
    structure = _structure(path, meta)
    tensors = {k: v.to(device) for k, v in tensors.items()}
    return _join(structure, tensors)


def two_way_binary_logits(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """Names of ``weights`` written by an unsup older than one logit per binary dimension.

    Such a model emitted two logits ``(a, b)`` per binary dimension, innermost in its output
    layer's rows, where it now emits one (:func:`~unsup.nn.layers.logit_width`): those tensors
    have exactly twice the rows of the model's, and the model has ``num_logits == 1``.
    """
    if getattr(model, "num_logits", None) != 1:
        return []
    own = model.state_dict()
    return [k for k, v in weights.items() if k in own and v.dim() >= 1
            and v.shape[0] == 2 * own[k].shape[0] and v.shape[1:] == own[k].shape[1:]]


def merge_two_way_logits(model: torch.nn.Module, weights: dict[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
    """``weights`` with every two-way binary output (:func:`two_way_binary_logits`) replaced by
    its single logit ``b - a``: ``softmax((a, b))_1 = sigmoid(b - a)``, so the model computes
    exactly the distribution the old one did."""
    out = dict(weights)
    for k in two_way_binary_logits(model, weights):
        pairs = weights[k].reshape(-1, 2, *weights[k].shape[1:])
        out[k] = pairs[:, 1] - pairs[:, 0]
    return out


def merge_two_way_moments(optimizer: torch.optim.Optimizer) -> None:
    """After loading the optimiser state of an older binary run (:func:`merge_two_way_logits`),
    give each merged parameter the state of its single logit ``l = b - a``.

    The old loss depended on ``b - a`` alone, so its gradients were ``-g`` for ``a`` and ``g`` for
    ``b``: first moments (``exp_avg``, momentum) become ``(m_b - m_a) / 2 = m`` and second moments
    (names with ``sq``) ``(v_a + v_b) / 2 = v``, the moments of ``g`` itself. Resuming then
    continues with one logit's dynamics: what the older unsup would have done differs (it moved
    ``b - a`` by two steps per update), which is why it says so when it resumes.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, v in optimizer.state.get(p, {}).items():
                if (isinstance(v, torch.Tensor) and v.dim() == p.dim() and v.dim() >= 1
                        and v.shape[0] == 2 * p.shape[0] and v.shape[1:] == p.shape[1:]):
                    pairs = v.reshape(-1, 2, *v.shape[1:])
                    optimizer.state[p][name] = (pairs.mean(1) if "sq" in name
                                                else (pairs[:, 1] - pairs[:, 0]) / 2)
