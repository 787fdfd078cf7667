"""Noise and sample pairs of a trained flow-matching run as a dataset, ``reflow:RUN_DIR``.

Reflow (Liu, Gong & Liu 2023) straightens a rectified flow: a first model's ODE maps noise
``z`` to a sample ``x = ODE(z)``; a second flow-matching model is trained on the straight lines
between these *coupled* pairs instead of independent noise and data. The new coupling's paths
cross less, so the new field's trajectories are straighter and a few Euler steps (one, ideally)
land near where many did:

    unsup train flow-matching --data two-moons --steps 5000 --out runs/fm
    unsup train flow-matching --data reflow:runs/fm --steps 5000 --out runs/fm-reflow
    unsup sample runs/fm-reflow --sampler euler --steps 1 --out one-step.png

The training split holds ``n`` pairs (option ``n``, default 10,000): the teacher's samples as
``x`` and their starting noise as each batch's ``noise``, drawn with the teacher's default sampler
(option ``steps``: its steps), from the request's seed. The validation and test splits are the
teacher's own data, so the reflowed model is scored on the real data. Discrete data: the samples
are rounded to levels like any sample (the pair then holds up to half a level of error, inside
the dequantisation noise).
"""

from __future__ import annotations

import torch

from unsup.data import DataArgs
from unsup.data.base import Batch, TensorDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError
from unsup.train.runs import load_run

_CHUNK = 1000  # pairs drawn at once


class CoupledDataset(TensorDataset):
    """Samples ``x`` with the noise each was drawn from beside each batch (``noise``)."""

    def __init__(self, x: torch.Tensor, noise: torch.Tensor, base: TensorDataset, name: str) -> None:
        super().__init__(x, base.spec, name=name, split="train", class_names=base.class_names)
        self.noise = noise

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Batch:
        return {**super().batch(index, generator), "noise": self.noise[index]}

    def subset(self, index: torch.Tensor, split: str) -> CoupledDataset:
        return CoupledDataset(self.x[index], self.noise[index], self, self.name)


@DATASETS.register(
    "reflow:PATH",
    "noise/sample pairs of a trained flow-matching run (train; options n, steps) and its data "
    "(val, test): reflow",
)
def reflow(req: Request) -> TensorDataset:
    assert req.arg is not None
    teacher, meta = load_run(req.arg, req.option("checkpoint", "best"))
    if meta["model"] != "flow-matching" or teacher.num_classes is not None:
        raise ConfigError(f"{req.name}: {req.arg} holds a {meta['model']} run; reflow needs an "
                          f"unconditional flow-matching run (`unsup train flow-matching --out {req.arg}`)")
    d = DataArgs.from_dict(meta["data"])
    d.root, d.download = req.root or d.root, req.download or d.download
    data = d.load(req.split)
    if req.split != "train":
        return data
    n, steps = req.option("n", 10000), req.option("steps", teacher.config.sample_steps)
    if n < 1 or steps < 1:
        raise ConfigError(f"{req.name}: options n and steps must be >= 1, got {n}, {steps}")
    noise = torch.randn(n, *data.spec.shape, generator=torch.Generator().manual_seed(req.seed))
    teacher.eval()
    with torch.no_grad():
        samples = torch.cat([teacher.from_unit(teacher.draw_from(z, steps=steps)).cpu()
                             for z in noise.split(_CHUNK)])
    return CoupledDataset(samples, noise, data, req.name)
