"""The training loop, evaluation and checkpoints shared by all models."""

from unsup.train import latents, reflow, vqcodes  # noqa: F401  (register the sources made from runs)
from unsup.train.checkpoint import load_state, save_state
from unsup.train.runs import load_run
from unsup.train.trainer import BEST, LAST, TrainConfig, Trainer, evaluate, select_device

__all__ = ["BEST", "LAST", "TrainConfig", "Trainer", "evaluate", "load_run", "load_state",
           "save_state", "select_device"]
