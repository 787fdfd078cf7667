"""Rebuild a trained model from a run directory (what ``unsup eval`` and ``unsup sample`` do)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unsup.data.args import DataArgs
from unsup.data.base import DataSpec
from unsup.errors import CheckpointError
from unsup.models import MODELS, Model, config_for
from unsup.train.checkpoint import load_state, merge_two_way_logits
from unsup.train.trainer import BEST, LAST


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu",
             ema: bool = True) -> tuple[Model, dict[str, Any]]:
    """Load the model of a run.

    Args:
        run_dir: the ``--out`` directory of ``unsup train``.
        which: ``best`` (the checkpoint the model's rule selected: the lowest validation loss by
            default, :meth:`~unsup.models.base.Model.checkpoint_selection`) or ``last`` (the
            resume point).
        device: where to put the model.
        ema: the moving average of the weights when the run kept one (``--ema``); False: the
            trained weights themselves.

    Returns:
        The model in eval mode (EMA weights when the run kept them and ``ema``) and the checkpoint's
        ``meta`` (model name and config, data arguments, spec) with ``step`` added.

    Raises:
        CheckpointError: the directory holds no run or the checkpoint cannot be read.
    """
    run_dir = Path(run_dir)
    path = run_dir / (BEST if which == "best" else LAST)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; pass the --out directory of "
                              f"`unsup train`")
    if not path.exists():
        raise CheckpointError(f"{run_dir} holds no {path.name}; train first with "
                              f"`unsup train MODEL --out {run_dir}`")
    state = load_state(path, device="cpu")
    meta = dict(state.get("meta") or {})
    if "model" not in meta or "spec" not in meta:
        raise CheckpointError(f"{path} does not say which model it holds (written outside the CLI?)")
    if meta["model"] not in MODELS:
        config_for(meta["model"])  # imports the model modules, raises a clear error if unknown
    spec = DataSpec.from_dict(meta["spec"])
    model = MODELS.get(meta["model"])(spec, config_for(meta["model"], **meta["model_config"]))
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    model.load_state_dict(merge_two_way_logits(model, weights))  # older binary runs, exactly
    meta["step"] = state["step"]
    return model.to(device).eval(), meta


# data-name prefix -> the view of a model trained on data derived from another run (vq-codes)
VIEWS: dict[str, Callable[..., Any]] = {}


def original_view(model: Model, meta: dict[str, Any], device: str | torch.device = "cpu"):
    """For a run trained on data derived from another run (a prior over a VQ-VAE's codes): the
    model of the original data and that data's :class:`~unsup.data.DataArgs`, registered in
    :data:`VIEWS` by the source that derives the data; ``None`` for any other run."""
    prefix = ((meta.get("data") or {}).get("name") or "").split(":", 1)[0]
    view = VIEWS.get(prefix)
    return view(model, meta, device) if view is not None else None


def run_data(meta: dict[str, Any], split: str):
    """The split ``"train"``, ``"val"`` or ``"test"`` of the data a run was trained on, as its
    ``meta["data"]`` (:class:`~unsup.data.DataArgs`) describes."""
    return DataArgs.from_dict(meta["data"]).load(split)
