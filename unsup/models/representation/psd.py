"""Predictive sparse decomposition: sparse coding plus a fast encoder that predicts the codes [1].

Sparse coding (:mod:`unsup.models.representation.sparse_coding`) needs an iterative optimisation per example.
PSD trains, jointly with the dictionary ``D``, a feed-forward predictor

    F(x) = G tanh(W x + b),      G = diag(g) a learned gain per atom,

and adds to the sparse-coding energy a term tying the codes to the prediction:

    E(x, z) = 1/2 ||x - D z||^2 + lam ||z||_1 + alpha/2 ||z - F(x)||^2.

Training on a batch: (1) infer ``z* = argmin_z E(x, z)`` with ISTA/FISTA warm-started at ``F(x)``
and with ``F(x)`` held fixed (the prediction term is an extra quadratic in the smooth part);
(2) take a gradient step on the loss ``E(x, z*)`` with ``z*`` constant, so ``D`` learns only
through the reconstruction term and ``W, b, g`` only through the prediction term (a regression of
``F(x)`` onto ``z*``). After training, ``encode(x) = F(x)``: one matrix product, no inference.

We write both quadratics with a factor 1/2 like :mod:`unsup.models.representation.sparse_coding`; [1] writes
``||x - Dz||^2 + lam' |z|_1 + alpha ||z - F(x)||^2``, twice our energy when ``lam' = 2 lam``
(``alpha`` is the same in both). The columns of ``D`` are renormalised to unit length at the
start of every ``loss``, as in sparse coding.

References:
    [1] K. Kavukcuoglu, M. Ranzato, Y. LeCun. Fast inference in sparse coding algorithms with
        applications to object recognition. Tech. report CBLL-TR-2008-12-01, NYU, 2008
        (arXiv:1010.3467).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Model
from unsup.models.representation.sparse_coding import INFER, check_sparse_options, flat_inputs, unit_columns


@dataclass
class PSDConfig:
    """Hyper-parameters of :class:`PSD`.

    Attributes:
        atoms: dictionary size K, also the predictor's output size.
        lam: weight of the L1 penalty on the inferred codes.
        alpha: weight of the prediction term alpha/2 ||z - F(x)||^2.
        inference: ``fista`` or ``ista``, warm-started at the prediction F(x).
        inference_steps: iterations of that algorithm per training batch.
        center: remove each example's mean before coding (patches: their brightness).
    """

    atoms: int = 128
    lam: float = 0.5
    alpha: float = 1.0
    inference: str = "fista"
    inference_steps: int = 50
    center: bool = True


@register("psd", "predictive sparse decomposition: sparse coding + a tanh encoder trained to "
          "predict the codes (encode = the fast predictor)",
          presets={"paper": {"atoms": 256, "lam": 0.5, "alpha": 1.0, "inference_steps": 100}})
class PSD(Model):
    """Sparse coding with a learned code predictor (module docstring).

    Raises:
        ConfigError: discrete data, or options out of range.
    """

    Config = PSDConfig
    encodes = True

    def __init__(self, spec: DataSpec, config: PSDConfig) -> None:
        super().__init__(spec, config)
        self.require(levels=False)
        c = config
        check_sparse_options("psd", c.atoms, c.lam, c.inference, c.inference_steps)
        if not c.alpha > 0:
            raise ConfigError(f"psd: alpha must be > 0, got {c.alpha}")
        self.D = nn.Parameter(unit_columns(torch.randn(spec.dims, c.atoms)))  # (dims, K)
        self.W = nn.Linear(spec.dims, c.atoms)
        self.gain = nn.Parameter(torch.ones(c.atoms))  # the diagonal of G

    @property
    def dictionary(self) -> torch.Tensor:
        """``D`` with unit-norm columns, ``(dims, K)`` (no gradient)."""
        return unit_columns(self.D.detach())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``F(x) = G tanh(W x + b)`` of flat examples ``(B, dims)``, ``(B, K)``."""
        return self.gain * torch.tanh(self.W(x))

    def infer(self, x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """``z* = argmin_z E(x, z)`` warm-started at (and tied to) ``prediction``, ``(B, K)``."""
        c = self.config
        p = prediction.detach()
        return INFER[c.inference](x, self.dictionary, c.lam, c.inference_steps, p,
                                  alpha=c.alpha, target=p)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted codes ``F(x)`` of raw examples (no inference), ``(B, K)``."""
        return self.predict(flat_inputs(self, x, self.config.center))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        with torch.no_grad():
            self.D.copy_(unit_columns(self.D))  # undo the last optimiser step's drift off unit norm
        x = flat_inputs(self, batch["x"], c.center)
        f = self.predict(x)  # (B, K)
        z = self.infer(x, f)  # (B, K), constant below
        recon = 0.5 * (x - z @ self.D.T).pow(2).sum(1).mean()
        prediction = 0.5 * (z - f).pow(2).sum(1).mean()
        loss = recon + c.lam * z.abs().sum(1).mean() + c.alpha * prediction
        return {"loss": loss, "recon": recon.detach(), "prediction": prediction.detach(),
                "sparsity": (z != 0).float().mean()}
